package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The workshop subcommand sends what the API takes, with the admin token, and prints what people need.
func TestWorkshopCommand(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization")+" "+string(body))
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/api/v1/workshops" && r.Method == "POST":
			w.WriteHeader(201)
			_ = json.NewEncoder(w).Encode(map[string]any{"id": "w1", "code": "ABC234", "title": "Swarm 101",
				"join_url": "http://x/w/ABC234", "instructor_url": "http://x/w/w1/instructor#token=t"})
		case r.URL.Path == "/api/v1/workshops/w1":
			_, _ = io.WriteString(w, `{"id":"w1","code":"ABC234","title":"Swarm 101","seats":2,"state":"open",
				"attendees":[{"id":"a","name":"Ada","state":"active","session_id":"s1","nodes":[{"name":"node1","status":"running"}]},
				{"id":"b","name":"Bob","state":"queued","position":1}],"messages":[]}`)
		case r.URL.Path == "/api/v1/workshops/w1/broadcast":
			_, _ = io.WriteString(w, `{"at":"2026-01-01T10:00:00Z","text":"hi"}`)
		default:
			w.WriteHeader(404)
			_, _ = io.WriteString(w, `{"error":{"code":"not_found","message":"no such workshop"}}`)
		}
	}))
	defer srv.Close()
	env := func(k string) string {
		return map[string]string{"SANDLOT_SERVER": srv.URL, "SANDLOT_ADMIN_TOKEN": "admin-token-0123456789"}[k]
	}
	sandlot := func(args ...string) (string, error) {
		var out strings.Builder
		err := run(context.Background(), append([]string{"sandlot", "workshop"}, args...), env, &out, io.Discard)
		return out.String(), err
	}
	out, err := sandlot("create", "--title", "Swarm 101", "--template", "swarm-1m1w", "--seats", "30",
		"--starts-at", "2026-03-01T09:00:00Z", "--ends-at", "2026-03-01T12:00:00Z", "--images", "nginx:alpine,redis:7")
	if err != nil || !strings.Contains(out, "ABC234") || !strings.Contains(out, "http://x/w/w1/instructor#token=t") {
		t.Fatalf("create: %q %v", out, err)
	}
	if !strings.Contains(got[0], `Bearer admin-token-0123456789`) || !strings.Contains(got[0], `"seats":30`) ||
		!strings.Contains(got[0], `"starts_at":"2026-03-01T09:00:00Z"`) ||
		!strings.Contains(got[0], `"images":["nginx:alpine","redis:7"]`) {
		t.Errorf("create sent %s", got[0])
	}
	if out, err = sandlot("show", "w1"); err != nil || !strings.Contains(out, "Ada") || !strings.Contains(out, "queued (1)") {
		t.Errorf("show: %q %v", out, err)
	}
	if _, err = sandlot("broadcast", "w1", "Break in 5"); err != nil || !strings.Contains(got[len(got)-1], `{"text":"Break in 5"}`) {
		t.Errorf("broadcast: %v, sent %s", err, got[len(got)-1])
	}
	if _, err = sandlot("end", "nope"); err == nil || !strings.Contains(err.Error(), "no such workshop") {
		t.Errorf("end of an unknown workshop: %v", err)
	}
	if _, err = sandlot("create", "--starts-at", "tomorrow"); err == nil || !strings.Contains(err.Error(), "RFC 3339") {
		t.Errorf("a bad time: %v", err)
	}
	if _, err = sandlot("show"); err == nil {
		t.Error("show without an id")
	}
}
