package api

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sandlot/sandlot/internal/redistest"
	"github.com/sandlot/sandlot/quota"
	"github.com/sandlot/sandlot/session/workshop"
)

// BenchmarkWorkshopJoinServer: the server's side of a room pressing Join at once, without browsers (whose 20 pages
// on this machine's 2 cores are most of e2e's BenchmarkWorkshopJoin): a workshop (1-node), open now, whose seats
// the warm pool holds ready; 20 attendees each join within one second (POST /api/v1/join/{code}), open node1's
// terminal with the session token of the answer and type a command; each is timed from the join to the command's
// output. Reports p50 and p95, and one attendee joining alone before the room (the plain figure).
func BenchmarkWorkshopJoinServer(b *testing.B) {
	const attendees = 20
	s := newServer(b, redistest.New(b), serverOpts{limits: quota.Limits{Capacity: attendees + 5, SessionsPerClient: 50,
		CreationsPerClient: 1000, JoinsPerClient: 1000}})
	var room, alone, answered []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		w := s.newWorkshop(map[string]any{"title": fmt.Sprint("Room ", i), "template": "1-node",
			"seats": attendees + 1, "duration": "1h"})
		waitPool(b, s, "1-node", attendees+1)
		time.Sleep(3 * time.Second) // the engine settles after the fill
		b.StartTimer()
		took, _, err := joinToShell(s, w.Code, "alone")
		if err != nil {
			b.Fatal(err)
		}
		alone = append(alone, took)
		var mu sync.Mutex
		var wg sync.WaitGroup
		errs := make(chan error, attendees)
		for a := range attendees {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(a) * time.Second / attendees) // all within one second
				took, active, err := joinToShell(s, w.Code, fmt.Sprint("attendee ", a))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				room, answered = append(room, took), append(answered, active)
				mu.Unlock()
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Error(err)
		}
		b.StopTimer()
		s.mustCall(http.StatusOK, "POST", "/api/v1/workshops/"+w.ID+"/end", testAdmin, map[string]string{}, nil)
		waitPool(b, s, "1-node", 0)
		b.StartTimer()
	}
	b.ReportMetric(ms(percentile(room, 50)), "ms-p50")
	b.ReportMetric(ms(percentile(room, 95)), "ms-p95")
	b.ReportMetric(ms(percentile(alone, 50)), "ms-alone")
	b.ReportMetric(ms(percentile(answered, 50)), "ms-p50-session")
}

// joinToShell joins a workshop as name and runs a command in node1's terminal; it returns how long that took, and
// how long until the attendee had their session.
func joinToShell(s *server, code, name string) (took, active time.Duration, err error) {
	start := time.Now()
	var j workshop.Joined
	if resp := s.call("POST", "/api/v1/join/"+code, "", map[string]string{"name": name}, &j); resp.StatusCode != http.StatusCreated {
		return 0, 0, fmt.Errorf("%s: join: %d", name, resp.StatusCode)
	}
	for j.State != workshop.Active || j.SessionToken == "" {
		if time.Since(start) > time.Minute {
			return 0, 0, fmt.Errorf("%s: not active after a minute: %+v", name, j.AttendeeView)
		}
		time.Sleep(20 * time.Millisecond)
		s.call("GET", "/api/v1/attendee", j.AttendeeToken, nil, &j.AttendeeView)
	}
	active = time.Since(start)
	url := "ws" + s.URL[len("http"):] + "/api/v1/sessions/" + j.SessionID + "/instances/node1/terminal?t=1"
	ws, _, err := websocket.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer " + j.SessionToken}})
	if err != nil {
		return 0, 0, fmt.Errorf("%s: terminal: %w", name, err)
	}
	defer ws.Close()
	_ = ws.WriteMessage(websocket.BinaryMessage, binary.BigEndian.AppendUint64([]byte{'h', 1, 0, 0, 80, 0, 24}, 0))
	_ = ws.WriteMessage(websocket.BinaryMessage, append([]byte{'i'}, "echo READY-$((6*7))\n"...))
	_ = ws.SetReadDeadline(time.Now().Add(time.Minute))
	var seen bytes.Buffer
	for !bytes.Contains(seen.Bytes(), []byte("READY-42")) {
		_, m, err := ws.ReadMessage()
		if err != nil {
			return 0, 0, fmt.Errorf("%s: terminal: %w (saw %q)", name, err, seen.Bytes())
		}
		if m[0] == 'o' {
			seen.Write(m[9:])
		}
	}
	return time.Since(start), active, nil
}
