package workshop

import (
	"context"
	"encoding/json"
	"sync"
)

// hub fans the events of the Store's subscription out to the watchers in this process: each watcher has a
// buffered channel; one that does not keep up is dropped (its channel closed: its stream ends and its page
// reconnects) rather than slowing anyone else. Nothing runs while nothing changes.
type hub struct {
	mu       sync.Mutex
	watchers map[string]map[*Watcher]bool // by workshop
	ready    chan struct{}                // closed once the subscription listens
}

// Watcher receives the events of one workshop: all of them (an instructor), or those of one attendee and the
// workshop's (an attendee's page): no event about another attendee reaches an attendee's watcher.
type Watcher struct {
	C        <-chan Event
	c        chan Event
	workshop string
	attendee string
	h        *hub
	once     sync.Once
}

// watcherBuffer is how many events a watcher may be behind before it is dropped.
const watcherBuffer = 64

func newHub() *hub { return &hub{watchers: map[string]map[*Watcher]bool{}, ready: make(chan struct{})} }

func (h *hub) watch(workshop, attendee string) *Watcher {
	c := make(chan Event, watcherBuffer)
	w := &Watcher{C: c, c: c, workshop: workshop, attendee: attendee, h: h}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.watchers[workshop] == nil {
		h.watchers[workshop] = map[*Watcher]bool{}
	}
	h.watchers[workshop][w] = true
	return w
}

// Close stops the watcher; its channel closes.
func (w *Watcher) Close() {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	w.closeLocked()
}

func (w *Watcher) closeLocked() {
	w.once.Do(func() {
		delete(w.h.watchers[w.workshop], w)
		if len(w.h.watchers[w.workshop]) == 0 {
			delete(w.h.watchers, w.workshop)
		}
		close(w.c)
	})
}

func (h *hub) deliver(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers[e.Workshop] {
		if w.attendee != "" && e.Attendee != "" && e.Attendee != w.attendee {
			continue
		}
		select {
		case w.c <- e:
		default:
			w.closeLocked() // too far behind
		}
	}
}

// run delivers the store's events until ctx is done.
func (h *hub) run(ctx context.Context, events <-chan Event) {
	close(h.ready)
	for e := range events {
		h.deliver(e)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ws := range h.watchers {
		for w := range ws {
			w.closeLocked()
		}
	}
}

// publish tells every process of a change of kind to what (JSON-encoded).
func (s *Service) publish(ctx context.Context, workshop, attendee, kind string, what any) {
	data, err := json.Marshal(what)
	if err != nil {
		return
	}
	if err := s.store.Publish(context.WithoutCancel(ctx), Event{Workshop: workshop, Attendee: attendee, Kind: kind,
		Data: data}); err != nil {
		s.log.Warn("workshop: publish event", "workshop", workshop, "err", err)
	}
}
