package workshop

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sandlot/sandlot/quota"
	"github.com/sandlot/sandlot/session"
)

// AttendeeView is what an attendee's page is told: where they are, their session once they have one, and the
// workshop's broadcasts.
type AttendeeView struct {
	AttendeeID   string        `json:"attendee_id"`
	Name         string        `json:"name"`
	State        AttendeeState `json:"state"`
	Position     int           `json:"position,omitempty"`
	StartsAt     *time.Time    `json:"starts_at,omitempty"`
	SessionID    string        `json:"session_id,omitempty"`
	SessionToken string        `json:"session_token,omitempty"`
	ExpiresAt    *time.Time    `json:"expires_at,omitempty"`
	EndReason    string        `json:"end_reason,omitempty"`
	Title        string        `json:"title"`
	EndsAt       *time.Time    `json:"ends_at,omitempty"`
	Messages     []Message     `json:"messages"`
	Demo         *DemoLink     `json:"demo,omitempty"` // the instructor's demo, to watch, while there is one
}

// Joined is a new attendee: their view, their token and the path of their personal page (which carries it).
type Joined struct {
	AttendeeView
	AttendeeToken string `json:"attendee_token"`
	PersonalPath  string `json:"-"`
}

// Join adds a person to the workshop with code: seated if a seat is free (with a session at once if the
// workshop has started), queued if not; never refused for want of seats. client is their address, for the rate
// of joins.
func (s *Service) Join(ctx context.Context, code, name, client string) (Joined, error) {
	name, err := CheckName(name)
	if err != nil {
		return Joined{}, err
	}
	w, err := s.byCode(ctx, code, client)
	if err != nil {
		return Joined{}, err
	}
	now := time.Now().UTC()
	switch {
	case w.over(now):
		return Joined{}, ErrOver
	case w.Locked:
		return Joined{}, ErrLocked
	}
	a := Attendee{ID: session.NewID(), Name: name, JoinedAt: now}
	if err := s.quota.AllowJoin(ctx, client, w.ID+"/"+a.ID); err != nil {
		return Joined{}, err
	}
	var claim time.Time
	if w.started(now) { // this call makes the session, not the reaper meanwhile
		claim = now.Add(startLease)
	}
	if a, err = s.store.Join(ctx, w.ID, a, claim); err != nil {
		return Joined{}, err
	}
	s.log.Info("workshop joined", "workshop", w.ID, "attendee", a.ID, "state", a.State)
	s.attendeeChanged(ctx, w, a.ID)
	token, err := s.sessions.Issue(session.Grant{Scope: session.ScopeAttendee, Workshop: w.ID, Attendee: a.ID,
		Expires: w.tokenExpiry()})
	if err != nil {
		return Joined{}, err
	}
	if a.State == Waiting && !claim.IsZero() {
		s.makeSession(ctx, w, a.ID)
	}
	v, err := s.View(ctx, w.ID, a.ID, time.Time{})
	return Joined{AttendeeView: v, AttendeeToken: token, PersonalPath: "/w/" + w.Code + "#attendee=" + token}, err
}

// View is what attendee of workshop id is told now, with the broadcasts after since.
func (s *Service) View(ctx context.Context, id, attendee string, since time.Time) (AttendeeView, error) {
	w, err := s.store.Workshop(ctx, id)
	if err != nil {
		return AttendeeView{}, err
	}
	a, err := s.store.Attendee(ctx, id, attendee)
	if err != nil {
		return AttendeeView{}, err
	}
	a = s.withSession(ctx, w, a)
	v := AttendeeView{AttendeeID: a.ID, Name: a.Name, State: a.State, Position: a.Position, StartsAt: w.StartsAt,
		SessionID: a.SessionID, ExpiresAt: a.ExpiresAt, EndReason: a.EndReason, Title: w.Title, EndsAt: w.EndsAt,
		Messages: []Message{}, Demo: s.demoLink(ctx, w)}
	if a.State == Active {
		if sess, err := s.sessions.Stored(ctx, a.SessionID); err == nil {
			v.SessionToken, err = s.sessions.Issue(session.Grant{Scope: session.ScopeSession, Session: sess.ID,
				Expires: sess.MaxExpiresAt})
			if err != nil {
				return v, err
			}
		}
	}
	msgs, err := s.store.Messages(ctx, id)
	for _, m := range msgs {
		if m.At.After(since) {
			v.Messages = append(v.Messages, m)
		}
	}
	return v, err
}

// Touch records that an attendee's page is there (LastSeen).
func (s *Service) Touch(ctx context.Context, id, attendee string) {
	_ = s.store.Touch(ctx, id, attendee, time.Now())
}

