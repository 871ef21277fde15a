package session

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// Typing is reported once per InputEvery of each session however fast it comes, at once for another session,
// again once the session is forgotten (it ended), and never after close. Old entries are pruned as the map grows.
func TestInputsThrottle(t *testing.T) {
	var in inputs
	in.typed("nobody-listens") // without hooks, nothing is kept
	if len(in.last) != 0 {
		t.Fatalf("kept %v without hooks", in.last)
	}
	var calls atomic.Int32
	in.hooks = append(in.hooks, func(string, time.Time) { calls.Add(1) })
	for range 1000 {
		in.typed("a")
	}
	in.typed("b")
	in.wg.Wait()
	if n := calls.Load(); n != 2 {
		t.Fatalf("1000 keystrokes in a and one in b: %d reports, want 2", n)
	}
	in.forget("a")
	in.typed("a")
	in.wg.Wait()
	if n := calls.Load(); n != 3 {
		t.Fatalf("after forget: %d reports, want 3", n)
	}

	// Entries older than InputEvery hold nothing back: they go when the map has doubled.
	for k := range in.last {
		in.last[k] = time.Now().Add(-InputEvery)
	}
	for i := range 100 {
		in.typed(fmt.Sprint("s", i))
	}
	in.wg.Wait()
	for _, k := range []string{"a", "b"} {
		if _, ok := in.last[k]; ok {
			t.Errorf("%s (reported %s ago) still kept", k, InputEvery)
		}
	}
	if len(in.last) > 100 || in.pruned == 0 {
		t.Errorf("%d kept, pruned to %d", len(in.last), in.pruned)
	}

	in.close()
	before := calls.Load()
	in.typed("c")
	in.wg.Wait()
	if calls.Load() != before {
		t.Error("a report after close")
	}
}
