package api

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sandlot/sandlot/internal/redistest"
	"github.com/sandlot/sandlot/quota"
	"github.com/sandlot/sandlot/session"
	"github.com/sandlot/sandlot/session/memnodes"
	"github.com/sandlot/sandlot/session/workshop"
)

// Workshops through the real server: memnodes, a real redis-server.

func (s *server) newWorkshop(body any) createdWorkshop {
	s.t.Helper()
	var c createdWorkshop
	s.mustCall(http.StatusCreated, "POST", "/api/v1/workshops", testAdmin, body, &c)
	return c
}

func (s *server) join(code, name string) joined {
	s.t.Helper()
	var j joined
	s.mustCall(http.StatusCreated, "POST", "/api/v1/join/"+code, "", map[string]string{"name": name}, &j)
	return j
}

func (s *server) attendeeView(token string) workshop.AttendeeView {
	s.t.Helper()
	var v workshop.AttendeeView
	s.mustCall(http.StatusOK, "GET", "/api/v1/attendee", token, nil, &v)
	return v
}

// sse is a Server-Sent Events stream read by a goroutine of its own.
type sse struct {
	events chan sseRead
	seen   []sseRead // every event read so far, in order
	cancel func()
}

type sseRead struct{ name, data string }

func (s *server) openEvents(path, token string) *sse {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+path+"?token="+token, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		s.t.Fatalf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	e := &sse{events: make(chan sseRead, 1000), cancel: cancel}
	go func() {
		defer resp.Body.Close()
		defer close(e.events)
		lines := bufio.NewScanner(resp.Body)
		lines.Buffer(nil, 1<<20)
		var name string
		for lines.Scan() {
			line := lines.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				e.events <- sseRead{name, strings.TrimPrefix(line, "data: ")}
			}
		}
	}()
	s.t.Cleanup(cancel)
	return e
}

// waitFor finds an event of name that satisfies ok among those seen, or reads until one comes; it fails after
// within.
func (e *sse) waitFor(t testing.TB, within time.Duration, name string, ok func(data string) bool) {
	t.Helper()
	for _, ev := range e.seen {
		if ev.name == name && ok(ev.data) {
			return
		}
	}
	deadline := time.After(within)
	for {
		select {
		case ev, open := <-e.events:
			if !open {
				t.Fatalf("the stream ended before a %s event", name)
			}
			e.seen = append(e.seen, ev)
			if ev.name == name && ok(ev.data) {
				return
			}
		case <-deadline:
			t.Fatalf("no %s event within %s", name, within)
		}
	}
}

func attendeeEvent(id string, state workshop.AttendeeState) func(string) bool {
	return func(data string) bool {
		var a workshop.Attendee
		return json.Unmarshal([]byte(data), &a) == nil && a.ID == id && a.State == state
	}
}

