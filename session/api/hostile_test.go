package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/sandlot/sandlot/instance"
	"github.com/sandlot/sandlot/internal/redistest"
	"github.com/sandlot/sandlot/quota"
	"github.com/sandlot/sandlot/session"
	"github.com/sandlot/sandlot/session/labproxy"
	"github.com/sandlot/sandlot/session/memnodes"
	"github.com/sandlot/sandlot/session/workshop"
)

// The HTTP layer against hostile clients, without an engine: the service is real, on a real redis-server, and its
// nodes are in memory (memnodes), all at 127.0.0.1 so that the lab proxy reaches servers of the test's own.

func memServer(t *testing.T, o serverOpts) (*server, *memnodes.Nodes) {
	t.Helper()
	nodes := memnodes.New(netip.MustParseAddr("127.0.0.1"))
	o.nodes = nodes
	return newServer(t, redistest.New(t), o), nodes
}

// every route's answer to every kind of token: who may call it, and with what.
func TestEveryRouteChecksItsToken(t *testing.T) {
	s, _ := memServer(t, serverOpts{})
	a, b := s.create(nil), s.create(nil)
	for _, c := range []created{a, b} {
		s.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+c.ID+"/instances", c.Token, nil, nil)
	}
	viewer := s.issue(t, session.Grant{Scope: session.ScopeViewer, Session: a.ID})
	port := s.issue(t, session.Grant{Scope: session.ScopePort, Session: a.ID, Node: "node1", Port: 8080})
	expired := s.issue(t, session.Grant{Scope: session.ScopeSession, Session: a.ID, Expires: time.Now().Add(-time.Second)})

	routes := newAPI(nil, nil, Config{}, nil).routesForTests()
	tested := 0
	for _, r := range routes {
		if !strings.HasPrefix(r.pattern, "/api/v1/sessions/{id}") {
			continue
		}
		tested++
		path := strings.NewReplacer("{id}", a.ID, "{name}", "node1", "{port}", "8080").Replace(r.pattern)
		terminal := strings.HasSuffix(r.pattern, "/terminal")
		for _, tc := range []struct {
			who    string
			token  string
			status int
			code   string
		}{
			{"no token", "", 401, "no_token"},
			{"garbage", "garbage", 401, "bad_token"},
			{"an expired token", expired, 401, "bad_token"},
			{"another session's token", b.Token, 403, "wrong_session"},
			{"a lab link", port, 403, "wrong_scope"},
			{"a viewer", viewer, 403, "read_only"},
			{"the session's token", a.Token, 0, ""},
			{"the admin token", testAdmin, 0, ""},
		} {
			if terminal && tc.who == "a viewer" {
				tc.status, tc.code = 0, "" // a viewer may watch
			}
			t.Run(r.method+" "+r.pattern+" with "+tc.who, func(t *testing.T) {
				resp, body := s.send(r.method, path, tc.token, contentTypeFor(r.pattern, r.method), bytes.NewReader(bodyFor(r.pattern, r.method)))
				var e apiError
				_ = json.Unmarshal(body, &e)
				switch {
				case tc.status == 0 && (resp.StatusCode == 401 || resp.StatusCode == 403):
					t.Errorf("refused: %d %s", resp.StatusCode, body)
				case tc.status != 0 && (resp.StatusCode != tc.status || e.Error.Code != tc.code):
					t.Errorf("%d %s, want %d %s", resp.StatusCode, body, tc.status, tc.code)
				}
			})
		}
	}
	if tested < 15 {
		t.Fatalf("only %d session routes found", tested)
	}
	// The admin-only route.
	s.mustCall(403, "GET", "/api/v1/sessions", a.Token, nil, nil)
	s.mustCall(403, "GET", "/api/v1/sessions", viewer, nil, nil)
	s.mustCall(401, "GET", "/api/v1/sessions", "", nil, nil)
	s.mustCall(200, "GET", "/api/v1/sessions", testAdmin, nil, nil)
}