// typed records that someone typed into a terminal of session id at (session.OnInput): when it is an
// attendee's, that is their last activity, and the instructor's watchers are told (an activity event).
func (s *Service) typed(id string, at time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, err := s.sessions.Stored(ctx, id)
	if err != nil || sess.Workshop == "" {
		return
	}
	aid, err := s.store.AttendeeOf(ctx, sess.Workshop, id)
	if err != nil {
		return // typed before the attendee got the session, or not an attendee's
	}
	if err := s.store.Typed(ctx, sess.Workshop, aid, at); err != nil {
		s.log.Warn("workshop: record typing", "workshop", sess.Workshop, "attendee", aid, "err", err)
		return
	}
	w, err := s.store.Workshop(ctx, sess.Workshop)
	if err != nil {
		return
	}
	a, err := s.store.Attendee(ctx, w.ID, aid)
	if err != nil {
		return
	}
	s.publish(ctx, w.ID, aid, KindActivity, s.withSession(ctx, w, a))
}

// Watch follows the changes of workshop id: all of them (attendee ""), or one attendee's and the workshop's.
// The watcher must be closed.
func (s *Service) Watch(id, attendee string) *Watcher { return s.hub.watch(id, attendee) }

// start makes a pending attendee's session, unless another caller is making it. When the host is full the
// attendee goes back to the head of the queue; when the workshop or the attendee ended meanwhile, the session
// ends again.
func (s *Service) start(ctx context.Context, w Workshop, attendee string) {
	ok, err := s.store.ClaimStart(ctx, w.ID, attendee, time.Now().Add(startLease))
	if err != nil || !ok {
		return
	}
	s.makeSession(ctx, w, attendee)
}

// makeSession makes the session of an attendee whose making this caller claimed.
func (s *Service) makeSession(ctx context.Context, w Workshop, attendee string) {
	created, err := s.sessions.Create(ctx, session.CreateRequest{Template: w.Template, Workshop: w.ID,
		Duration: s.sessionDuration(w, time.Now()), Images: w.Images})
	var full *quota.Rejection
	switch {
	case errors.As(err, &full) && full.Code == quota.CodeOutOfCapacity:
		s.full.Store(w.ID, time.Now().Add(fullBackoff))
		if err := s.store.Requeue(context.WithoutCancel(ctx), w.ID, attendee); err != nil {
			s.log.Warn("workshop: requeue", "workshop", w.ID, "attendee", attendee, "err", err)
		}
		s.attendeeChanged(ctx, w, attendee)
		return
	case err != nil: // the claim runs out, and the reaper tries again then
		s.log.Warn("workshop: make an attendee's session", "workshop", w.ID, "attendee", attendee, "err", err)
		return
	}
	if err := s.store.Activate(context.WithoutCancel(ctx), w.ID, attendee, created.Session.ID); err != nil {
		_, _ = s.sessions.End(context.WithoutCancel(ctx), created.Session.ID, session.EndWorkshopEnded,
			"the attendee or the workshop ended while the session was being made")
		return
	}
	s.attendeeChanged(ctx, w, attendee)
}

// sessionDuration is how long an attendee's session made now lives: the workshop's duration (or the default),
// not past the end of its window (and a little after it, so that the workshop's end is what ends it).
func (s *Service) sessionDuration(w Workshop, now time.Time) time.Duration {
	var d time.Duration
	if w.Duration != "" {
		d, _ = time.ParseDuration(w.Duration)
	}
	if w.EndsAt != nil {
		if until := w.EndsAt.Sub(now) + endGrace; d == 0 || until < d {
			d = until
		}
	}
	if d > s.sessions.MaxDuration() {
		d = s.sessions.MaxDuration()
	}
	if d != 0 && d < time.Second {
		d = time.Second
	}
	return d
}

// attendeeChanged tells the watchers of the attendee as the instructor sees them now.
func (s *Service) attendeeChanged(ctx context.Context, w Workshop, attendee string) {
	a, err := s.store.Attendee(ctx, w.ID, attendee)
	if err != nil {
		return
	}
	s.publish(ctx, w.ID, attendee, KindAttendee, s.withSession(ctx, w, a))
}

// sessionEnded frees the seat of the attendee whose session ended, and wakes the reaper to let the next one in
// (any session's end leaves room on the host for a queue that waits for it).
func (s *Service) sessionEnded(sess session.Session) {
	s.full.Clear() // room on the host: every workshop's queue may try again
	s.poke()
	if sess.Workshop == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	aid, err := s.store.AttendeeOf(ctx, sess.Workshop, sess.ID)
	if err != nil {
		return // a session ended before its attendee got it: nothing held
	}
	ok, err := s.store.Finish(ctx, sess.Workshop, aid, sess.ID, string(sess.EndReason), time.Now())
	if err != nil {
		s.log.Warn("workshop: free a seat", "workshop", sess.Workshop, "attendee", aid, "err", err)
		return
	}
	if ok {
		if w, err := s.store.Workshop(ctx, sess.Workshop); err == nil {
			s.attendeeChanged(ctx, w, aid)
		}
	}
}

// poke wakes the reaper.
func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// errNoSession says an attendee has no session to act on.
func errNoSession(attendee string) error {
	return fmt.Errorf("%w: attendee %s has no session now", session.ErrConflict, attendee)
}
