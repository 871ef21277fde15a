package e2e

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"
)

// docPage is a documentation page as a site would write it: prose, a lab of two nodes, a click-to-run block for
// node2 and a port link. script is where sandlot-lab.js comes from.
func docPage(script string) string {
	return `<!doctype html><meta charset="utf-8"><title>Swarm in two steps</title>
<h1>Swarm in two steps</h1>
<p>Start the lab, then run this on node2:</p>
<pre data-sandlot-run="node2">echo ran-in-$(hostname)</pre>
<p><a id="port" href="#" data-sandlot-port="node1:8080">node1:8080</a></p>
<sandlot-lab nodes="2"></sandlot-lab>
<script type="module" src="` + script + `"></script>
`
}

// docSite serves the documentation page at /docs/lab.html and records every path asked of it; with upstream
// set, everything else is passed on to that Sandlot (so the page and the API share one origin, as when Sandlot
// serves the page itself).
type docSite struct {
	*httptest.Server
	mu     sync.Mutex
	asked  []string
	script string
	page   string // the page to serve instead of docPage(script), if set
}

func (d *docSite) setScript(src string) {
	d.mu.Lock()
	d.script = src
	d.mu.Unlock()
}

func newDocSite(t testing.TB, script string, upstream string) *docSite {
	t.Helper()
	d := &docSite{script: script}
	var proxy *httputil.ReverseProxy
	if upstream != "" {
		u, err := url.Parse(upstream)
		if err != nil {
			t.Fatal(err)
		}
		proxy = httputil.NewSingleHostReverseProxy(u) // keeps the Host: to Sandlot, the page is its own
	}
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		d.asked = append(d.asked, r.Method+" "+r.URL.Path)
		body := d.page
		if body == "" {
			body = docPage(d.script)
		}
		d.mu.Unlock()
		if r.URL.Path == "/docs/lab.html" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, body)
			return
		}
		if proxy == nil {
			http.NotFound(w, r)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(d.Close)
	return d
}

func (d *docSite) apiCalls() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, a := range d.asked {
		if strings.Contains(a, "/api/") {
			out = append(out, a)
		}
	}
	return out
}

// labTerm is the selector of node's terminal in the page's lab.
func labTerm(node string) string {
	return fmt.Sprintf(`sandlot-lab sandlot-terminal[instance=%q]`, node)
}

