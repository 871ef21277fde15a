package workshop

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sandlot/sandlot/session"
)

// Lock stops (or lets again) people joining workshop id.
func (s *Service) Lock(ctx context.Context, id string, locked bool) (Workshop, error) {
	return s.update(ctx, id, Change{Locked: &locked})
}

// SetSeats sets how many seats workshop id has (1 to MaxSeats); with more, the queue is let in at once. Fewer
// seats end nobody: they count for those who join next.
func (s *Service) SetSeats(ctx context.Context, id string, seats int) (Workshop, error) {
	if seats < 1 || seats > MaxSeats {
		return Workshop{}, fmt.Errorf("%w: seats %d (1 to %d)", session.ErrInvalid, seats, MaxSeats)
	}
	w, err := s.update(ctx, id, Change{Seats: &seats})
	if err == nil {
		s.poke()
	}
	return w, err
}

func (s *Service) update(ctx context.Context, id string, c Change) (Workshop, error) {
	w, err := s.store.Update(ctx, id, c)
	if err != nil {
		return w, err
	}
	s.publish(ctx, id, "", KindWorkshop, w)
	return w, nil
}

// Broadcast sends text to every attendee's page of workshop id (and keeps it for pages that come later).
func (s *Service) Broadcast(ctx context.Context, id, text string) (Message, error) {
	text = strings.TrimSpace(text)
	if text == "" || utf8.RuneCountInString(text) > MaxBroadcast || !utf8.ValidString(text) {
		return Message{}, fmt.Errorf("%w: text: 1 to %d characters", session.ErrInvalid, MaxBroadcast)
	}
	if _, err := s.store.Workshop(ctx, id); err != nil {
		return Message{}, err
	}
	m := Message{At: time.Now().UTC(), Text: text}
	if err := s.store.AddMessage(ctx, id, m); err != nil {
		return m, err
	}
	s.publish(ctx, id, "", KindMessage, m)
	return m, nil
}

// Extend gives attendee (everyone: "") of workshop id d more: their sessions' deadlines move, and for everyone
// so does the end of the workshop's window.
func (s *Service) Extend(ctx context.Context, id string, d time.Duration, attendee string) (Detail, error) {
	if d <= 0 || d > s.sessions.MaxDuration() {
		return Detail{}, fmt.Errorf("%w: duration %s (up to %s)", session.ErrInvalid, d, s.sessions.MaxDuration())
	}
	w, err := s.store.Workshop(ctx, id)
	if err != nil {
		return Detail{}, err
	}
	if w.State == StateEnded {
		return Detail{}, ErrOver
	}
	targets, err := s.targets(ctx, id, attendee)
	if err != nil {
		return Detail{}, err
	}
	if attendee == "" && w.EndsAt != nil {
		to := w.EndsAt.Add(d)
		if w, err = s.update(ctx, id, Change{EndsAt: &to}); err != nil {
			return Detail{}, err
		}
	}
	for _, a := range targets {
		if a.State != Active {
			if attendee != "" {
				return Detail{}, errNoSession(attendee)
			}
			continue
		}
		if _, err := s.sessions.Extend(ctx, a.SessionID, d); err != nil && !errors.Is(err, session.ErrEnded) {
			return Detail{}, fmt.Errorf("extend %s's session: %w", a.Name, err)
		}
		s.attendeeChanged(ctx, w, a.ID)
	}
	if attendee == "" && w.DemoSession != "" {
		if _, err := s.sessions.Extend(ctx, w.DemoSession, d); err != nil && !errors.Is(err, session.ErrEnded) {
			s.log.Warn("workshop: extend the demo session", "workshop", id, "err", err)
		}
	}
	return s.Detail(ctx, id)
}