// routesForTests are the routes, built without a service (their handlers are never called).
func (a *api) routesForTests() []route {
	if a.proxy == nil {
		a.proxy = labproxyForTests()
	}
	return a.routes()
}

func labproxyForTests() *labproxy.Proxy { return labproxy.New(nil, labproxy.Config{}, slog.Default()) }

// originWideForTests are response headers that would act on all of Sandlot's origin.
var originWideForTests = []string{"Set-Cookie", "Clear-Site-Data", "Strict-Transport-Security",
	"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Service-Worker-Allowed"}

func contentTypeFor(pattern, method string) string {
	switch {
	case strings.HasSuffix(pattern, "/files") && method == "POST":
		return "multipart/form-data; boundary=x"
	case strings.HasSuffix(pattern, "/files") && method == "PUT":
		return "application/octet-stream"
	case method == "POST" || method == "DELETE":
		return "application/json"
	}
	return ""
}

func bodyFor(pattern, method string) []byte {
	switch {
	case strings.HasSuffix(pattern, "/exec"):
		return []byte(`{"cmd":["true"]}`)
	case strings.HasSuffix(pattern, "/extend"):
		return []byte(`{"duration":"1m"}`)
	case strings.HasSuffix(pattern, "/setup"):
		return []byte(`{"template":"1-node"}`)
	case strings.HasSuffix(pattern, "/files") && method == "POST":
		return []byte("--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nhi\r\n--x--\r\n")
	case strings.HasSuffix(pattern, "/files") && method == "PUT":
		return []byte("hi")
	case method == "POST":
		return []byte(`{}`)
	}
	return nil
}

func (s *server) issue(t *testing.T, g session.Grant) string {
	t.Helper()
	if g.Expires.IsZero() {
		g.Expires = time.Now().Add(time.Hour)
	}
	token, err := s.tokens.Issue(g)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// Cross-site requests: a page of another origin cannot change anything with the visitor's cookie, and a form
// cannot post what the API takes (defect 1).
func TestCrossSiteRequestsRefused(t *testing.T) {
	s, _ := memServer(t, serverOpts{api: Config{Origins: []string{"https://docs.example.com"}}})
	c := s.create(nil)
	path := "/api/v1/sessions/" + c.ID
	withCookie := func(method, p, origin, contentType, body string) (*http.Response, []byte) {
		req, _ := http.NewRequest(method, s.URL+p, strings.NewReader(body))
		req.AddCookie(&http.Cookie{Name: "sandlot_" + c.ID, Value: c.Token})
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp, data
	}
	for _, tc := range []struct {
		name                              string
		method, path, origin, ctype, body string
		status                            int
		code                              string
	}{
		{"a lab app's page stops a node", "POST", path + "/instances/node1/stop", "http://node1-8080-" + c.ID + ".localhost", "application/json", "", 403, "bad_origin"},
		{"another site runs a command", "POST", path + "/instances/node1/exec", "https://evil.example", "application/json", `{"cmd":["id"]}`, 403, "bad_origin"},
		{"another site ends the session", "DELETE", path, "https://evil.example", "", "", 403, "bad_origin"},
		{"another site uploads", "POST", path + "/instances/node1/files", "https://evil.example", "multipart/form-data; boundary=x", "--x--", 403, "bad_origin"},
		{"another site saves a file", "PUT", path + "/instances/node1/files?path=/root/x", "https://evil.example", "text/plain", "x", 403, "bad_origin"},
		{"a text/plain form", "POST", path + "/instances/node1/exec", "", "text/plain", `{"cmd":["id"]}`, 415, "unsupported_media_type"},
		{"a urlencoded form", "POST", path + "/extend", "", "application/x-www-form-urlencoded", "duration=1h", 415, "unsupported_media_type"},
		{"a JSON body without a type", "POST", path + "/extend", "", "", `{"duration":"1m"}`, 415, "unsupported_media_type"},
		{"an upload that is not multipart", "POST", path + "/instances/node1/files", "", "text/plain", "x", 415, "unsupported_media_type"},
		{"a new session from a form", "POST", "/api/v1/sessions", "https://evil.example", "text/plain", `{}`, 403, "bad_origin"},
		{"Sandlot's own page", "POST", path + "/extend", s.URL, "application/json", `{"duration":"1m"}`, 200, ""},
		{"a listed origin", "POST", path + "/extend", "https://docs.example.com", "application/json", `{"duration":"1m"}`, 200, ""},
		{"no Origin (curl)", "POST", path + "/extend", "", "application/json; charset=utf-8", `{"duration":"1m"}`, 200, ""},
		{"reading from another site is not changing", "GET", path, "https://evil.example", "", "", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := withCookie(tc.method, tc.path, tc.origin, tc.ctype, tc.body)
			var e apiError
			_ = json.Unmarshal(body, &e)
			if resp.StatusCode != tc.status || e.Error.Code != tc.code {
				t.Errorf("%d %s, want %d %q", resp.StatusCode, body, tc.status, tc.code)
			}
		})
	}
	var got created
	s.mustCall(200, "GET", path, c.Token, nil, &got)
	if got.State != session.StateActive || len(got.Instances) != 0 {
		t.Errorf("the refused requests changed the session: %+v", got.Session)
	}
}