// eventually polls f until it is true, or fails after within.
func eventually(t *testing.T, within time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A timed training of 3 seats: three wait for the start, a fourth queues; at the start the three get sessions;
// when one is ended the fourth gets theirs; at the end everyone ends with workshop_ended. The instructor's stream
// shows it all, a broadcast reaches an attendee's stream, the attendance lists everyone.
func TestWorkshopTimedTraining(t *testing.T) {
	s, _ := memServer(t, serverOpts{limits: quota.Limits{SessionsPerClient: 1}})
	startsAt := time.Now().Add(2 * time.Second).UTC().Truncate(time.Millisecond)
	endsAt := startsAt.Add(4 * time.Second)
	w := s.newWorkshop(map[string]any{"title": "Swarm 101", "template": "1-node", "seats": 3,
		"starts_at": startsAt, "ends_at": endsAt})
	if !regexp.MustCompile(`^[` + workshop.CodeAlphabet + `]{6}$`).MatchString(w.Code) {
		t.Errorf("code %q", w.Code)
	}
	if w.JoinURL != s.URL+"/w/"+w.Code || !strings.Contains(w.InstructorURL, w.InstructorToken) || w.Locked {
		t.Errorf("links: %+v", w)
	}
	instructor := s.openEvents("/api/v1/workshops/"+w.ID+"/events", w.InstructorToken)
	instructor.waitFor(t, time.Second, "workshop", func(string) bool { return true })

	var people []joined
	for _, name := range []string{"Ada", "Grace", "  Linus  "} {
		j := s.join(strings.ToLower(w.Code), name) // codes are read in any case
		if j.State != workshop.Waiting || j.StartsAt == nil || !j.StartsAt.Equal(startsAt) || j.SessionID != "" {
			t.Fatalf("%s before the start: %+v", name, j)
		}
		instructor.waitFor(t, time.Second, "attendee", attendeeEvent(j.AttendeeID, workshop.Waiting))
		people = append(people, j)
	}
	if people[2].Name != "Linus" {
		t.Errorf("name not trimmed: %q", people[2].Name)
	}
	fourth := s.join(w.Code, "Ken")
	if fourth.State != workshop.Queued || fourth.Position != 1 {
		t.Fatalf("the fourth: %+v", fourth)
	}
	var public workshop.Public
	s.mustCall(200, "GET", "/api/v1/join/"+w.Code, "", nil, &public)
	if public.State != "open" || public.SeatsLeft != 0 || public.Title != "Swarm 101" {
		t.Errorf("public view: %+v", public)
	}
	ada := s.openEvents("/api/v1/attendee/events", people[0].AttendeeToken)
	ada.waitFor(t, time.Second, "state", func(string) bool { return true })

	// At the start: sessions for the three seated, within about a reaper round and a setup.
	for _, p := range people {
		eventually(t, time.Until(startsAt)+1500*time.Millisecond, p.Name+" active", func() bool {
			return s.attendeeView(p.AttendeeToken).State == workshop.Active
		})
		v := s.attendeeView(p.AttendeeToken)
		var sv sessionView
		s.mustCall(200, "GET", "/api/v1/sessions/"+v.SessionID, v.SessionToken, nil, &sv)
		if sv.Workshop == nil || sv.Workshop.Title != "Swarm 101" || sv.Workshop.EndsAt == nil || len(sv.Instances) != 1 {
			t.Errorf("%s's session: %+v", p.Name, sv)
		}
		instructor.waitFor(t, time.Second, "attendee", attendeeEvent(p.AttendeeID, workshop.Active))
	}
	ada.waitFor(t, time.Second, "state", func(data string) bool {
		var v workshop.AttendeeView
		return json.Unmarshal([]byte(data), &v) == nil && v.State == workshop.Active && v.SessionToken != ""
	})

	// A broadcast reaches an attendee's stream at once.
	s.mustCall(200, "POST", "/api/v1/workshops/"+w.ID+"/broadcast", w.InstructorToken, map[string]string{"text": "Break in 5"}, nil)
	ada.waitFor(t, time.Second, "message", func(data string) bool { return strings.Contains(data, "Break in 5") })
	if v := s.attendeeView(people[1].AttendeeToken); len(v.Messages) != 1 || v.Messages[0].Text != "Break in 5" {
		t.Errorf("messages: %+v", v.Messages)
	}

	// Ending one lets the queued one in.
	s.mustCall(200, "POST", "/api/v1/workshops/"+w.ID+"/end", w.InstructorToken, map[string]string{"attendee": people[1].AttendeeID}, nil)
	instructor.waitFor(t, time.Second, "attendee", attendeeEvent(people[1].AttendeeID, workshop.Ended))
	instructor.waitFor(t, 2*time.Second, "attendee", attendeeEvent(fourth.AttendeeID, workshop.Active))
	kenSession := s.attendeeView(fourth.AttendeeToken).SessionID

	// At the end, everyone ends, with workshop_ended.
	instructor.waitFor(t, time.Until(endsAt)+1500*time.Millisecond, "workshop", func(data string) bool {
		return strings.Contains(data, `"state":"ended"`)
	})
	var d workshop.Detail
	eventually(t, time.Second, "everyone ended", func() bool {
		s.mustCall(200, "GET", "/api/v1/workshops/"+w.ID, w.InstructorToken, nil, &d)
		for _, a := range d.Attendees {
			if a.State != workshop.Ended {
				return false
			}
		}
		return len(d.Attendees) == 4
	})
	for _, a := range d.Attendees {
		want := string(session.EndWorkshopEnded)
		if a.ID == people[1].AttendeeID { // the instructor ended this one before the end
			want = string(session.EndAdmin)
		}
		if a.EndReason != want {
			t.Errorf("%s ended for %q, want %q", a.Name, a.EndReason, want)
		}
	}
	var ended sessionView
	s.mustCall(200, "GET", "/api/v1/sessions/"+kenSession, testAdmin, nil, &ended)
	if ended.State != session.StateEnded || ended.EndReason != session.EndWorkshopEnded {
		t.Errorf("Ken's session: %s %s", ended.State, ended.EndReason)
	}
	s.mustCall(410, "POST", "/api/v1/join/"+w.Code, "", map[string]string{"name": "Late"}, nil)

	resp := s.mustCall(200, "GET", "/api/v1/workshops/"+w.ID+"/attendance.csv", w.InstructorToken, nil, nil)
	rows, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil || len(rows) != 5 || strings.Join(rows[0], ",") != "name,joined_at,state,session_id,ended_at,end_reason" {
		t.Fatalf("attendance: %v %v", rows, err)
	}
	for _, row := range rows[1:] {
		want := "workshop_ended"
		if row[0] == people[1].Name {
			want = "admin"
		}
		if row[2] != "ended" || row[3] == "" || row[4] == "" || row[5] != want {
			t.Errorf("attendance row %v, want ended for %s", row, want)
		}
	}
}

// Two Sandlot processes on one Redis let 10 people into 5 seats at once: exactly 5 get sessions (more than one
// address may hold: the room is behind one), 5 queue in order; a new process on the same Redis finds them all,
// and lets the first in line in when a seat frees up.
func TestWorkshopSeatsAcrossServers(t *testing.T) {
	rdb := redistest.New(t)
	mem := func() *server {
		return newServer(t, rdb, serverOpts{limits: quota.Limits{SessionsPerClient: 2},
			nodes: memnodes.New(netip.MustParseAddr("127.0.0.1"))})
	}
	a, b := mem(), mem()
	w := a.newWorkshop(map[string]any{"title": "Room", "template": "1-node", "seats": 5, "duration": "1h"})
	var mu sync.Mutex
	var people []joined
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := []*server{a, b}[i%2]
			j := s.join(w.Code, "P"+string(rune('A'+i)))
			mu.Lock()
			people = append(people, j)
			mu.Unlock()
		}()
	}
	wg.Wait()
	count := func(s *server) (active, queued int, positions map[int]bool) {
		var d workshop.Detail
		s.mustCall(200, "GET", "/api/v1/workshops/"+w.ID, w.InstructorToken, nil, &d)
		positions = map[int]bool{}
		for _, at := range d.Attendees {
			switch at.State {
			case workshop.Active:
				active++
			case workshop.Queued:
				queued++
				positions[at.Position] = true
			}
		}
		return active, queued, positions
	}
	eventually(t, 2*time.Second, "5 active", func() bool { n, _, _ := count(a); return n == 5 })
	active, queued, positions := count(b)
	if active != 5 || queued != 5 || len(positions) != 5 || !positions[1] || !positions[5] {
		t.Fatalf("%d active, %d queued at %v", active, queued, positions)
	}
	live, err := a.store.Live(context.Background())
	if err != nil || len(live) != 5 {
		t.Fatalf("%d live sessions (%v), want 5", len(live), err)
	}
	// A restart: the old processes stop, a new one on the same Redis takes over.
	a.stop()
	b.stop()
	c := mem()
	if n, q, _ := count(c); n != 5 || q != 5 {
		t.Fatalf("after the restart: %d active, %d queued", n, q)
	}
	var first joined
	for _, p := range people {
		if p.State == workshop.Queued && p.Position == 1 {
			first = p
		}
	}
	var victim joined
	for _, p := range people {
		if v := c.attendeeView(p.AttendeeToken); v.State == workshop.Active {
			victim = p
			break
		}
	}
	c.mustCall(200, "POST", "/api/v1/workshops/"+w.ID+"/end", w.InstructorToken, map[string]string{"attendee": victim.AttendeeID}, nil)
	eventually(t, 2*time.Second, "the first in line gets the seat", func() bool {
		return c.attendeeView(first.AttendeeToken).State == workshop.Active
	})
	if n, q, _ := count(c); n != 5 || q != 4 {
		t.Fatalf("after one ended: %d active, %d queued", n, q)
	}
	// More seats let the rest in.
	c.mustCall(200, "POST", "/api/v1/workshops/"+w.ID+"/seats", w.InstructorToken, map[string]int{"seats": 9}, nil)
	eventually(t, 2*time.Second, "9 active", func() bool { n, _, _ := count(c); return n == 9 })
}

