package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// pwdCall is a script's call of PWD's HTTP API (what curl sends: no Origin, no cookie), its status and body.
func pwdCall(t *testing.T, method, u, contentType string, body io.Reader, header ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout: 3 * time.Minute}
	res, err := noFollow.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// pwdNewSession is a script's POST / as an XHR: the session's PWD id.
func pwdNewSession(t *testing.T, base string) string {
	t.Helper()
	status, b := pwdCall(t, "POST", base+"/", "application/x-www-form-urlencoded", strings.NewReader("session-duration=30m"),
		"X-Requested-With", "XMLHttpRequest")
	var s struct {
		SessionID string `json:"session_id"`
		Hostname  string `json:"hostname"`
	}
	if err := json.Unmarshal(b, &s); status != 200 || err != nil || len(s.SessionID) != 52 || "http://"+s.Hostname != base {
		t.Fatalf("POST /: %d %s", status, b)
	}
	return s.SessionID
}

func pwdExec(t *testing.T, base, id, node string, cmd ...string) int {
	t.Helper()
	body, _ := json.Marshal(map[string][]string{"command": cmd})
	status, b := pwdCall(t, "POST", base+"/sessions/"+id+"/instances/"+node+"/exec", "application/json", bytes.NewReader(body))
	var res struct {
		StatusCode *int `json:"status_code"`
	}
	if err := json.Unmarshal(b, &res); status != 200 || err != nil || res.StatusCode == nil {
		t.Fatalf("exec %q on %s: %d %s", cmd, node, status, b)
	}
	return *res.StatusCode
}

