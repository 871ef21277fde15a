package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/sandlot/sandlot/session/workshop"
)

// heartbeat is how often an idle event stream gets a comment, so that proxies and browsers keep it open.
const heartbeat = 15 * time.Second

// eventWriteTimeout bounds each write to an event stream: a client that stops reading is let go.
const eventWriteTimeout = 30 * time.Second

// workshopEvents streams a workshop's changes to its instructor (Server-Sent Events): first the workshop and
// every attendee as they are, then each change as it happens.
func (a *api) workshopEvents() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		watcher := a.ws.Watch(id, "")
		defer watcher.Close()
		d, err := a.ws.Detail(r.Context(), id)
		if err != nil {
			fail(w, a.log, err)
			return
		}
		first := []sseEvent{{workshop.KindWorkshop, d.Workshop}}
		for _, at := range d.Attendees {
			first = append(first, sseEvent{workshop.KindAttendee, at})
		}
		a.stream(w, r, watcher, first, func(e workshop.Event) (sseEvent, bool) {
			name := e.Kind
			if name == workshop.KindActivity { // to the dashboard, an attendee whose last activity changed
				name = workshop.KindAttendee
			}
			return sseEvent{name, json.RawMessage(e.Data)}, true
		})
	})
}

// attendeeEvents streams what an attendee's page needs (Server-Sent Events): "state" (their AttendeeView, at
// first and whenever it changes), "message" (a broadcast) and "workshop" (its title or window changed).
func (a *api) attendeeEvents() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g := grantOf(r.Context())
		watcher := a.ws.Watch(g.Workshop, g.Attendee)
		defer watcher.Close()
		a.ws.Touch(r.Context(), g.Workshop, g.Attendee)
		v, err := a.ws.View(r.Context(), g.Workshop, g.Attendee, time.Now())
		if err != nil {
			fail(w, a.log, err)
			return
		}
		a.stream(w, r, watcher, []sseEvent{{"state", v}}, func(e workshop.Event) (sseEvent, bool) {
			switch e.Kind {
			case workshop.KindAttendee, workshop.KindWorkshop: // their state, and the workshop's as they see it
				v, err := a.ws.View(r.Context(), g.Workshop, g.Attendee, time.Now())
				return sseEvent{"state", v}, err == nil
			case workshop.KindActivity: // their own typing: nothing their page shows
				return sseEvent{}, false
			}
			return sseEvent{e.Kind, json.RawMessage(e.Data)}, true
		})
	})
}

type sseEvent struct {
	name string
	data any
}

// stream writes first, then each event of the watcher as show makes it, with heartbeats, until the client
// leaves or the watcher closes (it fell behind: the client reconnects).
func (a *api) stream(w http.ResponseWriter, r *http.Request, watcher *workshop.Watcher, first []sseEvent,
	show func(workshop.Event) (sseEvent, bool)) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(format string, args ...any) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	send := func(e sseEvent) bool {
		data, err := json.Marshal(e.data)
		return err == nil && write("event: %s\ndata: %s\n\n", e.name, data)
	}
	if !write(": connected\n\n") {
		return
	}
	for _, e := range first {
		if !send(e) {
			return
		}
	}
	beat := time.NewTicker(heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-beat.C:
			if !write(": heartbeat\n\n") {
				return
			}
		case e, ok := <-watcher.C:
			if !ok {
				return
			}
			if out, ok := show(e); ok && !send(out) {
				return
			}
		}
	}
}