// Clear answers to what is wrong: bad workshops, bad names, locked, ended and unknown codes, malformed JSON.
func TestWorkshopRefusals(t *testing.T) {
	s, _ := memServer(t, serverOpts{limits: quota.Limits{JoinsPerClient: 6}})
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	later := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	for name, body := range map[string]string{
		"unknown template":             `{"title":"T","template":"k8s","seats":3}`,
		"no seats":                     `{"title":"T","template":"1-node","seats":0}`,
		"too many seats":               `{"title":"T","template":"1-node","seats":501}`,
		"no title":                     `{"title":" ","template":"1-node","seats":3}`,
		"ends before it starts":        `{"title":"T","template":"1-node","seats":3,"starts_at":"` + later + `","ends_at":"` + future + `"}`,
		"ends in the past":             `{"title":"T","template":"1-node","seats":3,"ends_at":"` + past + `"}`,
		"starts without an end":        `{"title":"T","template":"1-node","seats":3,"starts_at":"` + future + `"}`,
		"longer than --max-duration":   `{"title":"T","template":"1-node","seats":3,"duration":"9h"}`,
		"a duration that is not one":   `{"title":"T","template":"1-node","seats":3,"duration":"soon"}`,
		"malformed JSON":               `{"title":`,
		"an unknown field":             `{"title":"T","template":"1-node","seats":3,"colour":"red"}`,
		"a window over --max-duration": `{"title":"T","template":"1-node","seats":3,"starts_at":"` + future + `","ends_at":"` + time.Now().Add(10*time.Hour).UTC().Format(time.RFC3339) + `"}`,
	} {
		var e apiError
		s.mustCall(400, "POST", "/api/v1/workshops", testAdmin, body, &e)
		if e.Error.Code != "invalid_request" || e.Error.Message == "" {
			t.Errorf("%s: %+v", name, e)
		}
	}

	w := s.newWorkshop(map[string]any{"title": "T", "template": "1-node", "seats": 1})
	for name, body := range map[string]string{
		"no name":            `{"name":""}`,
		"only spaces":        `{"name":"   "}`,
		"a name too long":    `{"name":"` + strings.Repeat("x", 41) + `"}`,
		"a control char":     `{"name":"a\u0000b"}`,
		"a newline":          `{"name":"a\nb"}`,
		"a hidden direction": `{"name":"a\u202eb"}`,
		"malformed JSON":     `{"name":`,
	} {
		var e apiError
		s.mustCall(400, "POST", "/api/v1/join/"+w.Code, "", body, &e)
		if e.Error.Code != "invalid_request" {
			t.Errorf("%s: %+v", name, e)
		}
	}
	var e apiError
	s.mustCall(404, "GET", "/api/v1/join/ZZZZZZ", "", nil, &e)
	s.mustCall(404, "POST", "/api/v1/join/ZZZZZZ", "", map[string]string{"name": "A"}, &e)
	if e.Error.Code != "not_found" || strings.Contains(e.Error.Message, "ZZZZZZ") {
		t.Errorf("unknown code: %+v", e)
	}

	// Past the seats: queued, not refused.
	first, second := s.join(w.Code, "First"), s.join(w.Code, "Second")
	if first.State != workshop.Active || second.State != workshop.Queued || second.Position != 1 {
		t.Fatalf("past the seats: %s, %s %d", first.State, second.State, second.Position)
	}

	s.mustCall(200, "POST", "/api/v1/workshops/"+w.ID+"/lock", w.InstructorToken, map[string]bool{"locked": true}, nil)
	var public workshop.Public
	s.mustCall(200, "GET", "/api/v1/join/"+w.Code, "", nil, &public)
	s.mustCall(403, "POST", "/api/v1/join/"+w.Code, "", map[string]string{"name": "A"}, &e)
	if public.State != "locked" || e.Error.Code != "workshop_locked" {
		t.Errorf("locked: %s, %+v", public.State, e)
	}
	for _, text := range []string{"", strings.Repeat("x", 501)} {
		s.mustCall(400, "POST", "/api/v1/workshops/"+w.ID+"/broadcast", w.InstructorToken, map[string]string{"text": text}, nil)
	}
	s.mustCall(400, "POST", "/api/v1/workshops/"+w.ID+"/seats", w.InstructorToken, map[string]int{"seats": 0}, nil)
	s.mustCall(400, "POST", "/api/v1/workshops/"+w.ID+"/extend", w.InstructorToken, map[string]string{"duration": "-1m"}, nil)
	s.mustCall(409, "POST", "/api/v1/workshops/"+w.ID+"/extend", w.InstructorToken, map[string]string{"duration": "1m", "attendee": second.AttendeeID}, nil)
	s.mustCall(404, "POST", "/api/v1/workshops/"+w.ID+"/end", w.InstructorToken, map[string]string{"attendee": "nobody"}, nil)

	s.mustCall(200, "POST", "/api/v1/workshops/"+w.ID+"/end", w.InstructorToken, nil, nil)
	s.mustCall(200, "GET", "/api/v1/join/"+w.Code, "", nil, &public)
	s.mustCall(410, "POST", "/api/v1/join/"+w.Code, "", map[string]string{"name": "A"}, &e)
	if public.State != "ended" || e.Error.Code != "workshop_ended" {
		t.Errorf("ended: %s, %+v", public.State, e)
	}
	if v := s.attendeeView(second.AttendeeToken); v.State != workshop.Ended || v.EndReason != "workshop_ended" {
		t.Errorf("the queued one after the end: %+v", v)
	}

	// Joins from one address are rate-limited (6 here, counting the refused ones above that got that far).
	w2 := s.newWorkshop(map[string]any{"title": "T2", "template": "1-node", "seats": 10})
	status := 0
	for range 8 {
		resp := s.call("POST", "/api/v1/join/"+w2.Code, "", map[string]string{"name": "A"}, &e)
		if status = resp.StatusCode; status != 201 {
			break
		}
	}
	if status != 429 || e.Error.Code != "rate_limited" {
		t.Errorf("joins past the rate: %d %+v", status, e)
	}
}

