package api

import (
	"context"
	_ "embed"
	"github.com/sandlot/sandlot/session"
	"github.com/sandlot/sandlot/session/labproxy"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sandlot/sandlot/internal/redistest"
)

//go:embed testdata/wsecho.py
var wsEchoServer string

// labClient sends every request to the test server, whatever host the URL names (as *.localhost resolves to
// loopback in browsers), keeps cookies per host like a browser, and does not follow redirects.
func labClient(t testing.TB, s *server) *http.Client {
	t.Helper()
	addr := strings.TrimPrefix(s.URL, "http://")
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Jar: jar,
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func getBody(t *testing.T, c *http.Client, u string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// startInNode runs a command in the background in a node.
func startInNode(t *testing.T, s *server, c created, node string, cmd ...string) {
	t.Helper()
	s.mustCall(http.StatusOK, "POST", "/api/v1/sessions/"+c.ID+"/instances/"+node+"/exec", c.Token,
		map[string]any{"cmd": append([]string{"sh", "-c", `"$@" >/dev/null 2>&1 &`, "sh"}, cmd...)}, nil)
}

// waitPort waits until the session lists port on node, and returns how long that took.
func waitPort(t testing.TB, s *server, c created, node string, port int) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 20*time.Second {
		var got session.Session
		s.mustCall(http.StatusOK, "GET", "/api/v1/sessions/"+c.ID, c.Token, nil, &got)
		for _, in := range got.Instances {
			if in.Name == node && slices.Contains(in.Ports, port) {
				return time.Since(start)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("port %d of %s not listed within 20 s", port, node)
	return 0
}

// Ports a node listens on show up in the session, the lab proxy serves them host-based and path-based, over
// HTTP and WebSocket, to the session's holder and to holders of a link for that port only.
func TestLabProxy(t *testing.T) {
	s := newServer(t, redistest.New(t), serverOpts{})
	c := s.create(nil)
	s.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+c.ID+"/instances", c.Token, nil, nil)
	other := s.create(nil)
	t.Cleanup(func() {
		s.call("DELETE", "/api/v1/sessions/"+c.ID, c.Token, nil, nil)
		s.call("DELETE", "/api/v1/sessions/"+other.ID, other.Token, nil, nil)
	})

	// A web server in the node: its port is listed within about 2 s of listening (the page polls the session).
	startInNode(t, s, c, "node1", "sh", "-c", "mkdir -p /srv/site && echo hello-from-node1 >/srv/site/index.html && cd /srv/site && exec python3 -m http.server 8080")
	t.Logf("port 8080 listed %s after the server was started", waitPort(t, s, c, "node1", 8080).Round(10*time.Millisecond))

	var link labLink
	s.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+c.ID+"/instances/node1/ports/8080/link", c.Token, nil, &link)
	u, err := url.Parse(link.URL)
	if err != nil || u.Hostname() != "node1-8080-"+c.ID+".localhost" {
		t.Fatalf("link %q", link.URL)
	}
	browser := labClient(t, s)

	// The link's token becomes a cookie of the lab's origin; the URL is reloaded without it.
	resp, _ := getBody(t, browser, link.URL)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("following the link: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	home := "http://" + u.Host + "/"
	resp, body := getBody(t, browser, home)
	if resp.StatusCode != 200 || !strings.Contains(body, "hello-from-node1") {
		t.Fatalf("through the proxy: %d %q", resp.StatusCode, body)
	}

	// Without anything, with another session's token, or at another port with this link: refused.
	if resp, _ := getBody(t, labClient(t, s), home); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %d", resp.StatusCode)
	}
	if resp, _ := getBody(t, labClient(t, s), home, "Authorization", "Bearer "+other.Token); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("another session's token: %d", resp.StatusCode)
	}
	otherPort := strings.Replace(link.URL, "node1-8080-", "node1-8081-", 1)
	if resp, body := getBody(t, labClient(t, s), otherPort); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "another port") {
		t.Fatalf("a link for 8080 at 8081: %d %q", resp.StatusCode, body)
	}
	// Another session's node, with this session's token: refused, and so is a made-up session.
	if resp, _ := getBody(t, labClient(t, s), "http://node1-8080-"+other.ID+".localhost/", "Authorization", "Bearer "+c.Token); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("this session's token at another session's node: %d", resp.StatusCode)
	}

	// Path-based, with the session's cookie (as the page has it): served sandboxed, Sandlot's cookie not passed on.
	startInNode(t, s, c, "node1", "python3", "-c", `
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("path=%s host=%s cookie=%s xfh=%s prefix=%s" % (self.path, self.headers.get("Host"), self.headers.get("Cookie"),
            self.headers.get("X-Forwarded-Host"), self.headers.get("X-Forwarded-Prefix"))).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
http.server.ThreadingHTTPServer(("0.0.0.0", 8090), H).serve_forever()`)
	waitPort(t, s, c, "node1", 8090)
	req, _ := http.NewRequest("GET", s.URL+"/lab/"+c.ID+"/node1/8090/a/b?q=1", nil)
	req.AddCookie(&http.Cookie{Name: cookieName(c.ID), Value: c.Token})
	req.AddCookie(&http.Cookie{Name: "app", Value: "mine"})
	pathResp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(pathResp.Body)
	pathResp.Body.Close()
	host := strings.TrimPrefix(s.URL, "http://")
	want := "path=/a/b?q=1 host=" + host + " cookie=app=mine xfh=" + host + " prefix=/lab/" + c.ID + "/node1/8090"
	if pathResp.StatusCode != 200 || string(b) != want {
		t.Fatalf("path-based: %d\n got %q\nwant %q", pathResp.StatusCode, b, want)
	}
	if csp := pathResp.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "sandbox") {
		t.Fatalf("path-based answers are not sandboxed: %q", csp)
	}

	// Nothing listens: a page that says so and tries again.
	resp, body = getBody(t, labClient(t, s), s.URL+"/lab/"+c.ID+"/node1/9999/", "Authorization", "Bearer "+c.Token)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "Nothing listens on node1:9999 yet") || resp.Header.Get("Refresh") == "" {
		t.Fatalf("nothing listening: %d %q", resp.StatusCode, body)
	}

	// WebSocket through the proxy, host-based, with the cookie the link gave.
	startInNode(t, s, c, "node1", "python3", "-c", wsEchoServer)
	waitPort(t, s, c, "node1", 9000)
	var wsLink labLink
	s.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+c.ID+"/instances/node1/ports/9000/link", c.Token, nil, &wsLink)
	getBody(t, browser, wsLink.URL) // sets the cookie for that origin
	wu, _ := url.Parse(wsLink.URL)
	dialer := websocket.Dialer{Jar: browser.Jar, NetDialContext: browser.Transport.(*http.Transport).DialContext}
	ws, _, err := dialer.Dial("ws://"+wu.Host+"/echo", nil)
	if err != nil {
		t.Fatalf("websocket through the proxy: %v", err)
	}
	defer ws.Close()
	for _, msg := range []string{"hello", strings.Repeat("x", 50_000)} {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, got, err := ws.ReadMessage()
		if err != nil || string(got) != msg {
			t.Fatalf("echo of %d bytes: %v, got %d bytes", len(msg), err, len(got))
		}
	}
}

