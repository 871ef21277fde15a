package terminal

import (
	"sync"
	"testing"
	"time"
)

// A client asking for output older than the scrollback is told (WELCOME lost=1) and gets the oldest kept; a
// viewer that falls out of the scrollback while connected gets LOST and continues at the oldest kept byte.
func TestLostBeyondScrollback(t *testing.T) {
	opts := Options{HighWater: 64 << 10, Scrollback: 64 << 10}
	term, url := serveLocal(t, opts, "bash", "--norc", "--noprofile", "-i")

	// A viewer attached directly, that reads nothing while the driver consumes 1 MB.
	lagging, _, _, _, _ := term.attach(RoleViewer, 0, 80, 24)
	c := dial(t, url, RoleDriver, 0)
	c.input("head -c 1000000 /dev/zero | tr '\\0' y; echo; echo FILLED-$((6*7))\n")
	c.drain("FILLED-42", 30*time.Second, nil)
	ev := term.nextEvent(lagging, &sync.Pool{New: func() any { b := make([]byte, maxFrame); return &b }}, 0)
	term.mu.Lock()
	start := term.ring.start
	term.mu.Unlock()
	if !ev.lost || ev.offset != start || start == 0 {
		t.Fatalf("the lagging viewer: lost %v at %d, scrollback starts at %d", ev.lost, ev.offset, start)
	}
	term.detach(lagging)

	late := dial(t, url, RoleViewer, 1)
	if !late.lost || late.first < 1_000_000-64<<10 {
		t.Fatalf("resume from offset 1: lost %v, first %d", late.lost, late.first)
	}
}