// A script driving PWD's HTTP API (curl-like calls, no Origin) against the real server and engine: a session, a
// node with the hostname asked for, exec with its exit code, an upload, the terminal WebSocket, a node removed,
// the session deleted and nothing of it left; a second session set up as a swarm of two whose run command sees
// both nodes Ready; a form post (a "Try in PWD" button) sent to the session's page; and the Sandlot id alone, or
// one with a wrong MAC, knowing nothing.
func TestPWDScriptAPI(t *testing.T) {
	needEngine(t)
	srv := startServer(t, "--data", t.TempDir(), "--admin-token", admin, "--node-memory", "512", "--pwd-compat")
	base := srv.url
	id := pwdNewSession(t, base)
	sandlotID := id[:26]
	t.Cleanup(func() { deleteSession(t, srv.url, sandlotID) })

	for _, wrong := range []string{sandlotID, sandlotID + strings.Repeat("a", 26)} {
		if status, b := pwdCall(t, "GET", base+"/sessions/"+wrong, "", nil); status != 404 {
			t.Errorf("GET /sessions/%s: %d %s, want 404", wrong, status, b)
		}
	}
	status, b := pwdCall(t, "GET", base+"/sessions/"+id, "", nil)
	var s struct {
		ID        string                     `json:"id"`
		Ready     bool                       `json:"ready"`
		Instances map[string]json.RawMessage `json:"instances"`
	}
	if err := json.Unmarshal(b, &s); status != 200 || err != nil || s.ID != id || !s.Ready || len(s.Instances) != 0 {
		t.Fatalf("GET /sessions/%s: %d %s", id, status, b)
	}

	status, b = pwdCall(t, "POST", base+"/sessions/"+id+"/instances", "application/json", strings.NewReader(`{"Hostname":"web"}`))
	var in struct {
		Name, Hostname, IP string
	}
	if err := json.Unmarshal(b, &in); status != 200 || err != nil || in.Name != "node1" || in.Hostname != "web" || in.IP == "" {
		t.Fatalf("POST /sessions/%s/instances: %d %s", id, status, b)
	}
	if code := pwdExec(t, base, id, "node1", "sh", "-c", "hostname > /root/h.txt; exit 3"); code != 3 {
		t.Errorf("exec's status_code %d, want 3", code)
	}

	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, _ := mw.CreateFormFile("file", "app.sh")
	_, _ = fw.Write([]byte("echo from-upload\n"))
	_ = mw.Close()
	if status, b := pwdCall(t, "POST", base+"/sessions/"+id+"/instances/node1/uploads?path=/root/lab", mw.FormDataContentType(), &form); status != 200 {
		t.Fatalf("upload: %d %s", status, b)
	}
	if code := pwdExec(t, base, id, "node1", "sh", "-c", `test "$(sh /root/lab/app.sh)" = from-upload && grep -qx web /root/h.txt`); code != 0 {
		t.Errorf("the uploaded file or exec's file is not in the node (exit %d)", code)
	}

	// The terminal socket, as a script opens it: the node's prompt, then what is typed runs.
	u, _ := url.Parse(base)
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+u.Host+"/sessions/"+id+"/ws/", nil)
	if err != nil {
		t.Fatalf("the terminal socket: %v", err)
	}
	defer ws.Close()
	readUntil := func(want string) (ended bool) {
		t.Helper()
		var out strings.Builder
		_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		for !strings.Contains(out.String(), want) {
			_, b, err := ws.ReadMessage()
			if err != nil {
				t.Fatalf("waiting for %q on node1 (had %q): %v", want, out.String(), err)
			}
			var f struct {
				Name string   `json:"name"`
				Args []string `json:"args"`
			}
			if err := json.Unmarshal(b, &f); err != nil {
				t.Fatalf("frame %s: %v", b, err)
			}
			if f.Name == "session end" {
				return true
			}
			if f.Name == "instance terminal out" && len(f.Args) == 2 && f.Args[0] == "node1" {
				out.WriteString(f.Args[1])
			}
		}
		return false
	}
	readUntil("[web ")
	_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"name":"instance terminal in","args":["node1","echo $((6*7))-typed\r"]}`))
	readUntil("42-typed")

	status, _ = pwdCall(t, "POST", base+"/sessions/"+id+"/instances", "", nil)
	if status != 200 {
		t.Fatalf("a second node (empty body): %d", status)
	}
	if status, b := pwdCall(t, "DELETE", base+"/sessions/"+id+"/instances/node2", "", nil); status != 200 {
		t.Fatalf("DELETE node2: %d %s", status, b)
	}
	_, b = pwdCall(t, "GET", base+"/sessions/"+id, "", nil)
	s.Instances = nil
	if err := json.Unmarshal(b, &s); err != nil || len(s.Instances) != 1 || s.Instances["node1"] == nil {
		t.Errorf("after node2's removal the session shows %s", b)
	}

	if status, b := pwdCall(t, "DELETE", base+"/sessions/"+id, "", nil); status != 200 {
		t.Fatalf("DELETE the session: %d %s", status, b)
	}
	readUntil("\x00never") // returns at "session end"; fails if the socket closes without it
	if status, _ := pwdCall(t, "GET", base+"/sessions/"+id, "", nil); status != 404 {
		t.Errorf("the deleted session: %d, want 404", status)
	}
	waitFor(t, 30*time.Second, "nothing of the deleted session left in the engine", func() bool { return countLabelled(t, sandlotID) == 0 })

	// A swarm by PWD's setup: the manager's run command sees two nodes Ready.
	id2 := pwdNewSession(t, base)
	t.Cleanup(func() { deleteSession(t, srv.url, id2[:26]) })
	setup := `{"instances":[
		{"hostname":"manager1","is_swarm_manager":true,"run":[["sh","-c","test $(docker node ls --format '{{.Status}}' | grep -c Ready) = 2"]]},
		{"hostname":"worker1","is_swarm_worker":true,"run":[["sh","-c","echo joined > /root/role"]]}]}`
	if status, b := pwdCall(t, "POST", base+"/sessions/"+id2+"/setup", "application/json", strings.NewReader(setup)); status != 200 {
		t.Fatalf("setup of a swarm of two: %d %s", status, b)
	}
	if code := pwdExec(t, base, id2, "node2", "sh", "-c", `grep -qx joined /root/role && docker info --format '{{.Swarm.LocalNodeState}}' | grep -qx active`); code != 0 {
		t.Errorf("node2 after setup: exit %d", code)
	}
	failing := `{"instances":[{"hostname":"box","run":[["false"]]}]}`
	id3 := pwdNewSession(t, base)
	t.Cleanup(func() { deleteSession(t, srv.url, id3[:26]) })
	if status, b := pwdCall(t, "POST", base+"/sessions/"+id3+"/setup", "application/json", strings.NewReader(failing)); status != 400 ||
		!strings.Contains(string(b), "exited with 1") {
		t.Errorf("a setup whose run fails: %d %s, want 400 saying so", status, b)
	}

	// A plain form post: a redirect to the session's Sandlot page, with the cookie that page needs.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noFollow.PostForm(base+"/", url.Values{"session-duration": {"10m"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	page := res.Header.Get("Location")
	formID := strings.TrimPrefix(page, "/s/")
	t.Cleanup(func() { deleteSession(t, srv.url, formID) })
	if res.StatusCode != http.StatusFound || len(formID) != 26 || len(res.Cookies()) != 1 || res.Cookies()[0].Name != "sandlot_"+formID {
		t.Fatalf("a form post: %d to %q with cookies %v, want a redirect to the session's page with its cookie", res.StatusCode, page, res.Cookies())
	}
	req, _ := http.NewRequest("GET", base+"/api/v1/sessions/"+formID, nil)
	req.AddCookie(res.Cookies()[0])
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("the session's page's API call with the form post's cookie: %d", res.StatusCode)
	}
}