// A launch token's node limit holds for nodes added one at a time, not only for its template (defect 3).
func TestLaunchTokenNodeLimit(t *testing.T) {
	s, nodes := memServer(t, serverOpts{})
	claims := session.LaunchClaims{MaxInstances: 2}
	claims.Subject, claims.ExpiresAt = "reader-1", jwt.NewNumericDate(time.Now().Add(time.Hour))
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["kid"] = testIntegratorKid
	launch, _ := tok.SignedString(testIntegratorSecret)
	var c created
	s.mustCall(201, "POST", "/api/v1/sessions", launch, map[string]string{}, &c)
	if c.MaxInstances != 2 {
		t.Fatalf("max instances %d", c.MaxInstances)
	}
	path := "/api/v1/sessions/" + c.ID + "/instances"
	s.mustCall(201, "POST", path, c.Token, nil, nil)
	s.mustCall(201, "POST", path, c.Token, nil, nil)
	resp := s.call("POST", path, c.Token, nil, nil)
	expectRejection(t, resp, 429, quota.CodeInstanceQuota, false)
	if nodes.Count() != 2 {
		t.Fatalf("%d nodes made for a session that may have 2", nodes.Count())
	}
	var empty created
	s.mustCall(201, "POST", "/api/v1/sessions", launch, map[string]string{}, &empty)
	s.mustCall(400, "POST", "/api/v1/sessions/"+empty.ID+"/setup", empty.Token, map[string]string{"template": "swarm-3m2w"}, nil)
}

