package workshop

import (
	"context"
	"sync"
	"time"

	"github.com/sandlot/sandlot/session"
)

// reapInterval is how often the reaper looks at live workshops: a window starts and ends within about this much
// of its time.
const reapInterval = 250 * time.Millisecond

// Run fans out events and runs workshops on time until ctx is done: at starts_at the waiting attendees get their
// sessions, at ends_at everyone ends (reason workshop_ended), and whenever a seat frees up (or seats are added)
// the queue is let in, in order. Several processes may run it on one Redis: each session is made by one of
// them (ClaimStart), each workshop ended once.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		events, err := s.store.Subscribe(ctx)
		if err == nil {
			wg.Add(1)
			go func() { defer wg.Done(); s.hub.run(ctx, events) }()
			break
		}
		s.log.Warn("workshop: subscribe to events", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	tick := time.NewTicker(reapInterval)
	defer tick.Stop()
	for round := 0; ; round++ {
		s.reap(ctx, &wg, round)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.wake:
		}
	}
}

// reconcileRounds is how many rounds pass between looks for active attendees whose sessions ended unseen (their
// process died between ending the session and freeing the seat); askRounds between askings of the warm pool.
const (
	reconcileRounds = 20
	askRounds       = 4
)

func (s *Service) reap(ctx context.Context, wg *sync.WaitGroup, round int) {
	ids, err := s.store.Live(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("workshop reaper: list workshops", "err", err)
		}
		return
	}
	now := time.Now()
	reconcile, ask := round%reconcileRounds == 0, round%askRounds == 0
	demands, unknown := map[string]map[string]int{}, false
	defer func() {
		if ask && !unknown { // what a workshop needs is not known: ask again next time rather than withdraw
			s.askPool(demands)
		}
	}()
	for _, id := range ids {
		w, err := s.store.Workshop(ctx, id)
		if err != nil {
			unknown = true
			continue
		}
		if w.over(now) {
			s.endWorkshop(ctx, w)
			continue
		}
		if reconcile || ask {
			as, err := s.store.Attendees(ctx, w.ID)
			if err != nil {
				unknown = true
				continue
			}
			if d := poolDemand(w, as, now); ask && d != nil {
				demands[w.ID] = d
			}
			if reconcile && w.started(now) {
				s.reconcile(ctx, w, as)
			}
		}
		if !w.started(now) {
			continue
		}
		if until, ok := s.full.Load(id); ok && now.Before(until.(time.Time)) {
			continue // the host was full a moment ago
		}
		if promoted, err := s.store.Promote(ctx, id); err == nil {
			for _, aid := range promoted {
				s.attendeeChanged(ctx, w, aid)
			}
		}
		pending, err := s.store.Pending(ctx, id)
		if err != nil {
			continue
		}
		for _, aid := range pending {
			if _, busy := s.starting.LoadOrStore(aid, true); busy {
				continue // this process is making it already
			}
			// Each session in its own goroutine: a room's templates are set up at once, not one after another.
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer s.starting.Delete(aid)
				s.start(ctx, w, aid)
			}()
		}
	}
}

// reconcile frees the seats of a workshop's active attendees (as) whose sessions have ended.
func (s *Service) reconcile(ctx context.Context, w Workshop, as []Attendee) {
	for _, a := range as {
		if a.State != Active {
			continue
		}
		if sess, err := s.sessions.Stored(ctx, a.SessionID); err == nil && sess.State == session.StateEnded {
			if ok, _ := s.store.Finish(ctx, w.ID, a.ID, a.SessionID, string(sess.EndReason), time.Now()); ok {
				s.attendeeChanged(ctx, w, a.ID)
			}
		}
	}
}
