package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sandlot/sandlot/instance"
	"github.com/sandlot/sandlot/session/memnodes"
)

// pwdSDK makes exactly the requests and WebSocket frames Play-with-Docker's JavaScript SDK makes (written from
// reading github.com/play-with-docker/sdk, src/index.ts and src/utils.ts), as a browser on the page's origin
// sends them: every call is an XMLHttpRequest withCredentials and X-Requested-With, so the browser preflights it
// and then refuses to show the answer unless CORS allows this origin with credentials.
type pwdSDK struct {
	t       *testing.T
	baseURL string // opts.baseUrl
	origin  string // the documentation page's origin
	id      string // sessionId
	ws      *websocket.Conn
	news    []string // the args of the "instance new" frames read so far
}

// xhr is the SDK's sendRequest.
func (p *pwdSDK) xhr(method, path string, headers map[string]string, body io.Reader) (int, []byte) {
	p.t.Helper()
	// The preflight: X-Requested-With (and a JSON Content-type) are not "simple".
	names := []string{"x-requested-with"}
	for k := range headers {
		names = append(names, strings.ToLower(k))
	}
	pre, _ := http.NewRequest("OPTIONS", p.baseURL+path, nil)
	pre.Header.Set("Origin", p.origin)
	pre.Header.Set("Access-Control-Request-Method", method)
	pre.Header.Set("Access-Control-Request-Headers", strings.Join(names, ","))
	resp, err := http.DefaultClient.Do(pre)
	if err != nil {
		p.t.Fatal(err)
	}
	resp.Body.Close()
	if !corsAllows(resp, p.origin) || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), method) {
		p.t.Fatalf("preflight of %s %s refused: %d %v", method, path, resp.StatusCode, resp.Header)
	}
	req, _ := http.NewRequest(method, p.baseURL+path, body)
	req.Header.Set("Origin", p.origin)
	req.Header.Set("X-Requested-With", "XMLHttpRequest")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !corsAllows(resp, p.origin) {
		p.t.Fatalf("%s %s: the browser would hide the answer (%d %s): %v", method, path, resp.StatusCode, b, resp.Header)
	}
	return resp.StatusCode, b
}

func corsAllows(resp *http.Response, origin string) bool {
	return resp.Header.Get("Access-Control-Allow-Origin") == origin && resp.Header.Get("Access-Control-Allow-Credentials") == "true"
}

var jsonHeader = map[string]string{"Content-type": "application/json"}

// createSession is the SDK's createSession: a form with session-duration=90m; on 200 it takes session_id and
// makes baseUrl the scheme of the old one with the hostname answered, then init.
func (p *pwdSDK) createSession() {
	p.t.Helper()
	status, body := p.xhr("POST", "/", map[string]string{"Content-type": "application/x-www-form-urlencoded"},
		strings.NewReader("session-duration=90m"))
	if status != 200 {
		p.t.Fatalf("createSession: %d %s", status, body)
	}
	var data struct {
		SessionID string `json:"session_id"`
		Hostname  string `json:"hostname"`
	}
	if err := json.Unmarshal(body, &data); err != nil || data.SessionID == "" || data.Hostname == "" {
		p.t.Fatalf("createSession answered %s (%v)", body, err)
	}
	p.baseURL = strings.Split(p.baseURL, "/")[0] + "//" + data.Hostname
	p.init(data.SessionID)
}

// init is the SDK's init: the WebSocket (ws:// for http:, at /sessions/<id>/ws/), then GET /sessions/<id>.
func (p *pwdSDK) init(id string) map[string]map[string]any {
	p.t.Helper()
	p.id = id
	u, _ := url.Parse(p.baseURL)
	header := http.Header{"Origin": {p.origin}}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+u.Host+"/sessions/"+id+"/ws/", header)
	if err != nil {
		p.t.Fatalf("the SDK's socket: %v", err)
	}
	p.ws = ws
	p.t.Cleanup(func() { ws.Close() })
	status, body := p.xhr("GET", "/sessions/"+id, nil, nil)
	if status != 200 {
		p.t.Fatalf("GET /sessions/%s: %d %s", id, status, body)
	}
	var s struct {
		Instances map[string]map[string]any `json:"instances"`
	}
	if err := json.Unmarshal(body, &s); err != nil || s.Instances == nil {
		p.t.Fatalf("session %s (%v): the SDK iterates its instances", body, err)
	}
	return s.Instances
}