// An exec's answer is bounded whatever the bytes of its output, and a session runs only so many at once (defect 4).
func TestExecAnswersBounded(t *testing.T) {
	release, running := make(chan struct{}), make(chan struct{}, 2)
	s, nodes := memServer(t, serverOpts{cfg: session.Config{ExecsPerSession: 2}})
	nodes.Answer = func(ctx context.Context, _, _ string, cmd []string) (instance.ExecResult, error) {
		switch cmd[0] {
		case "controls":
			return instance.ExecResult{Stdout: bytes.Repeat([]byte{1}, 8<<20), Stderr: bytes.Repeat([]byte{'"'}, 8<<20)}, nil
		case "binary":
			return instance.ExecResult{Stdout: []byte{0xff, 0xfe, 0, 1, 2}}, nil
		case "text":
			return instance.ExecResult{Stdout: []byte("héllo\tworld\n")}, nil
		case "wait":
			running <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return instance.ExecResult{}, nil
	}
	c := s.create(nil)
	s.mustCall(201, "POST", "/api/v1/sessions/"+c.ID+"/instances", c.Token, nil, nil)
	exec := func(cmd string) (*http.Response, execResponse, int) {
		resp := s.call("POST", "/api/v1/sessions/"+c.ID+"/instances/node1/exec", c.Token, map[string][]string{"cmd": {cmd}}, nil)
		body, _ := io.ReadAll(resp.Body)
		var out execResponse
		_ = json.Unmarshal(body, &out)
		return resp, out, len(body)
	}
	_, out, size := exec("controls")
	if size > 2<<20+4096 || !out.Truncated || out.Encoding != "base64" {
		t.Errorf("8 MiB of control bytes: an answer of %d bytes, truncated %v, encoding %q", size, out.Truncated, out.Encoding)
	}
	if raw, err := base64.StdEncoding.DecodeString(out.Stdout); err != nil || len(raw) != DefaultMaxExecOutput || raw[0] != 1 {
		t.Errorf("the base64 stdout decodes to %d bytes (%v)", len(raw), err)
	}
	if _, out, _ := exec("binary"); out.Encoding != "base64" || out.Stdout != base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe, 0, 1, 2}) {
		t.Errorf("binary output: %+v", out)
	}
	if _, out, _ := exec("text"); out.Encoding != "text" || out.Stdout != "héllo\tworld\n" || out.Truncated {
		t.Errorf("text output: %+v", out)
	}

	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); exec("wait") }()
	}
	// Both long commands hold their slots before the third is tried: a probe sent earlier could take a slot itself
	// and turn one of them away.
	<-running
	<-running
	resp := s.call("POST", "/api/v1/sessions/"+c.ID+"/instances/node1/exec", c.Token, map[string][]string{"cmd": {"text"}}, nil)
	expectRejection(t, resp, 429, "too_many_execs", false)
	close(release)
	wg.Wait()
	if resp, _, _ := exec("text"); resp.StatusCode != 200 {
		t.Errorf("after the long commands ended: %d", resp.StatusCode)
	}
}

// A client that sends its body a byte now and then is cut off, instead of holding the request open (defect 5).
func TestSlowBodiesCutOff(t *testing.T) {
	defer func(idle, grace time.Duration) { bodyIdle, bodyGrace = idle, grace }(bodyIdle, bodyGrace)
	bodyIdle, bodyGrace = 400*time.Millisecond, time.Second
	s, _ := memServer(t, serverOpts{})
	u, _ := url.Parse(s.URL)
	trickle := func(pause time.Duration) (status string, took time.Duration) {
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		fmt.Fprintf(conn, "POST /api/v1/sessions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{", u.Host)
		done := make(chan string, 1)
		go func() {
			line, _ := bufioReadLine(conn)
			done <- line
		}()
		for {
			select {
			case line := <-done:
				return line, time.Since(start)
			case <-time.After(pause):
				if _, err := conn.Write([]byte(" ")); err != nil {
					return "closed", time.Since(start)
				}
			}
			if time.Since(start) > 10*time.Second {
				return "still open", time.Since(start)
			}
		}
	}
	if status, took := trickle(200 * time.Millisecond); !strings.Contains(status, "408") || took > 3*time.Second {
		t.Errorf("a byte every 200 ms: %q after %s, want 408 within the body's time", status, took)
	}
	if status, took := trickle(time.Second); !strings.Contains(status, "408") || took > 3*time.Second {
		t.Errorf("a byte every second: %q after %s, want 408 once idle", status, took)
	}
}

func bufioReadLine(r io.Reader) (string, error) {
	var b []byte
	one := make([]byte, 1)
	for {
		if _, err := r.Read(one); err != nil {
			return string(b), err
		}
		if one[0] == '\n' {
			return string(b), nil
		}
		b = append(b, one[0])
	}
}