// A share link works for anyone until it expires, then not; and it is for its own port only.
func TestShareLinkExpires(t *testing.T) {
	s := newServer(t, redistest.New(t), serverOpts{})
	c := s.create(nil)
	s.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+c.ID+"/instances", c.Token, nil, nil)
	t.Cleanup(func() { s.call("DELETE", "/api/v1/sessions/"+c.ID, c.Token, nil, nil) })
	startInNode(t, s, c, "node1", "sh", "-c", "cd /etc && exec python3 -m http.server 8080")
	waitPort(t, s, c, "node1", 8080)

	var share labLink
	s.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+c.ID+"/instances/node1/ports/8080/link", c.Token,
		map[string]string{"duration": "3s"}, &share)
	if time.Until(share.ExpiresAt) > 4*time.Second {
		t.Fatalf("a 3 s share expires at %s", share.ExpiresAt)
	}
	friend := labClient(t, s)
	resp, _ := getBody(t, friend, share.URL)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("share link: %d", resp.StatusCode)
	}
	u, _ := url.Parse(share.URL)
	if resp, body := getBody(t, friend, "http://"+u.Host+"/hostname"); resp.StatusCode != 200 || strings.TrimSpace(body) != "node1" {
		t.Fatalf("through the share link: %d %q", resp.StatusCode, body)
	}
	time.Sleep(time.Until(share.ExpiresAt) + 1500*time.Millisecond)
	if resp, _ := getBody(t, friend, "http://"+u.Host+"/hostname"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after the share expired (the browser dropped the cookie): %d", resp.StatusCode)
	}
	token := strings.TrimPrefix(u.RawQuery, "sandlot_token=")
	resp, body := getBody(t, labClient(t, s), "http://"+u.Host+"/hostname", "Cookie", labproxy.Cookie+"="+token)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "expired") {
		t.Fatalf("after the share expired (the cookie kept): %d %q", resp.StatusCode, body)
	}
	if resp, body := getBody(t, labClient(t, s), share.URL); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "expired") {
		t.Fatalf("the expired link itself: %d %q", resp.StatusCode, body)
	}
	s.mustCall(http.StatusBadRequest, "POST", "/api/v1/sessions/"+c.ID+"/instances/node1/ports/0/link", c.Token, nil, nil)
	s.mustCall(http.StatusBadRequest, "POST", "/api/v1/sessions/"+c.ID+"/instances/node1/ports/8080/link", c.Token,
		map[string]string{"duration": "soon"}, nil)
	s.mustCall(http.StatusNotFound, "POST", "/api/v1/sessions/"+c.ID+"/instances/node7/ports/8080/link", c.Token, nil, nil)
}
