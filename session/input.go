package session

import (
	"sync"
	"time"
)

// InputEvery is how often, at most, a session's typing is reported to the OnInput hooks: the first keystroke is
// reported, then the first one at least InputEvery after the last report. So typing costs its hooks one call per
// InputEvery however fast it is, and the last report is never more than InputEvery older than the last keystroke.
const InputEvery = 10 * time.Second

// OnInput calls f with a session and the time of a keystroke in one of its terminals (input from its driver;
// viewers cannot type), as often as InputEvery allows. f runs in a goroutine of its own, so that typing never
// waits for it; it must end soon: RunReaper waits for the hooks running when it returns, and runs none after.
func (s *Service) OnInput(f func(id string, at time.Time)) {
	s.input.mu.Lock()
	defer s.input.mu.Unlock()
	s.input.hooks = append(s.input.hooks, f)
}

// inputs throttles the reports of typing, per session. Each process keeps its own: a session is typed into
// through the process that holds its terminal's connection.
type inputs struct {
	mu     sync.Mutex
	hooks  []func(id string, at time.Time)
	last   map[string]time.Time // session -> when its typing was last reported
	pruned int                  // len(last) after its last pruning
	wg     sync.WaitGroup       // hooks running
	closed bool                 // no more hooks run
}

// typed is told of every keystroke in a terminal of session id; it reports the ones InputEvery allows.
func (in *inputs) typed(id string) {
	now := time.Now()
	in.mu.Lock()
	if now.Sub(in.last[id]) < InputEvery || len(in.hooks) == 0 || in.closed {
		in.mu.Unlock()
		return
	}
	if in.last == nil {
		in.last = map[string]time.Time{}
	}
	in.last[id] = now
	// Sessions that ended in another process, or stopped typing, stay in the map; entries older than InputEvery
	// hold nothing back, so they go whenever the map has doubled since it was last pruned (amortized constant
	// work per report).
	if len(in.last) > 2*in.pruned+64 {
		for k, t := range in.last {
			if now.Sub(t) >= InputEvery {
				delete(in.last, k)
			}
		}
		in.pruned = len(in.last)
	}
	hooks := in.hooks
	in.wg.Add(1)
	in.mu.Unlock()
	go func() {
		defer in.wg.Done()
		for _, f := range hooks {
			f(id, now)
		}
	}()
}

// forget drops what is kept of a session that ended.
func (in *inputs) forget(id string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	delete(in.last, id)
}

// close waits for the hooks running and runs no more.
func (in *inputs) close() {
	in.mu.Lock()
	in.closed = true
	in.mu.Unlock()
	in.wg.Wait()
}