// waitLabScreen waits until node's terminal in the lab shows a line matching re.
func (p *page) waitLabScreen(node, re string, timeout time.Duration) string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for {
		var s string
		p.eval(fmt.Sprintf(`document.querySelector(%q)?.text?.() ?? ""`, labTerm(node)), &s)
		if rx.MatchString(s) {
			return s
		}
		if time.Now().After(deadline) {
			var msg string
			p.eval(`document.querySelector("sandlot-lab .sl-lab-msg")?.textContent ?? ""`, &msg)
			p.fatalf("%s's terminal in the lab does not show /%s/ after %s (the lab says %q); it shows:\n%s", node, re, timeout, msg, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func labPrompt(node string) string { return `(?m)\[` + node + ` [0-9.]+\] .*[#$] ?$` }

// apiRequestsSeen is what the page itself asked of any Sandlot API (fetches, scripts; not WebSockets).
func (p *page) apiRequestsSeen() []string {
	var out []string
	p.eval(`performance.getEntriesByType("resource").map((e) => e.name).filter((n) => n.includes("/api/"))`, &out)
	return out
}

// runLab is the reader's path through a documentation page with a lab: nothing is asked of the API until
// Start; Start gives a prompt in both terminals; Run types the block into node2; a reload comes back to the same
// lab (the same shells); End ends it and says why.
// check, if not nil, looks at the session once it runs.
func runLab(t *testing.T, srv *proc, p *page, pageURL string, calls func() []string, check func(id string)) {
	p.do("open the documentation page", chromedp.Navigate(pageURL))
	p.waitJS("the lab's Start button", `document.querySelector("sandlot-lab")?.dataset.state === "idle" &&
		!!document.querySelector("sandlot-lab .sl-lab-start") && !!document.querySelector(".sandlot-run-button")`, 20*time.Second)
	if t.Name() == "TestLabElementSameOrigin" {
		p.screenshot("embedded-lab-idle")
	}
	time.Sleep(2 * time.Second) // time for anything the page would do on its own
	if c := append(calls(), p.apiRequestsSeen()...); len(c) > 0 {
		t.Fatalf("the page called the API before Start: %v", c)
	}

	started := time.Now()
	p.do("Start", chromedp.Click(chromedp.CSS("sandlot-lab .sl-lab-start")))
	p.waitLabScreen("node1", labPrompt("node1"), 90*time.Second)
	p.waitLabScreen("node2", labPrompt("node2"), 60*time.Second)
	t.Logf("Start to a prompt in both terminals: %v", time.Since(started))
	var id string
	p.eval(`document.querySelector("sandlot-lab").session.id`, &id)
	t.Cleanup(func() { deleteSession(t, srv.url, id) })
	if check != nil {
		check(id)
	}
	p.waitJS("the time left", `/^(\d+:)?\d+:\d\d left$/.test(document.querySelector("sandlot-lab .sl-lab-left").textContent)`, 5*time.Second)

	p.do("Run the block", chromedp.Click(chromedp.CSS(".sandlot-run-button")))
	p.waitLabScreen("node2", `(?m)^ran-in-node2$`, 20*time.Second)
	if t.Name() == "TestLabElementSameOrigin" {
		p.screenshot("embedded-lab")
	}
	var onNode1 bool
	if p.eval(fmt.Sprintf(`/^ran-in-/m.test(document.querySelector(%q).text())`, labTerm("node1")), &onNode1); onNode1 {
		t.Fatal("the block for node2 ran in node1 too")
	}

	p.do("reload", chromedp.Reload())
	p.waitJS("the lab running again", `document.querySelector("sandlot-lab")?.dataset.state === "running"`, 30*time.Second)
	var again string
	p.eval(`document.querySelector("sandlot-lab").session.id`, &again)
	if again != id {
		t.Fatalf("after a reload the lab is session %s, not %s", again, id)
	}
	p.waitLabScreen("node2", `(?m)^ran-in-node2$`, 20*time.Second) // the same shell, with its scrollback
	p.waitLabScreen("node1", labPrompt("node1"), 20*time.Second)

	// The port link asks for a lab link and opens it in a new tab (caught here: the page's window.open is a stand-in).
	p.eval(`window.__tab = { location: { href: "" }, close() {} }; window.open = () => window.__tab; true`, nil)
	p.do("open node1:8080", chromedp.Click(chromedp.CSS("#port")))
	p.waitJS("a lab link for node1:8080", `window.__tab.location.href.includes("node1-8080-") &&
		window.__tab.location.href.includes("sandlot_token=")`, 20*time.Second)

	p.do("End", chromedp.Click(chromedp.CSS("sandlot-lab .sl-lab-end")))
	// Ended once the DELETE has its answer (the page may see the end sooner, by reading the session; a reload
	// then would cancel the DELETE, and the server ties the teardown to that request).
	p.waitJS("the lab ended", `document.querySelector("sandlot-lab")?.dataset.state === "ended" &&
		!document.querySelector("sandlot-lab .sl-lab-end").disabled`, 30*time.Second)
	if msg := p.text("sandlot-lab .sl-lab-msg"); !strings.Contains(msg, "it was ended") {
		t.Fatalf("the ended lab says %q", msg)
	}
	// A new lab from the ended one: the same terminals, on the new session's nodes.
	p.do("Start a new lab", chromedp.Click(chromedp.CSS("sandlot-lab .sl-lab-start")))
	p.waitJS("a new session", fmt.Sprintf(`document.querySelector("sandlot-lab").session?.id !== %q &&
		document.querySelector("sandlot-lab").dataset.state === "running"`, id), 90*time.Second)
	var second string
	p.eval(`document.querySelector("sandlot-lab").session.id`, &second)
	t.Cleanup(func() { deleteSession(t, srv.url, second) })
	if screen := p.waitLabScreen("node2", labPrompt("node2"), 60*time.Second); strings.Contains(screen, "ran-in-node2") {
		t.Fatalf("node2's terminal of the new lab shows the old one's output:\n%s", screen)
	}
	p.do("End again", chromedp.Click(chromedp.CSS("sandlot-lab .sl-lab-end")))
	p.waitJS("the new lab ended", `document.querySelector("sandlot-lab")?.dataset.state === "ended" &&
		!document.querySelector("sandlot-lab .sl-lab-end").disabled`, 30*time.Second)

	p.do("reload after the end", chromedp.Reload())
	p.waitJS("a fresh Start", `document.querySelector("sandlot-lab")?.dataset.state === "idle"`, 20*time.Second)
}

// A documentation page on Sandlot's own origin (a test page in front of the server, which passes everything
// else on), the way a site that proxies Sandlot under its own name embeds a lab.
func TestLabElementSameOrigin(t *testing.T) {
	needEngine(t)
	srv := startServer(t, "--data", t.TempDir(), "--admin-token", admin, "--node-memory", "512")
	site := newDocSite(t, "/assets/sandlot-lab.js", srv.url)
	p := newPage(t, site.URL)
	runLab(t, srv, p, site.URL+"/docs/lab.html", site.apiCalls, nil)
}

// The same page with a launch token from the ten-line backend of docs/embedding.md (run as written there): the
// session is the token's (its subject is the client), and the rest goes as without one.
func TestLabElementLaunchToken(t *testing.T) {
	needEngine(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skipf("no node to run the backend of docs/embedding.md: %v", err)
	}
	secret := strings.Repeat("5a", 32)
	srv := startServer(t, "--data", t.TempDir(), "--admin-token", admin, "--node-memory", "512",
		"--integrator-keys", "docs="+secret)
	mint := startMintBackend(t, node, secret)
	req, _ := http.NewRequest("POST", mint, nil)
	req.Header.Set("X-User", "ada")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	token, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || strings.Count(string(token), ".") != 2 {
		t.Fatalf("the backend answered %d %q", res.StatusCode, token)
	}
	site := newDocSite(t, "/assets/sandlot-lab.js", srv.url)
	site.page = strings.Replace(docPage("/assets/sandlot-lab.js"), `<sandlot-lab nodes="2">`,
		`<sandlot-lab nodes="2" launch-token="`+string(token)+`">`, 1)
	p := newPage(t, site.URL)
	runLab(t, srv, p, site.URL+"/docs/lab.html", site.apiCalls, func(id string) {
		var s struct {
			Client string `json:"client"`
		}
		get(t, srv.url+"/api/v1/sessions/"+id, &s)
		if s.Client != "launch:docs:ada" {
			t.Fatalf("the lab's session is held by %q, not the launch token's subject", s.Client)
		}
	})
}

// startMintBackend runs the backend that docs/embedding.md gives (the js block after its mint.mjs marker) on a
// free port, and returns its address.
func startMintBackend(t *testing.T, node, secret string) string {
	t.Helper()
	doc, err := os.ReadFile("../docs/embedding.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "<!-- mint.mjs")
	_, rest, ok2 := strings.Cut(rest, "```js\n")
	code, _, ok3 := strings.Cut(rest, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("docs/embedding.md has no mint.mjs block")
	}
	if n := strings.Count(strings.TrimSpace(code), "\n") + 1; n > 10 {
		t.Errorf("the ten-line backend has %d lines", n)
	}
	file := filepath.Join(t.TempDir(), "mint.mjs")
	if err := os.WriteFile(file, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(node, file)
	cmd.Env = append(os.Environ(), "SANDLOT_KEY="+secret, fmt.Sprintf("PORT=%d", port))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := fmt.Sprintf("http://127.0.0.1:%d/", port)
	waitFor(t, 10*time.Second, "the mint backend", func() bool {
		res, err := http.Get(addr)
		if err == nil {
			res.Body.Close()
		}
		return err == nil
	})
	return addr
}

// A documentation page on another origin (a second loopback port) listed in --public-origins, loading the
// element from Sandlot. It needs CORS on the API for listed origins; a server without it is skipped (detected by
// a preflight, as a browser would send it).
func TestLabElementCrossOrigin(t *testing.T) {
	needEngine(t)
	site := newDocSite(t, "", "")
	srv := startServer(t, "--data", t.TempDir(), "--admin-token", admin, "--node-memory", "512",
		"--public-origins", site.URL)
	if !corsPreflightPasses(t, srv.url, site.URL) {
		t.Skipf("the server answers no CORS preflight for an origin in --public-origins: a page on %s cannot create a session", site.URL)
	}
	site.setScript(srv.url + "/assets/sandlot-lab.js")
	p := newPage(t, site.URL)
	runLab(t, srv, p, site.URL+"/docs/lab.html", func() []string { return nil }, nil)
}

// corsPreflightPasses asks what a browser asks before a page on origin POSTs JSON to the API.
func corsPreflightPasses(t *testing.T, server, origin string) bool {
	t.Helper()
	req, _ := http.NewRequest("OPTIONS", server+"/api/v1/sessions", nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode < 300 && res.Header.Get("Access-Control-Allow-Origin") == origin
}

// A page on an origin the server does not list: Start is refused in the page, saying why, and the API gives that
// origin no CORS headers.
func TestLabElementOriginNotListed(t *testing.T) {
	needEngine(t)
	site := newDocSite(t, "", "")
	srv := startServer(t, "--data", t.TempDir(), "--admin-token", admin)
	site.setScript(srv.url + "/assets/sandlot-lab.js")
	if corsPreflightPasses(t, srv.url, site.URL) {
		t.Fatalf("the server answers a preflight from %s, which it does not list", site.URL)
	}
	p := newPage(t, site.URL)
	p.do("open the documentation page", chromedp.Navigate(site.URL+"/docs/lab.html"))
	p.waitJS("the lab's Start button", `document.querySelector("sandlot-lab")?.dataset.state === "idle"`, 20*time.Second)
	p.do("Start", chromedp.Click(chromedp.CSS("sandlot-lab .sl-lab-start")))
	p.waitJS("the refusal", `document.querySelector("sandlot-lab")?.dataset.state === "error"`, 20*time.Second)
	if msg := p.text("sandlot-lab .sl-lab-msg"); !strings.Contains(msg, "does not allow labs on pages of "+site.URL) {
		t.Fatalf("the refused lab says %q", msg)
	}
	var sessions struct {
		Sessions []json.RawMessage `json:"sessions"`
	}
	get(t, srv.url+"/api/v1/sessions", &sessions)
	if len(sessions.Sessions) != 0 {
		t.Fatalf("a refused page made sessions: %s", sessions.Sessions)
	}
}

// A lab that asks for more nodes than its launch token allows runs with the nodes it got and says why the
// others are missing.
func TestLabElementNodeQuota(t *testing.T) {
	needEngine(t)
	secret := strings.Repeat("5a", 32)
	srv := startServer(t, "--data", t.TempDir(), "--admin-token", admin, "--node-memory", "512",
		"--integrator-keys", "docs="+secret)
	key, _ := hex.DecodeString(secret)
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "docs:one-node", "max_instances": 1,
		"exp": time.Now().Add(2 * time.Minute).Unix()})
	tok.Header["kid"] = "docs"
	launch, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	site := newDocSite(t, "/assets/sandlot-lab.js", srv.url)
	site.page = strings.Replace(docPage("/assets/sandlot-lab.js"), `<sandlot-lab nodes="2">`,
		`<sandlot-lab nodes="2" launch-token="`+launch+`">`, 1)
	p := newPage(t, site.URL)
	p.do("open the documentation page", chromedp.Navigate(site.URL+"/docs/lab.html"))
	p.waitJS("the lab's Start button", `document.querySelector("sandlot-lab")?.dataset.state === "idle"`, 20*time.Second)
	p.do("Start", chromedp.Click(chromedp.CSS("sandlot-lab .sl-lab-start")))
	p.waitJS("the lab running", `document.querySelector("sandlot-lab")?.dataset.state === "running"`, 90*time.Second)
	var id string
	p.eval(`document.querySelector("sandlot-lab").session.id`, &id)
	t.Cleanup(func() { deleteSession(t, srv.url, id) })
	p.waitLabScreen("node1", labPrompt("node1"), 60*time.Second)
	msg := p.text("sandlot-lab .sl-lab-msg")
	var visible bool
	p.eval(fmt.Sprintf(`document.querySelector(%q).offsetHeight > 0`, labTerm("node2")), &visible)
	if visible || msg == "Your lab is running." || msg == "" {
		t.Fatalf("a lab short of a node says %q (node2's terminal shown: %v)", msg, visible)
	}
	t.Logf("the lab says: %s", msg)
}