// One client address may hold only so many terminals and uploads at once (defect 8).
func TestPerClientCaps(t *testing.T) {
	s, _ := memServer(t, serverOpts{api: Config{SocketsPerClient: 3, UploadsPerClient: 1}})
	c := s.create(nil)
	s.mustCall(201, "POST", "/api/v1/sessions/"+c.ID+"/instances", c.Token, nil, nil)
	header := http.Header{"Authorization": {"Bearer " + c.Token}}
	var open []*websocket.Conn
	for i := 1; i <= 3; i++ {
		ws, _, err := websocket.DefaultDialer.Dial(wsURL(s, c.ID, i), header)
		if err != nil {
			t.Fatalf("terminal %d: %v", i, err)
		}
		open = append(open, ws)
	}
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(s, c.ID, 4), header)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a 4th terminal of one client: %v, %+v", err, resp)
	}
	open[0].Close()
	waitFor(t, func() bool {
		ws, _, err := websocket.DefaultDialer.Dial(wsURL(s, c.ID, 4), header)
		if err == nil {
			open = append(open, ws)
		}
		return err == nil
	})
	for _, ws := range open {
		ws.Close()
	}

	// An upload that is still arriving holds the client's one upload slot. (A trickling upload that arrives while
	// another holds the slot is refused itself: then it is sent again.)
	u, _ := url.Parse(s.URL)
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /api/v1/sessions/%s/instances/node1/files HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 1000\r\n\r\n--x\r\n", c.ID, u.Host, c.Token)
		time.Sleep(50 * time.Millisecond)
		ctype, body := multipartUpload(t, "b.txt", []byte("hi"))
		resp, _ := s.send("POST", "/api/v1/sessions/"+c.ID+"/instances/node1/files", c.Token, ctype, bytes.NewReader(body))
		conn.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a second upload beside a trickling one: %d, want 429", resp.StatusCode)
		}
	}
}

func wsURL(s *server, id string, tid int) string {
	return "ws" + strings.TrimPrefix(s.URL, "http") + "/api/v1/sessions/" + id + "/instances/node1/terminal?t=" + strconv.Itoa(tid)
}

// A viewer link watches a terminal and cannot type into it; it opens no port and reads no file (defect 2).
func TestViewerOnlyWatches(t *testing.T) {
	s, nodes := memServer(t, serverOpts{})
	c := s.create(nil)
	s.mustCall(201, "POST", "/api/v1/sessions/"+c.ID+"/instances", c.Token, nil, nil)
	var v viewerLink
	s.mustCall(201, "POST", "/api/v1/sessions/"+c.ID+"/viewer", c.Token, nil, &v)
	_ = nodes.WriteFile(context.Background(), c.ID, "node1", "/root/.ssh/id_ed25519", 0, 6, strings.NewReader("secret"))
	for _, path := range []string{"/instances/node1/files?path=/root/.ssh/id_ed25519", "/instances/node1/tree?path=/root", ""} {
		s.mustCall(403, "GET", "/api/v1/sessions/"+c.ID+path, v.Token, nil, nil)
	}
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(s, c.ID, 1)+"&token="+url.QueryEscape(v.Token), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	hello := []byte{'h', 1, 0, 0, 80, 0, 24, 0, 0, 0, 0, 0, 0, 0, 0} // asks to drive
	if err := ws.WriteMessage(websocket.BinaryMessage, hello); err != nil {
		t.Fatal(err)
	}
	_, _, err = ws.ReadMessage()
	if !websocket.IsCloseError(err, 4002) {
		t.Fatalf("a viewer link asking to drive: %v, want close 4002", err)
	}
	// Through the lab proxy, path-based, with the viewer token as the session's cookie: refused.
	req, _ := http.NewRequest("GET", s.URL+"/lab/"+c.ID+"/node1/8080/", nil)
	req.AddCookie(&http.Cookie{Name: "sandlot_" + c.ID, Value: v.Token})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a viewer token through the lab proxy: %d, want 403", resp.StatusCode)
	}
}