// When the host is full, a person with a seat is queued (first in line) rather than refused, and gets a session
// once a place frees up.
func TestWorkshopQueuesWhenTheHostIsFull(t *testing.T) {
	s, _ := memServer(t, serverOpts{limits: quota.Limits{Capacity: 2}})
	w := s.newWorkshop(map[string]any{"title": "Full", "template": "1-node", "seats": 5})
	a, b, c := s.join(w.Code, "A"), s.join(w.Code, "B"), s.join(w.Code, "C")
	if a.State != workshop.Active || b.State != workshop.Active || c.State != workshop.Queued || c.Position != 1 {
		t.Fatalf("on a full host: %s %s %s %d", a.State, b.State, c.State, c.Position)
	}
	s.mustCall(200, "POST", "/api/v1/workshops/"+w.ID+"/end", w.InstructorToken, map[string]string{"attendee": a.AttendeeID}, nil)
	eventually(t, 2*time.Second, "C gets the freed room", func() bool { return s.attendeeView(c.AttendeeToken).State == workshop.Active })
}

// A seat whose session ended without the workshop hearing of it (its process died in between) is freed by the
// reaper's look at active attendees, and the queue moves on.
func TestWorkshopFreesSeatsOfSessionsEndedUnseen(t *testing.T) {
	s, _ := memServer(t, serverOpts{})
	w := s.newWorkshop(map[string]any{"title": "T", "template": "1-node", "seats": 1})
	a, b := s.join(w.Code, "A"), s.join(w.Code, "B")
	if _, ok, err := s.store.ClaimEnd(context.Background(), a.SessionID, session.EndError, "crash", time.Now().Add(time.Minute)); err != nil || !ok {
		t.Fatal(ok, err)
	}
	eventually(t, 10*time.Second, "B gets A's seat", func() bool { return s.attendeeView(b.AttendeeToken).State == workshop.Active })
	if v := s.attendeeView(a.AttendeeToken); v.State != workshop.Ended || v.EndReason != "error" {
		t.Errorf("A: %+v", v)
	}
}

