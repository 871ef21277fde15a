package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sandlot/sandlot/session/labproxy"
	"github.com/sandlot/sandlot/stackfetch"
)

// A refused stack is answered with its code, status and message before any session is made (the service here is
// nil: reaching it would panic).
func TestTryRefusals(t *testing.T) {
	files := http.NewServeMux()
	files.HandleFunc("/big.yml", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("services:\n  a: {}\n#" + strings.Repeat("x", 2<<10) + "\n"))
	})
	files.HandleFunc("/page.html", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>\n<p>hi</p>\n")) })
	files.HandleFunc("/slow.yml", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(files)
	t.Cleanup(srv.Close)
	strict := newAPI(nil, labproxy.New(nil, labproxy.Config{}, slog.Default()), Config{}, slog.Default())
	loose := newAPI(nil, labproxy.New(nil, labproxy.Config{}, slog.Default()), Config{StacksPerClient: 100,
		Stacks: stackfetch.Config{AllowLoopback: true, MaxSize: 1 << 10, FirstByte: 200 * time.Millisecond}}, slog.Default())
	for _, tt := range []struct {
		name   string
		a      *api
		body   string
		status int
		code   string
		msg    string
	}{
		{"no stack", loose, `{}`, 400, "bad_stack_url", "stack is required"},
		{"not http", loose, `{"stack":"gopher://example.com/x"}`, 400, "bad_stack_url", "only http and https"},
		{"loopback by default", strict, `{"stack":"` + srv.URL + `/big.yml"}`, 403, "stack_refused", "loopback address"},
		{"private", loose, `{"stack":"http://10.0.0.7/docker-compose.yml"}`, 403, "stack_refused", "private address"},
		{"a name resolving to loopback", strict, `{"stack":"http://localhost:1/x.yml"}`, 403, "stack_refused", "resolves to"},
		{"oversized", loose, `{"stack":"` + srv.URL + `/big.yml"}`, 413, "stack_too_large", "larger than 1 KiB"},
		{"not YAML", loose, `{"stack":"` + srv.URL + `/page.html"}`, 422, "not_compose", "not a compose file"},
		{"slow", loose, `{"stack":"` + srv.URL + `/slow.yml"}`, 504, "stack_timeout", "in time"},
		{"missing", loose, `{"stack":"` + srv.URL + `/nothing.yml"}`, 502, "stack_fetch_failed", "404"},
		{"unknown field", loose, `{"stack":"x","template":"swarm-5m"}`, 400, "invalid_request", "unknown field"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, msg, status := tryCall(t, tt.a, tt.body, "192.0.2.1:1234")
			if status != tt.status || code != tt.code || !strings.Contains(msg, tt.msg) {
				t.Fatalf("POST /api/v1/try %s: %d %s %q; want %d %s with %q", tt.body, status, code, msg, tt.status, tt.code, tt.msg)
			}
		})
	}
}

// A client fetches at most StacksPerClient stacks an hour; another client is not held back by it.
func TestTryRateLimit(t *testing.T) {
	a := newAPI(nil, labproxy.New(nil, labproxy.Config{}, slog.Default()), Config{StacksPerClient: 2}, slog.Default())
	body := `{"stack":"http://10.0.0.7/docker-compose.yml"}` // refused, but counted: the fetch was tried
	for i := range 2 {
		if code, _, _ := tryCall(t, a, body, "192.0.2.1:1"); code != "stack_refused" {
			t.Fatalf("fetch %d: %s", i+1, code)
		}
	}
	if code, msg, status := tryCall(t, a, body, "192.0.2.1:2"); status != 429 || code != "rate_limited" || !strings.Contains(msg, "2 stacks") {
		t.Fatalf("third fetch: %d %s %q", status, code, msg)
	}
	if code, _, _ := tryCall(t, a, body, "192.0.2.2:1"); code != "stack_refused" {
		t.Fatalf("another client: %s", code)
	}
}

func tryCall(t *testing.T, a *api, body, remote string) (code, msg string, status int) {
	t.Helper()
	req := httptest.NewRequest("POST", "/api/v1/try", strings.NewReader(body))
	req.RemoteAddr = remote
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	a.tryStack().ServeHTTP(rec, req)
	var e errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("answer %d %q: %v", rec.Code, rec.Body, err)
	}
	return e.Error.Code, e.Error.Message, rec.Code
}