// Path-based, an app's answer shares Sandlot's origin: nothing in it may act on that whole origin; and the link
// exchange redirects only on the lab host (defects 6 and 7).
func TestLabProxyKeepsTheOrigin(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "sandlot_x=shadow; Path=/")
		w.Header().Set("Clear-Site-Data", `"cookies", "storage"`)
		w.Header().Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
		w.Header().Set("Access-Control-Allow-Origin", "https://evil.example")
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		w.Header().Set("Service-Worker-Allowed", "/")
		w.Header().Set("X-App", "yes")
		fmt.Fprint(w, "app")
	}))
	defer app.Close()
	appPort := app.Listener.Addr().(*net.TCPAddr).Port
	s, _ := memServer(t, serverOpts{})
	c := s.create(nil)
	s.mustCall(201, "POST", "/api/v1/sessions/"+c.ID+"/instances", c.Token, nil, nil)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/lab/%s/node1/%d/", s.URL, c.ID, appPort), nil)
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-App") != "yes" {
		t.Fatalf("path-based: %d %v", resp.StatusCode, resp.Header)
	}
	for _, h := range originWideForTests {
		if v := resp.Header.Values(h); len(v) > 0 {
			t.Errorf("path-based, the app's %s reached the browser: %q", h, v)
		}
	}

	var link labLink
	s.mustCall(201, "POST", fmt.Sprintf("/api/v1/sessions/%s/instances/node1/ports/%d/link", c.ID, appPort), c.Token, nil, &link)
	token := strings.SplitN(link.URL, "sandlot_token=", 2)[1]
	for _, path := range []string{"//evil.example/", "/\\evil.example/", "///evil.example/x", "/%2F%2Fevil.example/"} {
		req, _ := http.NewRequest("GET", s.URL+path+"?sandlot_token="+token, nil)
		req.Host = fmt.Sprintf("node1-%d-%s.localhost", appPort, c.ID)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		target, err := url.Parse(loc)
		if resp.StatusCode != http.StatusSeeOther || err != nil || target.Host != "" || strings.HasPrefix(loc, "//") ||
			strings.HasPrefix(loc, "/\\") {
			t.Errorf("exchange at %q redirects to %q (%d), off the lab host", path, loc, resp.StatusCode)
		}
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("not within 5 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The body's pace limit is over once the body is in: a command that runs longer than a body may pause still gets
// its answer, and the connection serves the next request (the deadline of the body once cancelled both).
func TestLongRequestAfterItsBody(t *testing.T) {
	defer func(idle, grace time.Duration) { bodyIdle, bodyGrace = idle, grace }(bodyIdle, bodyGrace)
	bodyIdle, bodyGrace = 200*time.Millisecond, 300*time.Millisecond
	s, nodes := memServer(t, serverOpts{})
	nodes.Answer = func(ctx context.Context, _, _ string, _ []string) (instance.ExecResult, error) {
		select {
		case <-time.After(time.Second):
			return instance.ExecResult{Stdout: []byte("done")}, nil
		case <-ctx.Done():
			return instance.ExecResult{}, ctx.Err()
		}
	}
	c := s.create(nil)
	s.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+c.ID+"/instances", c.Token, nil, nil)
	for range 2 { // on one kept-alive connection
		s.mustCall(http.StatusOK, "POST", "/api/v1/sessions/"+c.ID+"/instances/node1/exec", c.Token,
			map[string][]string{"cmd": {"sleep", "1"}}, nil)
	}
	s.mustCall(http.StatusOK, "DELETE", "/api/v1/sessions/"+c.ID, c.Token, nil, nil)
}

// Every workshop route, attendee route and session route against the workshop token kinds: an instructor token
// runs its own workshop only and only watches its attendees' sessions; an attendee token is for its own attendee
// only; an attendee's session token works as any session's.
func TestEveryWorkshopRouteChecksItsToken(t *testing.T) {
	s, _ := memServer(t, serverOpts{})
	w1 := s.newWorkshop(map[string]any{"title": "One", "template": "1-node", "seats": 2})
	w2 := s.newWorkshop(map[string]any{"title": "Two", "template": "1-node", "seats": 2})
	ada := s.join(w1.Code, "Ada")
	bob := s.join(w2.Code, "Bob")
	if ada.State != workshop.Active || ada.SessionToken == "" {
		t.Fatalf("Ada: %+v", ada)
	}
	expired := s.issue(t, session.Grant{Scope: session.ScopeInstructor, Workshop: w1.ID, Expires: time.Now().Add(-time.Second)})
	viewer := s.issue(t, session.Grant{Scope: session.ScopeViewer, Session: ada.SessionID})
	type who struct {
		name   string
		token  string
		status int // 0: let through
		code   string
	}
	anonymous := []who{{"no token", "", 401, "no_token"}, {"garbage", "garbage", 401, "bad_token"},
		{"an expired instructor token", expired, 401, "bad_token"}}
	routes := newAPI(nil, nil, Config{}, nil).routesForTests()
	tested := map[string]int{}
	for _, r := range routes {
		var tokens []who
		path := r.pattern
		switch {
		case strings.HasPrefix(r.pattern, "/api/v1/workshops/{id}"):
			path = strings.Replace(r.pattern, "{id}", w1.ID, 1)
			tokens = append(anonymous, who{"another workshop's instructor", w2.InstructorToken, 403, "wrong_workshop"},
				who{"an attendee", ada.AttendeeToken, 403, "wrong_scope"},
				who{"an attendee's session", ada.SessionToken, 403, "wrong_scope"},
				who{"a viewer", viewer, 403, "wrong_scope"},
				who{"its instructor", w1.InstructorToken, 0, ""}, who{"the admin", testAdmin, 0, ""})
		case strings.HasPrefix(r.pattern, "/api/v1/attendee"):
			tokens = append(anonymous, who{"an instructor", w1.InstructorToken, 403, "wrong_scope"},
				who{"an attendee's session", ada.SessionToken, 403, "wrong_scope"},
				who{"the admin", testAdmin, 403, "wrong_scope"}, who{"the attendee", ada.AttendeeToken, 0, ""})
		case strings.HasPrefix(r.pattern, "/api/v1/sessions/{id}"):
			path = strings.NewReplacer("{id}", ada.SessionID, "{name}", "node1", "{port}", "8080").Replace(r.pattern)
			own := who{"the attendees' instructor", w1.InstructorToken, 403, "read_only"}
			if strings.HasSuffix(r.pattern, "/terminal") {
				own = who{"the attendees' instructor", w1.InstructorToken, 0, ""}
			}
			tokens = []who{own, {"another workshop's instructor", w2.InstructorToken, 403, "wrong_session"},
				{"an attendee", ada.AttendeeToken, 403, "wrong_scope"},
				{"another attendee's session", bob.SessionToken, 403, "wrong_session"},
				{"the attendee's session", ada.SessionToken, 0, ""}}
		case r.pattern == "/api/v1/workshops":
			tokens = append(anonymous[:1:1], who{"garbage", "garbage", 403, "not_admin"}, who{"an instructor", w1.InstructorToken, 403, "not_admin"},
				who{"an attendee", ada.AttendeeToken, 403, "not_admin"}, who{"the admin", testAdmin, 0, ""})
		default:
			continue
		}
		tested[strings.Split(r.pattern, "/")[3]]++
		for _, tc := range tokens {
			if strings.HasSuffix(r.pattern, "/end") && tc.status == 0 {
				continue // ending is tested below, once the others are done
			}
			t.Run(r.method+" "+r.pattern+" with "+tc.name, func(t *testing.T) {
				status, body := s.statusOf(r.method, path, tc.token, contentTypeFor(r.pattern, r.method), workshopBodyFor(r.pattern, r.method))
				var e apiError
				_ = json.Unmarshal(body, &e)
				switch {
				case tc.status == 0 && (status == 401 || status == 403):
					t.Errorf("refused: %d %s", status, body)
				case tc.status != 0 && (status != tc.status || e.Error.Code != tc.code):
					t.Errorf("%d %s, want %d %s", status, body, tc.status, tc.code)
				}
			})
		}
	}
	if tested["workshops"] < 10 || tested["attendee"] != 2 || tested["sessions"] < 15 {
		t.Fatalf("routes tested: %v", tested)
	}
	// The instructor ends its workshop, and so every session in it (Ada's was deleted by the routes above).
	cy := s.join(w1.Code, "Cy")
	if cy.State != workshop.Active {
		t.Fatalf("Cy: %+v", cy)
	}
	s.mustCall(200, "POST", "/api/v1/workshops/"+w1.ID+"/end", w1.InstructorToken, nil, nil)
	var v sessionView
	s.mustCall(200, "GET", "/api/v1/sessions/"+cy.SessionID, cy.SessionToken, nil, &v)
	if v.State != session.StateEnded || v.EndReason != session.EndWorkshopEnded {
		t.Errorf("Cy's session after the end: %s %s", v.State, v.EndReason)
	}
	s.mustCall(403, "POST", "/api/v1/workshops/"+w2.ID+"/end", w1.InstructorToken, nil, nil)
	if got := s.attendeeView(bob.AttendeeToken); got.State != workshop.Active {
		t.Errorf("Bob, of the other workshop: %s", got.State)
	}
}

// statusOf sends a request and reads its answer, except an event stream's (only its status: it does not end).
func (s *server) statusOf(method, path, token, contentType string, body []byte) (int, []byte) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, s.URL+path, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp.StatusCode, nil
	}
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