// Extending everyone moves the window's end and every session's deadline; extending one moves theirs only.
func TestWorkshopExtend(t *testing.T) {
	s, _ := memServer(t, serverOpts{})
	endsAt := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	w := s.newWorkshop(map[string]any{"title": "T", "template": "1-node", "seats": 2, "ends_at": endsAt})
	a, b := s.join(w.Code, "A"), s.join(w.Code, "B")
	expires := func(j joined) time.Time {
		var v sessionView
		s.mustCall(200, "GET", "/api/v1/sessions/"+j.SessionID, j.SessionToken, nil, &v)
		return v.ExpiresAt
	}
	a0, b0 := expires(a), expires(b)
	var d workshop.Detail
	s.mustCall(200, "POST", "/api/v1/workshops/"+w.ID+"/extend", w.InstructorToken, map[string]string{"duration": "10m"}, &d)
	if d.EndsAt == nil || !d.EndsAt.Equal(endsAt.Add(10*time.Minute)) {
		t.Errorf("ends_at after extending everyone: %v", d.EndsAt)
	}
	if expires(a).Sub(a0) != 10*time.Minute || expires(b).Sub(b0) != 10*time.Minute {
		t.Errorf("sessions after extending everyone: %s, %s", expires(a).Sub(a0), expires(b).Sub(b0))
	}
	s.mustCall(200, "POST", "/api/v1/workshops/"+w.ID+"/extend", w.InstructorToken, map[string]string{"duration": "5m", "attendee": a.AttendeeID}, nil)
	if expires(a).Sub(a0) != 15*time.Minute || expires(b).Sub(b0) != 10*time.Minute {
		t.Errorf("sessions after extending A: %s, %s", expires(a).Sub(a0), expires(b).Sub(b0))
	}
}

// The end of a workshop ends its attendees' sessions at once, not one after another: each end waits for the
// removal of its nodes, and one after another the last of a room saw the end that many removals after the first.
func TestWorkshopEndsEveryoneAtOnce(t *testing.T) {
	nodes := &gatedDeletes{Nodes: memnodes.New(netip.MustParseAddr("127.0.0.1")), open: make(chan struct{})}
	s := newServer(t, redistest.New(t), serverOpts{nodes: nodes})
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(nodes.open) }) })
	w := s.newWorkshop(map[string]any{"title": "T", "template": "1-node", "seats": 4})
	var people []joined
	for _, name := range []string{"A", "B", "C", "D"} {
		j := s.join(w.Code, name)
		if j.State != workshop.Active {
			t.Fatalf("%s joined an open workshop as %s", name, j.State)
		}
		people = append(people, j)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.ws.End(context.Background(), w.ID, "")
		done <- err
	}()
	eventually(t, 5*time.Second, "every attendee's nodes being removed at once", func() bool {
		return nodes.waiting.Load() == int32(len(people))
	})
	for _, p := range people {
		if sess, err := s.store.Get(context.Background(), p.SessionID); err != nil || sess.State != session.StateEnded {
			t.Errorf("%s's session while its nodes are removed: %s %v", p.Name, sess.State, err)
		}
	}
	release.Do(func() { close(nodes.open) })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, p := range people {
		if v := s.attendeeView(p.AttendeeToken); v.State != workshop.Ended || v.EndReason != string(session.EndWorkshopEnded) {
			t.Errorf("%s after the end: %s (%s)", p.Name, v.State, v.EndReason)
		}
	}
}