// End ends attendee of workshop id (their session with reason workshop_ended, their seat freed for the queue),
// or, for "", the workshop and everyone in it.
func (s *Service) End(ctx context.Context, id, attendee string) (Detail, error) {
	w, err := s.store.Workshop(ctx, id)
	if err != nil {
		return Detail{}, err
	}
	if attendee == "" {
		s.endWorkshop(ctx, w)
		return s.Detail(ctx, id)
	}
	a, err := s.store.Attendee(ctx, id, attendee)
	if err != nil {
		return Detail{}, err
	}
	s.endAttendee(ctx, w, a, w.over(time.Now()))
	s.poke()
	return s.Detail(ctx, id)
}

func (s *Service) targets(ctx context.Context, id, attendee string) ([]Attendee, error) {
	if attendee != "" {
		a, err := s.store.Attendee(ctx, id, attendee)
		return []Attendee{a}, err
	}
	return s.store.Attendees(ctx, id)
}

// endAttendee ends one attendee: through their session when they have one (the session's end frees the seat).
// With the workshop over, the reason is workshop_ended; else the instructor ended this one attendee (admin).
func (s *Service) endAttendee(ctx context.Context, w Workshop, a Attendee, workshopOver bool) {
	reason, message := session.EndAdmin, "the instructor ended this attendee's session"
	if workshopOver {
		reason, message = session.EndWorkshopEnded, ""
	}
	if a.State == Active {
		if _, err := s.sessions.End(ctx, a.SessionID, reason, message); err != nil {
			s.log.Warn("workshop: end an attendee's session", "workshop", w.ID, "attendee", a.ID, "err", err)
		}
	}
	// Whatever the session's end did (or another process's), the attendee is ended now.
	if ok, _ := s.store.Finish(ctx, w.ID, a.ID, "", string(reason), time.Now()); ok {
		s.attendeeChanged(ctx, w, a.ID)
	}
}

// endWorkshop ends a workshop (once) and then everyone in it; any process may finish what another began.
func (s *Service) endWorkshop(ctx context.Context, w Workshop) {
	if ok, err := s.store.MarkEnded(ctx, w.ID, time.Now().UTC()); err == nil && ok {
		s.log.Info("workshop ended", "workshop", w.ID)
		if ended, err := s.store.Workshop(ctx, w.ID); err == nil {
			w = ended
			s.publish(ctx, w.ID, "", KindWorkshop, w)
		}
	}
	as, err := s.store.Attendees(ctx, w.ID)
	if err != nil {
		return
	}
	// Several at once: each end waits for the removal of its nodes (a second or so), and one after another the
	// last of a room would see the end that many seconds after the first.
	var wg sync.WaitGroup
	slots := make(chan struct{}, endsAtOnce)
	for _, a := range as {
		if a.State == Ended {
			continue
		}
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			s.endAttendee(ctx, w, a, true)
		}()
	}
	wg.Wait()
	if w.DemoSession != "" {
		s.endDemo(ctx, w.DemoSession, "")
	}
	_ = s.store.Retire(ctx, w.ID)
}

// endsAtOnce is how many attendees' sessions the end of a workshop ends at once.
const endsAtOnce = 16

// Attendance writes workshop id's attendance as CSV: name, joined_at, state, session_id, ended_at, end_reason.
func (s *Service) Attendance(ctx context.Context, id string, out io.Writer) error {
	as, err := s.store.Attendees(ctx, id)
	if err != nil {
		return err
	}
	w := csv.NewWriter(out)
	_ = w.Write([]string{"name", "joined_at", "state", "session_id", "ended_at", "end_reason"})
	for _, a := range as {
		ended := ""
		if a.EndedAt != nil {
			ended = a.EndedAt.UTC().Format(time.RFC3339)
		}
		_ = w.Write([]string{csvSafe(a.Name), a.JoinedAt.UTC().Format(time.RFC3339), string(a.State), a.SessionID,
			ended, a.EndReason})
	}
	w.Flush()
	return w.Error()
}

// csvSafe keeps a name from being read as a formula by a spreadsheet.
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@", rune(v[0])) {
		return "'" + v
	}
	return v
}