func workshopBodyFor(pattern, method string) []byte {
	switch {
	case pattern == "/api/v1/workshops" && method == "POST":
		return []byte(`{"title":"Three","template":"1-node","seats":1}`)
	case strings.HasSuffix(pattern, "/lock"):
		return []byte(`{"locked":false}`)
	case strings.HasSuffix(pattern, "/seats"):
		return []byte(`{"seats":2}`)
	case strings.HasSuffix(pattern, "/broadcast"):
		return []byte(`{"text":"hello"}`)
	case strings.HasPrefix(pattern, "/api/v1/workshops/") && strings.HasSuffix(pattern, "/extend"):
		return []byte(`{"duration":"1m"}`)
	}
	return bodyFor(pattern, method)
}

// leavingNodes is memnodes whose session teardown waits until the test lets it go, and fails, as a Docker call
// would, when its context is done by then.
type leavingNodes struct {
	*memnodes.Nodes
	entered, release chan struct{}
}

func (n leavingNodes) DeleteSession(ctx context.Context, s string) error {
	close(n.entered)
	<-n.release
	if err := ctx.Err(); err != nil {
		return err
	}
	return n.Nodes.DeleteSession(ctx, s)
}

// A client that leaves in the middle of its DELETE does not leave the session's nodes (or its quota) behind.
func TestEndOutlivesTheRequest(t *testing.T) {
	nodes := leavingNodes{memnodes.New(netip.MustParseAddr("127.0.0.1")), make(chan struct{}), make(chan struct{})}
	s := newServer(t, redistest.New(t), serverOpts{nodes: nodes})
	c := s.create(nil)
	s.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+c.ID+"/instances", c.Token, nil, nil)

	ctx, leave := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "DELETE", s.URL+"/api/v1/sessions/"+c.ID, nil)
	req.Header.Set("Authorization", "Bearer "+c.Token)
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-nodes.entered
	leave()
	<-done
	time.Sleep(100 * time.Millisecond) // the server notices the client is gone
	close(nodes.release)

	ended := func() bool {
		stale, err := s.store.StaleEndings(context.Background(), time.Now().Add(time.Hour))
		return err == nil && !slices.Contains(stale, c.ID)
	}
	deadline := time.Now().Add(10 * time.Second)
	for nodes.Count() != 0 || !ended() {
		if time.Now().After(deadline) {
			t.Fatalf("after the client left: %d nodes, teardown finished: %v", nodes.Count(), ended())
		}
		time.Sleep(20 * time.Millisecond)
	}
	u, err := s.quota.Usage(context.Background(), c.Client, c.ID)
	if err != nil || u.Running != 0 || u.ClientSessions != 0 {
		t.Fatalf("quota after the end: %+v, %v", u, err)
	}
}