// gatedDeletes is memnodes whose session removals wait until open is closed, counting those waiting.
type gatedDeletes struct {
	*memnodes.Nodes
	open    chan struct{}
	waiting atomic.Int32
}

func (g *gatedDeletes) DeleteSession(ctx context.Context, id string) error {
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	select {
	case <-g.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Nodes.DeleteSession(ctx, id)
}

// Codes cannot be tried faster than a room joins: each unknown code, looked up or joined, counts against the
// address's join rate, and past it the answer is 429, whatever the code.
func TestWorkshopCodeGuessing(t *testing.T) {
	s, _ := memServer(t, serverOpts{limits: quota.Limits{JoinsPerClient: 4}})
	w := s.newWorkshop(map[string]any{"title": "T", "template": "1-node", "seats": 3})
	for _, code := range []string{"ZZZZZ2", "ZZZZZ3"} {
		s.mustCall(404, "GET", "/api/v1/join/"+code, "", nil, nil)
		s.mustCall(404, "POST", "/api/v1/join/"+code, "", map[string]string{"name": "Mallory"}, nil)
	}
	var e apiError
	s.mustCall(429, "GET", "/api/v1/join/ZZZZZ4", "", nil, &e)
	if e.Error.Code != "rate_limited" {
		t.Errorf("past the rate: %+v", e)
	}
	s.mustCall(429, "POST", "/api/v1/join/"+w.Code, "", map[string]string{"name": "Mallory"}, nil)
	s.mustCall(200, "GET", "/api/v1/join/"+w.Code, "", nil, nil) // a known code still answers (it costs nothing)
}

// A workshop asks the warm pool for its seats before its start, with no --pool: its attendees get pooled sessions
// (admitted by seat, recorded as the workshop's), the pool keeps one for the free seat and makes no more; a
// restart before the start neither ends nor remakes them; at the workshop's end the one left is ended.
func TestWorkshopFromThePool(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.New(t)
	nodes := memnodes.New(netip.MustParseAddr("127.0.0.1"))
	l := quota.Limits{SessionsPerClient: 1, Capacity: 10}
	a := poolServer(t, rdb, nodes, nil, l)
	startsAt := time.Now().Add(6 * time.Second).UTC()
	w := a.newWorkshop(map[string]any{"title": "Pooled", "template": "1-node", "seats": 3,
		"starts_at": startsAt, "ends_at": startsAt.Add(3 * time.Second)})
	pooled := waitPool(t, a, "1-node", 3)
	a.stop()

	b := poolServer(t, rdb, nodes, nil, l)
	time.Sleep(1500 * time.Millisecond) // the restarted pool and workshops look at what they hold
	if got := waitPool(t, b, "1-node", 3); !slices.Equal(got, pooled) {
		t.Fatalf("after a restart the pool holds %v, want %v", got, pooled)
	}
	people := []joined{b.join(w.Code, "Ada"), b.join(w.Code, "Grace")}
	var claimed []string
	for _, p := range people {
		eventually(t, time.Until(startsAt)+2*time.Second, p.Name+" active", func() bool {
			return b.attendeeView(p.AttendeeToken).State == workshop.Active
		})
		id := b.attendeeView(p.AttendeeToken).SessionID
		if !slices.Contains(pooled, id) {
			t.Errorf("%s got %s, not a pooled session (%v)", p.Name, id, pooled)
		}
		sess, err := b.store.Get(ctx, id)
		if err != nil || sess.Workshop != w.ID || sess.Client != "workshop:"+w.ID || sess.State != session.StateActive {
			t.Errorf("%s's session: %+v %v", p.Name, sess, err)
		}
		claimed = append(claimed, id)
	}
	if slices.Equal(claimed[:1], claimed[1:]) {
		t.Fatalf("both got %s", claimed[0])
	}
	time.Sleep(1500 * time.Millisecond) // the pool would have started refills by now
	left := waitPool(t, b, "1-node", 1)
	if slices.Contains(claimed, left[0]) || !slices.Contains(pooled, left[0]) {
		t.Fatalf("the pool keeps %v; claimed %v of %v", left, claimed, pooled)
	}
	if n := counter(t, b, "sandlot_pool_claims_total", "1-node"); n != 2 {
		t.Errorf("%v claims, want 2", n)
	}

	waitPool(t, b, "1-node", 0) // the workshop ended: the free seat's session too
	if sess, _ := b.store.Get(ctx, left[0]); sess.State != session.StateEnded {
		t.Errorf("the pooled session of the free seat after the end: %+v", sess)
	}
	if in, _ := nodes.List(ctx, left[0]); len(in) != 0 {
		t.Errorf("the free seat's pooled nodes outlive the workshop: %+v", in)
	}
}

// An attendee's last activity is their last keystroke: typing into their terminal shows on the instructor's
// dashboard (its GET and, live, its event stream); watching and trying to type as a viewer (the instructor, a
// viewer link) does not count; the page asking for its state is last_seen, not activity.
func TestWorkshopLastActivityIsTyping(t *testing.T) {
	s, _ := memServer(t, serverOpts{})
	w := s.newWorkshop(map[string]any{"title": "T", "template": "1-node", "seats": 2, "duration": "1h"})
	ada := s.join(w.Code, "Ada")
	if ada.State != workshop.Active || ada.SessionToken == "" {
		t.Fatalf("Ada: %+v", ada)
	}
	attendee := func() workshop.Attendee {
		var d workshop.Detail
		s.mustCall(200, "GET", "/api/v1/workshops/"+w.ID, w.InstructorToken, nil, &d)
		if len(d.Attendees) != 1 {
			t.Fatalf("attendees: %+v", d.Attendees)
		}
		return d.Attendees[0]
	}
	s.attendeeView(ada.AttendeeToken) // the page asks: seen, not active
	if a := attendee(); a.LastActivity != nil || a.LastSeen == nil {
		t.Fatalf("before typing: last_activity %v, last_seen %v", a.LastActivity, a.LastSeen)
	}
	instructor := s.openEvents("/api/v1/workshops/"+w.ID+"/events", w.InstructorToken)
	instructor.waitFor(t, time.Second, "attendee", attendeeEvent(ada.AttendeeID, workshop.Active))
	path := "/api/v1/sessions/" + ada.SessionID + "/instances/node1/terminal"

	// Viewers watch, and may not type: the connection is closed and nothing reaches the shell.
	var link viewerLink
	s.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+ada.SessionID+"/viewer", ada.SessionToken, nil, &link)
	for who, token := range map[string]string{"the instructor": w.InstructorToken, "a viewer link": link.Token} {
		v, _, err := s.openTerminal(t, path+"?token="+token, nil, 1, 0)
		if err != nil {
			t.Fatalf("%s watching: %v", who, err)
		}
		v.typeLine("echo from-a-viewer")
		if err := v.readUntil("from-a-viewer"); !websocket.IsCloseError(err, 4002) {
			t.Fatalf("%s typing: %v, want closed as read-only", who, err)
		}
		v.ws.Close()
	}

	typedAt := time.Now()
	d, _, err := s.openTerminal(t, path, http.Header{"Authorization": {"Bearer " + ada.SessionToken}}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.ws.Close()
	d.typeLine("echo typed")
	if err := d.readUntil("echo typed"); err != nil {
		t.Fatal(err)
	}
	// Had a viewer's attempt counted, this keystroke would fall within its InputEvery and the activity would be
	// older than typedAt.
	typed := func(data string) bool {
		var a workshop.Attendee
		return json.Unmarshal([]byte(data), &a) == nil && a.ID == ada.AttendeeID && a.LastActivity != nil &&
			!a.LastActivity.Before(typedAt) && a.State == workshop.Active && len(a.Nodes) == 1
	}
	instructor.waitFor(t, 5*time.Second, "attendee", typed)
	a := attendee()
	if a.LastActivity == nil || a.LastActivity.Before(typedAt) || a.LastActivity.After(time.Now()) {
		t.Errorf("GET after typing: last_activity %v, typed at %v", a.LastActivity, typedAt)
	}
}

// The instructor's demo: one session per workshop, not a seat; every attendee's view carries a viewer token for
// it that watches its terminals and does nothing else; it ends with the workshop.
func TestWorkshopDemo(t *testing.T) {
	s, _ := memServer(t, serverOpts{})
	w := s.newWorkshop(map[string]any{"title": "Demo", "template": "1-node", "seats": 1, "duration": "1h"})
	ada := s.join(w.Code, "Ada")
	var demo workshop.Demo
	s.mustCall(http.StatusCreated, "POST", "/api/v1/workshops/"+w.ID+"/demo", w.InstructorToken, nil, &demo)
	if demo.SessionID == "" || demo.Token == "" || demo.SessionID == ada.SessionID {
		t.Fatalf("demo: %+v (Ada's session %s)", demo, ada.SessionID)
	}
	var again workshop.Demo
	s.mustCall(http.StatusCreated, "POST", "/api/v1/workshops/"+w.ID+"/demo", w.InstructorToken, nil, &again)
	if again.SessionID != demo.SessionID {
		t.Errorf("a second demo %s, want the live %s", again.SessionID, demo.SessionID)
	}
	if bob := s.join(w.Code, "Bob"); bob.State != workshop.Queued {
		t.Errorf("the demo took Ada's only seat's place? Bob is %s", bob.State)
	}
	var sv sessionView
	s.mustCall(http.StatusOK, "GET", "/api/v1/sessions/"+demo.SessionID, demo.Token, nil, &sv)
	if sv.Workshop == nil || sv.Workshop.Title != "Demo" || len(sv.Instances) != 1 {
		t.Errorf("the demo session: %+v", sv)
	}

	v := s.attendeeView(ada.AttendeeToken)
	if v.Demo == nil || v.Demo.SessionID != demo.SessionID || v.Demo.ViewerToken == "" {
		t.Fatalf("Ada's view of the demo: %+v", v.Demo)
	}
	viewer := v.Demo.ViewerToken
	expectRejection(t, s.call("POST", "/api/v1/sessions/"+demo.SessionID+"/instances/node1/exec", viewer,
		map[string][]string{"cmd": {"true"}}, nil), 403, "read_only", false)
	expectRejection(t, s.call("POST", "/api/v1/sessions/"+ada.SessionID+"/instances/node1/exec", viewer,
		map[string][]string{"cmd": {"true"}}, nil), 403, "wrong_session", false)
	expectRejection(t, s.call("POST", "/api/v1/workshops/"+w.ID+"/demo", ada.AttendeeToken, nil, nil), 403, "wrong_scope", false)
	term, _, err := s.openTerminal(t, "/api/v1/sessions/"+demo.SessionID+"/instances/node1/terminal?token="+viewer, nil, 1, 0)
	if err != nil {
		t.Fatalf("watch the demo: %v", err)
	}
	term.ws.Close()

	s.mustCall(http.StatusOK, "POST", "/api/v1/workshops/"+w.ID+"/end", w.InstructorToken, map[string]string{}, nil)
	s.mustCall(http.StatusOK, "GET", "/api/v1/sessions/"+demo.SessionID, testAdmin, nil, &sv)
	if sv.State != session.StateEnded || sv.EndReason != session.EndWorkshopEnded {
		t.Errorf("the demo after the workshop's end: %s %s", sv.State, sv.EndReason)
	}
	if v := s.attendeeView(ada.AttendeeToken); v.Demo != nil {
		t.Errorf("Ada still sees a demo after the end: %+v", v.Demo)
	}
	s.mustCall(http.StatusGone, "POST", "/api/v1/workshops/"+w.ID+"/demo", w.InstructorToken, nil, nil)
}

// A workshop's images are pulled into each of its attendees' nodes as they are made, a node added later too; such
// attendees never get a pooled session (made without the images). Bad image lists are refused, naming the field.
func TestWorkshopImages(t *testing.T) {
	rdb := redistest.New(t)
	nodes := memnodes.New(netip.MustParseAddr("127.0.0.1"))
	s := poolServer(t, rdb, nodes, map[string]int{"1-node": 1}, quota.Limits{})
	pooled := waitPool(t, s, "1-node", 1)
	imgs := []string{"nginx:alpine", "redis:7"}
	w := s.newWorkshop(map[string]any{"title": "Images", "template": "1-node", "seats": 2, "duration": "1h",
		"images": imgs})
	if !slices.Equal(w.Images, imgs) {
		t.Errorf("the workshop's images: %v", w.Images)
	}
	ada := s.join(w.Code, "Ada")
	eventually(t, 10*time.Second, "Ada active", func() bool {
		return s.attendeeView(ada.AttendeeToken).State == workshop.Active
	})
	id := s.attendeeView(ada.AttendeeToken).SessionID
	if slices.Contains(pooled, id) {
		t.Fatalf("Ada got the pooled session %s, made without the workshop's images", id)
	}
	if got := nodes.Preloaded(id, "node1"); !slices.Equal(got, imgs) {
		t.Errorf("node1 preloaded %v, want %v", got, imgs)
	}
	sess, err := s.store.Get(context.Background(), id)
	if err != nil || !slices.Equal(sess.Images, imgs) {
		t.Errorf("the session's images: %v %v", sess.Images, err)
	}
	tok := s.issue(t, session.Grant{Scope: session.ScopeSession, Session: id})
	s.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+id+"/instances", tok, nil, nil)
	if got := nodes.Preloaded(id, "node2"); !slices.Equal(got, imgs) {
		t.Errorf("node2, added later, preloaded %v, want %v", got, imgs)
	}
	if got := waitPool(t, s, "1-node", 1); !slices.Equal(got, pooled) {
		t.Errorf("the pool holds %v, want its untouched %v", got, pooled)
	}

	many := make([]string, session.MaxImages+1)
	for i := range many {
		many[i] = fmt.Sprintf("busybox:1.%d", i)
	}
	for _, bad := range [][]string{{"Not A Reference"}, {""}, many} {
		var e apiError
		resp := s.call("POST", "/api/v1/workshops", testAdmin, map[string]any{"title": "Bad", "template": "1-node",
			"seats": 1, "images": bad}, &e)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(e.Error.Message, "images") {
			t.Errorf("images %q: %d %+v", bad, resp.StatusCode, e)
		}
	}
}
