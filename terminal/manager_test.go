package terminal

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A terminal without clients for longer than the idle timeout is closed; one with a client is not.
func TestManagerClosesIdle(t *testing.T) {
	m := NewManager(Options{}, 50*time.Millisecond)
	open := func() (TTY, error) { return StartLocal("cat") }
	idle, err := m.Get("s/node1/1", 80, 24, open)
	if err != nil {
		t.Fatal(err)
	}
	busy, err := m.Get("s/node1/2", 80, 24, open)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := m.Get("s/node1/1", 80, 24, open); again != idle {
		t.Fatal("Get opened a second terminal for the same key")
	}
	c, _, _, _, _ := busy.attach(RoleDriver, 0, 80, 24)
	time.Sleep(100 * time.Millisecond)
	m.sweep()
	if !idle.Done() || busy.Done() || m.Len() != 1 {
		t.Fatalf("idle done %v, busy done %v, %d open", idle.Done(), busy.Done(), m.Len())
	}
	busy.detach(c)
	m.CloseMatching("s/")
	if m.Len() != 0 || !busy.Done() {
		t.Fatal("CloseMatching left terminals open")
	}
}

// slowOpen is an open function that does not return until release is called (an engine slow to start a shell),
// and counts its calls.
type slowOpen struct {
	calls   atomic.Int32
	gate    chan struct{}
	release func()
}

func newSlowOpen(t *testing.T) *slowOpen {
	s := &slowOpen{gate: make(chan struct{})}
	s.release = sync.OnceFunc(func() { close(s.gate) })
	t.Cleanup(s.release)
	return s
}

func (s *slowOpen) open() (TTY, error) {
	s.calls.Add(1)
	<-s.gate
	return StartLocal("cat")
}

// waitOpening waits until the slow open has been called.
func (s *slowOpen) waitOpening(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); s.calls.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("open was never called")
		}
	}
}

type got struct {
	term *Terminal
	err  error
}

func getAsync(m *Manager, key string, open func() (TTY, error)) chan got {
	ch := make(chan got, 1)
	go func() {
		term, err := m.Get(key, 80, 24, open)
		ch <- got{term, err}
	}()
	return ch
}

func within(t *testing.T, ch chan got, what string) got {
	t.Helper()
	select {
	case g := <-ch:
		if g.err != nil {
			t.Fatalf("%s: %v", what, g.err)
		}
		return g
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: Get did not return", what)
		return got{}
	}
}

// Opening a shell (an engine call) holds up no other key's Get, and concurrent Gets of one key open it once.
func TestManagerOpensOutsideItsLock(t *testing.T) {
	m := NewManager(Options{}, time.Hour)
	t.Cleanup(func() { m.CloseMatching("") })
	slow := newSlowOpen(t) // registered after the Manager's cleanup, so released before it
	var gets []chan got
	gets = append(gets, getAsync(m, "s/node1/1", slow.open))
	slow.waitOpening(t)
	for range 4 {
		gets = append(gets, getAsync(m, "s/node1/1", slow.open))
	}

	quick := func() (TTY, error) { return StartLocal("cat") }
	other := within(t, getAsync(m, "s/node2/1", quick), "another key while one opens")
	if other.term.Done() {
		t.Fatal("the other key's terminal is done")
	}

	slow.release()
	first := within(t, gets[0], "the slow key")
	for _, g := range gets[1:] {
		if r := within(t, g, "the slow key, asked again while it opened"); r.term != first.term {
			t.Fatal("concurrent Gets of one key returned different terminals")
		}
	}
	if n := slow.calls.Load(); n != 1 {
		t.Fatalf("5 concurrent Gets of one key opened it %d times", n)
	}
	if m.Len() != 2 {
		t.Fatalf("%d terminals open, want 2", m.Len())
	}
}

// A session that ends while one of its terminals opens does not wait for the open, and the terminal, once open,
// is closed and forgotten.
func TestManagerCloseWhileOpening(t *testing.T) {
	m := NewManager(Options{}, time.Hour)
	t.Cleanup(func() { m.CloseMatching("") })
	slow := newSlowOpen(t)
	opening := getAsync(m, "s/node1/1", slow.open)
	slow.waitOpening(t)
	closed := make(chan struct{})
	go func() { m.CloseMatching("s/"); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("CloseMatching waited for a terminal that was opening")
	}
	slow.release()
	g := within(t, opening, "the terminal closed while it opened")
	if !g.term.Done() || m.Len() != 0 {
		t.Fatalf("after closing its key, the terminal that was opening: done %v; %d terminals open", g.term.Done(), m.Len())
	}
}

// A failed open is shared by the Gets waiting for it, and the next Get tries again.
func TestManagerOpenFails(t *testing.T) {
	m := NewManager(Options{}, time.Hour)
	t.Cleanup(func() { m.CloseMatching("") })
	refused := errors.New("engine says no")
	if _, err := m.Get("s/node1/1", 80, 24, func() (TTY, error) { return nil, refused }); !errors.Is(err, refused) {
		t.Fatalf("Get: %v", err)
	}
	if m.Len() != 0 {
		t.Fatalf("%d terminals open after a failed open", m.Len())
	}
	g := within(t, getAsync(m, "s/node1/1", func() (TTY, error) { return StartLocal("cat") }), "after a failed open")
	if g.term.Done() {
		t.Fatal("the terminal opened after a failure is done")
	}
}

// exitedTTY is a TTY whose shell has already ended; it records being closed.
type exitedTTY struct{ closed atomic.Bool }

func (e *exitedTTY) Read([]byte) (int, error)       { return 0, io.EOF }
func (e *exitedTTY) Write(p []byte) (int, error)    { return 0, io.ErrClosedPipe }
func (e *exitedTTY) Resize(cols, rows uint16) error { return nil }
func (e *exitedTTY) Close() error                   { e.closed.Store(true); return nil }

// A terminal whose shell ended is replaced by a new one on the next Get, and closed (its TTY released).
func TestManagerReplacesEnded(t *testing.T) {
	m := NewManager(Options{}, time.Hour)
	t.Cleanup(func() { m.CloseMatching("") })
	gone := &exitedTTY{}
	old, err := m.Get("s/node1/1", 80, 24, func() (TTY, error) { return gone, nil })
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !old.Done(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the terminal never saw its shell end")
		}
	}
	fresh, err := m.Get("s/node1/1", 80, 24, func() (TTY, error) { return StartLocal("cat") })
	if err != nil {
		t.Fatal(err)
	}
	if fresh == old || fresh.Done() || !gone.closed.Load() {
		t.Fatalf("a new terminal %v, live %v; the ended one's TTY closed %v", fresh != old, !fresh.Done(), gone.closed.Load())
	}
}
