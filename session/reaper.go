package session

import (
	"context"
	"sync"
	"time"
)

// ReaperInterval is how often the reaper looks for due sessions: an expired session ends within about this much
// of its deadline (plus its teardown).
const ReaperInterval = 250 * time.Millisecond

// gcInterval is how often containers without a live session are collected.
const gcInterval = 5 * time.Minute

// RunReaper ends sessions on time until ctx is done: expired ones (reason expired), ones whose setup was abandoned
// by a process that died (reason error), and teardowns another process left unfinished. Several processes may run
// it on one Redis: each session is ended by exactly one of them. Beside it, containers left by sessions that no
// longer live are collected at start and every few minutes; collecting never delays an ending (after a restart
// over a deadline, the session ends first).
func (s *Service) RunReaper(ctx context.Context) {
	defer s.ports.Close() // the ports of nodes are watched while the service runs
	defer s.input.close() // and typing reported
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(2)
	go func() {
		defer wg.Done()
		every(ctx, gcInterval, func() { s.collect(ctx) })
	}()
	go func() { defer wg.Done(); s.runPool(ctx) }() // the warm pool, if any (pool.go)
	every(ctx, ReaperInterval, func() { s.reap(ctx) })
}

// every runs f at once, then every interval, until ctx is done.
func every(ctx context.Context, interval time.Duration, f func()) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		f()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *Service) reap(ctx context.Context) {
	due, err := s.store.Due(ctx, time.Now(), 20)
	if err != nil {
		s.log.Warn("reaper: read deadlines", "err", err)
	}
	for _, id := range due {
		if _, err := s.End(ctx, id, EndExpired, ""); err != nil {
			s.log.Warn("reaper: end expired session", "session", id, "err", err)
		}
	}
	abandoned, err := s.store.AbandonedSetups(ctx)
	if err != nil {
		s.log.Warn("reaper: read setups", "err", err)
	}
	for _, id := range abandoned {
		if _, err := s.End(ctx, id, EndError, "the server stopped while setting the session up"); err != nil {
			s.log.Warn("reaper: end abandoned session", "session", id, "err", err)
		}
	}
	stale, err := s.store.StaleEndings(ctx, time.Now())
	if err != nil {
		s.log.Warn("reaper: read teardowns", "err", err)
	}
	for _, id := range stale {
		if ok, err := s.store.TakeOverEnding(ctx, id, time.Now().Add(teardownLease)); err != nil || !ok {
			continue
		}
		sess, err := s.store.Get(ctx, id)
		if err != nil {
			sess = Session{ID: id}
		}
		if err := s.teardown(ctx, sess); err != nil {
			s.log.Warn("reaper: finish teardown", "session", id, "err", err)
		}
	}
}

// collect removes containers, networks and volumes whose session is not live in Redis.
func (s *Service) collect(ctx context.Context) {
	r, err := s.nodes.GC(ctx, func(ctx context.Context, id string) (bool, error) { return s.store.IsLive(ctx, id) })
	if err != nil {
		s.log.Warn("collect leftovers", "err", err)
	}
	if len(r.Sessions) > 0 {
		s.log.Info("collected leftovers", "sessions", r.Sessions, "containers", r.Containers, "networks", r.Networks)
	}
}
