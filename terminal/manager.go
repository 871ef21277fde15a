package terminal

import (
	"context"
	"strings"
	"sync"
	"time"
)

// Manager keeps terminals by key, opens them on first use, and closes those that ended or had no client for
// longer than the idle timeout.
type Manager struct {
	opts  Options
	idle  time.Duration
	mu    sync.Mutex
	terms map[string]*entry
}

// entry is the terminal at a key, or its opening: opening a TTY is an engine call, made without holding the
// Manager's lock, and whoever asks for the key meanwhile waits for ready and shares the result.
type entry struct {
	ready chan struct{} // closed once term or err is set
	term  *Terminal
	err   error
}

func (e *entry) opened() bool {
	select {
	case <-e.ready:
		return true
	default:
		return false
	}
}

// NewManager returns a Manager whose terminals use opts and are closed after idle without a client (default 30 min).
func NewManager(opts Options, idle time.Duration) *Manager {
	if idle == 0 {
		idle = 30 * time.Minute
	}
	return &Manager{opts: opts, idle: idle, terms: map[string]*entry{}}
}

// Get returns the live terminal at key, or opens one with open and the given size. Concurrent Gets of one key
// open it once (and share a failure to open); opening one key holds up no other. A terminal whose key is closed
// (CloseMatching) while it opens is returned closed.
func (m *Manager) Get(key string, cols, rows uint16, open func() (TTY, error)) (*Terminal, error) {
	m.mu.Lock()
	var ended *Terminal
	if e, ok := m.terms[key]; ok {
		if !e.opened() {
			m.mu.Unlock()
			<-e.ready
			return e.term, e.err
		}
		if !e.term.Done() {
			m.mu.Unlock()
			return e.term, nil
		}
		ended = e.term // its shell exited: a new one replaces it
	}
	e := &entry{ready: make(chan struct{})}
	m.terms[key] = e
	m.mu.Unlock()
	if ended != nil {
		ended.Close()
	}

	tty, err := open()
	if err == nil {
		e.term = New(tty, cols, rows, m.opts)
	}
	e.err = err
	m.mu.Lock()
	abandoned := m.terms[key] != e
	if err != nil && !abandoned {
		delete(m.terms, key) // the next Get tries again
	}
	close(e.ready)
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if abandoned {
		e.term.Close()
	}
	return e.term, nil
}

// CloseMatching closes the terminals whose key starts with prefix (a session's, or a node's, when it goes).
// Terminals still opening are closed by their opener once open.
func (m *Manager) CloseMatching(prefix string) {
	m.close(func(key string, _ *Terminal) bool { return strings.HasPrefix(key, prefix) })
}

// Len is how many terminals are open.
func (m *Manager) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, e := range m.terms {
		if e.opened() {
			n++
		}
	}
	return n
}

// Run closes ended and idle terminals every minute until ctx is done, then releases all (Terminal.Release): a
// shell held in its node lives on for the next server.
func (m *Manager) Run(ctx context.Context) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			m.release()
			return
		case <-tick.C:
			m.sweep()
		}
	}
}

func (m *Manager) sweep() {
	m.close(func(_ string, t *Terminal) bool { return t != nil && (t.Done() || t.Idle() > m.idle) })
}

// release removes every entry and releases its terminal.
func (m *Manager) release() {
	m.mu.Lock()
	var releasing []*Terminal
	for k, e := range m.terms {
		if e.opened() && e.term != nil {
			releasing = append(releasing, e.term)
		}
		delete(m.terms, k)
	}
	m.mu.Unlock()
	for _, t := range releasing {
		t.Release()
	}
}

// close removes the entries that match (t is nil for one still opening) and closes their terminals, outside the
// lock: closing waits for the TTY to end.
func (m *Manager) close(match func(key string, t *Terminal) bool) {
	m.mu.Lock()
	var closing []*Terminal
	for k, e := range m.terms {
		var t *Terminal
		if e.opened() {
			t = e.term
		}
		if match(k, t) {
			delete(m.terms, k)
			if t != nil {
				closing = append(closing, t)
			}
		}
	}
	m.mu.Unlock()
	for _, t := range closing {
		t.Close()
	}
}
