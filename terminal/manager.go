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
	terms map[string]*Terminal
}

// NewManager returns a Manager whose terminals use opts and are closed after idle without a client (default 30 min).
func NewManager(opts Options, idle time.Duration) *Manager {
	if idle == 0 {
		idle = 30 * time.Minute
	}
	return &Manager{opts: opts, idle: idle, terms: map[string]*Terminal{}}
}

// Get returns the live terminal at key, or opens one with open and the given size.
func (m *Manager) Get(key string, cols, rows uint16, open func() (TTY, error)) (*Terminal, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t, ok := m.terms[key]; ok && !t.Done() {
		return t, nil
	}
	tty, err := open()
	if err != nil {
		return nil, err
	}
	t := New(tty, cols, rows, m.opts)
	m.terms[key] = t
	return t, nil
}

// CloseMatching closes the terminals whose key starts with prefix (a session's, or a node's, when it goes).
func (m *Manager) CloseMatching(prefix string) {
	m.mu.Lock()
	var closing []*Terminal
	for k, t := range m.terms {
		if strings.HasPrefix(k, prefix) {
			closing = append(closing, t)
			delete(m.terms, k)
		}
	}
	m.mu.Unlock()
	for _, t := range closing {
		t.Close()
	}
}

// Len is how many terminals are open.
func (m *Manager) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.terms)
}

// Run closes ended and idle terminals every minute until ctx is done, then closes all.
func (m *Manager) Run(ctx context.Context) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			m.CloseMatching("")
			return
		case <-tick.C:
			m.sweep()
		}
	}
}

func (m *Manager) sweep() {
	m.mu.Lock()
	var closing []*Terminal
	for k, t := range m.terms {
		if t.Done() || t.Idle() > m.idle {
			closing = append(closing, t)
			delete(m.terms, k)
		}
	}
	m.mu.Unlock()
	for _, t := range closing {
		t.Close()
	}
}
