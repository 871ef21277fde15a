package workshop

import (
	"context"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestCheckName(t *testing.T) {
	for in, want := range map[string]string{"Ada": "Ada", "  Grace Hopper ": "Grace Hopper", "Zoë": "Zoë",
		strings.Repeat("é", MaxName): strings.Repeat("é", MaxName)} {
		if got, err := CheckName(in); err != nil || got != want {
			t.Errorf("CheckName(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "   ", strings.Repeat("x", MaxName+1), "a\x00b", "a\nb", "a\u202eb", "a\u200bb", "\xff"} {
		if got, err := CheckName(in); err == nil {
			t.Errorf("CheckName(%q) = %q", in, got)
		}
	}
}

// Whatever a person sends as a name, what is accepted is short, trimmed and printable.
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"Ada", " x ", "a\x00", "\u202e", strings.Repeat("y", 50)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		name, err := CheckName(in)
		if err != nil {
			return
		}
		if name == "" || utf8.RuneCountInString(name) > MaxName || strings.TrimSpace(name) != name || !utf8.ValidString(name) {
			t.Fatalf("accepted %q as %q", in, name)
		}
		for _, r := range name {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				t.Fatalf("accepted %q with %U", name, r)
			}
		}
	})
}

func TestCodes(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		c := NewCode()
		if len(c) != CodeLength || strings.Trim(c, CodeAlphabet) != "" {
			t.Fatalf("code %q", c)
		}
		seen[c] = true
	}
	if len(seen) < 1990 {
		t.Errorf("only %d distinct codes of 2000", len(seen))
	}
	if got := normalizeCode("ab c-234"); got != "ABC234" {
		t.Errorf("normalizeCode: %q", got)
	}
}

// The hub gives each watcher its workshop's events (an attendee's watcher: of attendees, its own only), drops a
// watcher that falls behind rather than waiting for it, and closes every watcher when the events end.
func TestHub(t *testing.T) {
	h := newHub()
	events := make(chan Event)
	done := make(chan struct{})
	go func() { defer close(done); h.run(context.Background(), events) }()
	<-h.ready
	all, ada, other, slow := h.watch("w", ""), h.watch("w", "ada"), h.watch("v", ""), h.watch("w", "")
	events <- Event{Workshop: "w", Attendee: "bob", Kind: KindAttendee}
	events <- Event{Workshop: "w", Attendee: "bob", Kind: KindActivity}
	events <- Event{Workshop: "w", Attendee: "ada", Kind: KindAttendee}
	events <- Event{Workshop: "w", Kind: KindMessage}
	for w, want := range map[*Watcher][]string{all: {"bob", "bob", "ada", ""}, ada: {"ada", ""}} {
		for _, attendee := range want {
			if e := <-w.C; e.Attendee != attendee {
				t.Errorf("got %+v, want attendee %q", e, attendee)
			}
		}
	}
	select {
	case e := <-other.C:
		t.Errorf("another workshop's watcher got %+v", e)
	default:
	}
	ada.Close()
	ada.Close()               // twice is fine
	for range watcherBuffer { // slow reads nothing: it is dropped when full, the others go on
		events <- Event{Workshop: "w", Kind: KindMessage}
		<-all.C
	}
	n := 0
	for range slow.C { // what it had buffered, then its channel closes
		n++
	}
	if n != watcherBuffer {
		t.Errorf("a slow watcher got %d events before it was dropped, want %d", n, watcherBuffer)
	}
	close(events)
	<-done
	if _, open := <-all.C; open {
		t.Error("a watcher stayed open after the events ended")
	}
	if len(h.watchers) != 0 {
		t.Errorf("watchers left: %v", h.watchers)
	}
}