// emit is the SDK's socket.emit: a text frame {"name", "args"}.
func (p *pwdSDK) emit(name string, args ...any) {
	p.t.Helper()
	b, _ := json.Marshal(map[string]any{"name": name, "args": args})
	if err := p.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		p.t.Fatal(err)
	}
}

// terminalOut reads the socket until node's "instance terminal out" has shown want, as the SDK writes it into
// the node's xterm.
func (p *pwdSDK) terminalOut(node, want string) {
	p.t.Helper()
	var got strings.Builder
	_ = p.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer p.ws.SetReadDeadline(time.Time{})
	for !strings.Contains(got.String(), want) {
		_, b, err := p.ws.ReadMessage()
		if err != nil {
			p.t.Fatalf("waiting for %q on %s (had %q): %v", want, node, got.String(), err)
		}
		var m struct {
			Name string            `json:"name"`
			Args []json.RawMessage `json:"args"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			p.t.Fatalf("frame %s: %v", b, err)
		}
		if m.Name == "instance new" {
			var args []string
			if err := json.Unmarshal(b, &struct {
				Args *[]string `json:"args"`
			}{&args}); err != nil || len(args) != 4 {
				p.t.Fatalf("frame %s: args are not PWD's [name, ip, hostname, proxy host]", b)
			}
			p.news = append(p.news, strings.Join(args, " "))
		}
		if m.Name != "instance terminal out" {
			continue
		}
		var name, data string
		if len(m.Args) != 2 || json.Unmarshal(m.Args[0], &name) != nil || json.Unmarshal(m.Args[1], &data) != nil {
			p.t.Fatalf("frame %s: args are not [name, data]", b)
		}
		if name == node {
			got.WriteString(data)
		}
	}
}

// terminal is the SDK's terminal(term): createInstance({type, Hostname: "node"+n}) with opts.ImageName added.
func (p *pwdSDK) terminal(n int) map[string]any {
	p.t.Helper()
	body, _ := json.Marshal(map[string]any{"Hostname": "node" + string(rune('0'+n)), "ImageName": ""})
	status, b := p.xhr("POST", "/sessions/"+p.id+"/instances", jsonHeader, bytes.NewReader(body))
	if status != 200 {
		p.t.Fatalf("createInstance: %d %s", status, b)
	}
	var in map[string]any
	if err := json.Unmarshal(b, &in); err != nil {
		p.t.Fatal(err)
	}
	return in
}

func pwdServer(t *testing.T) (*server, *memnodes.Nodes) {
	s, nodes := memServer(t, serverOpts{api: Config{Origins: []string{docsOrigin}, PWDCompat: true}})
	nodes.Answer = func(_ context.Context, _, _ string, cmd []string) (instance.ExecResult, error) {
		script := strings.Join(cmd, " ")
		switch {
		case script == "sh -c exit 7":
			return instance.ExecResult{ExitCode: 7}, nil
		case strings.Contains(script, "grep -c '^Ready$'"): // a swarm of two, formed
			return instance.ExecResult{Stdout: []byte("2\n")}, nil
		}
		return instance.ExecResult{}, nil
	}
	return s, nodes
}

// A page written the way PWD tutorials are, driven as PWD's SDK drives it: a session, a node, a terminal that
// echoes what is typed (and what a clicked code block types), exec, an upload, a second node removed, the close.
func TestPWDSDKAgainstSandlot(t *testing.T) {
	s, _ := pwdServer(t)
	sdk := &pwdSDK{t: t, baseURL: s.URL, origin: docsOrigin}
	sdk.createSession()
	if len(sdk.id) != 52 {
		t.Errorf("PWD id %q: want the session's id and its MAC", sdk.id)
	}
	sandlotID := sdk.id[:26]

	in := sdk.terminal(1)
	if in["name"] != "node1" || in["hostname"] != "node1" || in["session_id"] != sdk.id {
		t.Errorf("instance %v", in)
	}
	sdk.emit("instance viewport resize", 120, 40)
	sdk.emit("instance terminal in", "node1", "echo héllo ✓\r")
	sdk.terminalOut("node1", "echo héllo ✓")
	// The node came up after the socket opened: PWD announced it (the SDK makes it its instanceNew event), within
	// a look of the socket's (0.5 s), perhaps after the echo (typing attaches a terminal at once).
	for deadline := time.Now().Add(5 * time.Second); len(sdk.news) == 0 && time.Now().Before(deadline); {
		sdk.emit("instance terminal in", "node1", "#\r")
		sdk.terminalOut("node1", "#")
	}
	if want := "node1 " + in["ip"].(string) + " node1 " + in["proxy_host"].(string); len(sdk.news) != 1 || sdk.news[0] != want {
		t.Errorf("\"instance new\" frames %q, want [%q]", sdk.news, want)
	}
	// A clicked code block (code.term1) is typed the same way.
	sdk.emit("instance terminal in", "node1", "docker swarm init\n")
	sdk.terminalOut("node1", "docker swarm init")

	status, b := sdk.xhr("POST", "/sessions/"+sdk.id+"/instances/node1/exec", jsonHeader,
		strings.NewReader(`{"command":["sh","-c","exit 7"]}`))
	if status != 200 || strings.TrimSpace(string(b)) != `{"status_code":7}` {
		t.Errorf("exec: %d %s", status, b)
	}

	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, _ := mw.CreateFormFile("file", "docker-compose.yml")
	fw.Write([]byte("services: {web: {image: nginx}}\n"))
	mw.Close()
	// The SDK sends FormData as it is: the browser sets the multipart Content-Type.
	status, b = sdk.xhr("POST", "/sessions/"+sdk.id+"/instances/node1/uploads?path=/root/lab",
		map[string]string{"Content-Type": mw.FormDataContentType()}, &form)
	if status != 200 {
		t.Fatalf("upload: %d %s", status, b)
	}
	r, _, err := s.svc.ReadFile(context.Background(), sandlotID, "node1", "/root/lab/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if string(got) != "services: {web: {image: nginx}}\n" {
		t.Errorf("uploaded %q", got)
	}

	sdk.terminal(2)
	if instances := sdk.init(sdk.id); len(instances) != 2 || instances["node2"]["ip"] == "" {
		t.Errorf("after two nodes, the session shows %v", instances)
	}
	if status, b := sdk.xhr("DELETE", "/sessions/"+sdk.id+"/instances/node2", nil, nil); status != 200 {
		t.Errorf("delete node2: %d %s", status, b)
	}

	if status, b := sdk.xhr("DELETE", "/sessions/"+sdk.id, jsonHeader, nil); status != 200 {
		t.Fatalf("closeSession: %d %s", status, b)
	}
	// The socket says so and closes.
	_ = sdk.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	ended := false
	for {
		_, b, err := sdk.ws.ReadMessage()
		if err != nil {
			break
		}
		ended = ended || strings.Contains(string(b), `"session end"`)
	}
	if !ended {
		t.Error("no \"session end\" frame before the socket closed")
	}
	if status, _ := sdk.xhr("GET", "/sessions/"+sdk.id, nil, nil); status != 404 {
		t.Errorf("the closed session: %d, want 404", status)
	}
	if got, err := s.svc.Get(context.Background(), sandlotID); err != nil || got.EndReason != "deleted" {
		t.Errorf("the Sandlot session: %v %v", got.EndReason, err)
	}
}

// A script calling PWD's API (no Origin: not from a page) and a plain form post (a "Try in PWD" form) work too.
func TestPWDScriptsAndForms(t *testing.T) {
	s, _ := pwdServer(t)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Post(s.URL+"/", "application/x-www-form-urlencoded", strings.NewReader("session-duration=1h"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "/s/") {
		t.Fatalf("a form post: %d %s, want a redirect to the session's page", resp.StatusCode, body)
	}
	req, _ := http.NewRequest("POST", s.URL+"/", strings.NewReader("session-duration=30m"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Requested-With", "XMLHttpRequest")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Cookies()) != 1 || !strings.HasPrefix(resp.Cookies()[0].Name, "sandlot_") {
		t.Errorf("the form post's cookies %v: the session's page needs its token", resp.Cookies())
	}
	var data struct {
		SessionID string `json:"session_id"`
	}
	json.NewDecoder(r.Body).Decode(&data)
	r.Body.Close()
	if resp, body := s.fromOrigin("", "POST", "/sessions/"+data.SessionID+"/setup", "", "application/json",
		`{"instances":[{"hostname":"manager1","is_swarm_manager":true},{"hostname":"worker1","is_swarm_worker":true}]}`); resp.StatusCode != 200 {
		t.Fatalf("setup: %d %s", resp.StatusCode, body)
	}
	got, err := s.svc.Get(context.Background(), data.SessionID[:26])
	if err != nil || len(got.Instances) != 2 || got.Template != "" && got.Template != "swarm-1m1w" {
		t.Errorf("after setup: %+v %v", got, err)
	}
	if resp, body := s.fromOrigin("", "POST", "/sessions/"+data.SessionID+"/setup", "", "application/json",
		`{"instances":[{"hostname":"a"}]}`); resp.StatusCode != 409 {
		t.Errorf("setup of a session with nodes: %d %s, want 409", resp.StatusCode, body)
	}

	// More than --max-duration (a page's fixed 90m on a Sandlot that allows less): as long as allowed.
	req, _ = http.NewRequest("POST", s.URL+"/", strings.NewReader("session-duration=100h"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Requested-With", "XMLHttpRequest")
	if r, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(r.Body).Decode(&data)
	r.Body.Close()
	long, err := s.svc.Get(context.Background(), data.SessionID[:min(26, len(data.SessionID))])
	if r.StatusCode != 200 || err != nil || long.ExpiresAt.Sub(long.CreatedAt).Round(time.Minute) != s.svc.MaxDuration() {
		t.Errorf("session-duration=100h: %d, a session of %v (%v), want one of %v", r.StatusCode,
			long.ExpiresAt.Sub(long.CreatedAt), err, s.svc.MaxDuration())
	}
}

// What PWD's API must refuse: sessions it does not know (the Sandlot id alone is not a PWD id), foreign pages,
// malformed bodies and frames.
func TestPWDRefusals(t *testing.T) {
	s, _ := pwdServer(t)
	sdk := &pwdSDK{t: t, baseURL: s.URL, origin: docsOrigin}
	sdk.createSession()
	sdk.terminal(1)
	id := sdk.id
	forged := id[:26] + strings.Repeat("a", 26)

	t.Run("unknown sessions", func(t *testing.T) {
		for _, sid := range []string{id[:26], forged, strings.Repeat("b", 52), "x"} {
			for _, c := range []struct{ method, path, body string }{
				{"GET", "/sessions/" + sid, ""},
				{"DELETE", "/sessions/" + sid, ""},
				{"POST", "/sessions/" + sid + "/instances", "{}"},
				{"POST", "/sessions/" + sid + "/instances/node1/exec", `{"command":["true"]}`},
			} {
				if resp, body := s.fromOrigin("", c.method, c.path, "", "application/json", c.body); resp.StatusCode != 404 {
					t.Errorf("%s %s: %d %s, want 404", c.method, c.path, resp.StatusCode, body)
				}
			}
		}
		if _, resp, err := websocket.DefaultDialer.Dial(strings.Replace(s.URL, "http", "ws", 1)+"/sessions/"+forged+"/ws/", nil); err == nil || resp.StatusCode != 404 {
			t.Errorf("a socket on a forged id: %v", err)
		}
	})

	t.Run("foreign origins", func(t *testing.T) {
		for _, c := range []struct{ method, path, ct, body string }{
			{"POST", "/", "application/x-www-form-urlencoded", "session-duration=90m"},
			{"GET", "/sessions/" + id, "", ""},
			{"POST", "/sessions/" + id + "/instances", "text/plain", "{}"},
			{"POST", "/sessions/" + id + "/instances/node1/exec", "text/plain", `{"command":["true"]}`},
			{"DELETE", "/sessions/" + id, "", ""},
		} {
			resp, body := s.fromOrigin(evilOrigin, c.method, c.path, "", c.ct, c.body)
			if resp.StatusCode != 403 || !strings.Contains(body, "bad_origin") {
				t.Errorf("%s %s: %d %s, want 403 bad_origin", c.method, c.path, resp.StatusCode, body)
			}
			noCORS(t, c.method+" "+c.path, resp)
		}
		noCORS(t, "preflight", s.preflight(evilOrigin, "POST", "/", "x-requested-with"))
		_, resp, err := websocket.DefaultDialer.Dial(strings.Replace(s.URL, "http", "ws", 1)+"/sessions/"+id+"/ws/",
			http.Header{"Origin": {evilOrigin}})
		if err == nil || resp.StatusCode != 403 {
			t.Errorf("a socket from a foreign page: %v", err)
		}
		if got, err := s.svc.Get(context.Background(), id[:26]); err != nil || got.State == "ended" {
			t.Errorf("the session after a foreign page's tries: %v %v", got.State, err)
		}
	})

	t.Run("malformed bodies", func(t *testing.T) {
		for _, c := range []struct{ path, ct, body string }{
			{"/", "application/x-www-form-urlencoded", "session-duration=forever"},
			{"/", "application/x-www-form-urlencoded", "session-duration=-5m"},
			{"/", "application/x-www-form-urlencoded", "stack=https://example.com/stack.yml"},
			{"/sessions/" + id + "/instances", "application/json", "{"},
			{"/sessions/" + id + "/instances", "application/json", `{"type":"windows"}`},
			{"/sessions/" + id + "/instances/node1/exec", "application/json", `{"command":"ls"}`},
			{"/sessions/" + id + "/instances/node1/exec", "application/json", `{}`},
			{"/sessions/" + id + "/instances/node1/uploads", "application/json", `{}`},
			{"/sessions/" + id + "/instances/node1/uploads?url=http://169.254.169.254/", "", ""},
			{"/sessions/" + id + "/instances/node1/uploads?path=../../etc", "multipart/form-data; boundary=x", "--x--\r\n"},
			{"/sessions/" + id + "/instances/node1/uploads", "multipart/form-data; boundary=x",
				"--x\r\nContent-Disposition: form-data; name=\"f\"; filename=\"..\"\r\n\r\nhi\r\n--x--\r\n"},
			{"/sessions/" + id + "/setup", "application/json", `{"instances":[]}`},
			{"/sessions/" + id + "/setup", "application/json", `{"instances":[{"is_swarm_manager":true},{"is_swarm_manager":true},{"is_swarm_manager":true},{"is_swarm_manager":true}]}`},
		} {
			if resp, body := s.fromOrigin("", "POST", c.path, "", c.ct, c.body); resp.StatusCode != 400 {
				t.Errorf("POST %s %s: %d %s, want 400", c.path, c.body, resp.StatusCode, body)
			}
		}
		big := strings.Repeat("a", 1<<20)
		if resp, _ := s.fromOrigin("", "POST", "/sessions/"+id+"/instances/node1/exec", "", "application/json", `{"command":["`+big+`"]}`); resp.StatusCode != 413 {
			t.Errorf("a 1 MiB exec body: %d, want 413", resp.StatusCode)
		}
	})

	t.Run("malformed frames", func(t *testing.T) {
		for _, c := range []struct {
			kind int
			msg  string
			code int
		}{
			{websocket.TextMessage, "not json", websocket.CloseInvalidFramePayloadData},
			{websocket.TextMessage, `{"name":"instance terminal in","args":["node1"]}`, websocket.CloseInvalidFramePayloadData},
			{websocket.TextMessage, `{"name":"instance terminal in","args":[1,2]}`, websocket.CloseInvalidFramePayloadData},
			{websocket.TextMessage, `{"name":"instance viewport resize","args":[0,99999]}`, websocket.CloseInvalidFramePayloadData},
			{websocket.BinaryMessage, "\x01\x02", websocket.CloseUnsupportedData},
			{websocket.TextMessage, `{"name":"x","args":["` + strings.Repeat("a", 70<<10) + `"]}`, websocket.CloseMessageTooBig},
		} {
			ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(s.URL, "http", "ws", 1)+"/sessions/"+id+"/ws/",
				http.Header{"Origin": {docsOrigin}})
			if err != nil {
				t.Fatal(err)
			}
			ws.WriteMessage(c.kind, []byte(c.msg))
			_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				_, _, err = ws.ReadMessage()
				if err != nil {
					break
				}
			}
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != c.code {
				t.Errorf("%.40q: closed with %v, want %d", c.msg, err, c.code)
			}
			ws.Close()
		}
		// An event PWD's server knows and Sandlot does not serve is ignored, as PWD ignores unknown ones.
		sdk.emit("instance stats", "node1")
		sdk.emit("instance terminal in", "node1", "still here\r")
		sdk.terminalOut("node1", "still here")
	})
}
