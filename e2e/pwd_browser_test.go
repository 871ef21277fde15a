package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// pwdSite is a tutorial site on its own loopback port: the page of testdata/pwd/tutorial.html with its SDK's
// baseUrl set to a Sandlot, the test client (testdata/pwd/pwd-client.js, PWD's SDK's wire behaviour) and xterm.js
// (the frontend's copy: PWD's SDK bundles xterm too). edit, if given, changes the page before it is served.
func pwdSite(t testing.TB, sandlot func() string, edit ...func(string) string) *httptest.Server {
	t.Helper()
	files := map[string]string{
		"/pwd-client.js":    "testdata/pwd/pwd-client.js",
		"/vendor/xterm.js":  "../frontend/node_modules/@xterm/xterm/lib/xterm.js",
		"/vendor/xterm.css": "../frontend/node_modules/@xterm/xterm/css/xterm.css",
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("the tutorial site needs %s (make ui installs the frontend's packages): %v", f, err)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/tutorial.html" {
			page, err := os.ReadFile("testdata/pwd/tutorial.html")
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			html := strings.ReplaceAll(string(page), "{{SANDLOT}}", sandlot())
			for _, e := range edit {
				html = e(html)
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write([]byte(html))
			return
		}
		f, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeFile(w, r, filepath.Clean(f))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// pwdScreen is what the xterm the client opened in the element sel shows and keeps.
func (p *page) pwdScreen(sel string) string {
	p.t.Helper()
	var s string
	p.eval(fmt.Sprintf(`((sel) => {
		const el = document.querySelector(sel);
		for (const i of Object.values(window.pwd?.instances ?? {})) for (const t of i.terms ?? []) {
			if (!el || !el.contains(t.element)) continue;
			const b = t.buffer.active, lines = [];
			for (let n = 0; n < b.length; n++) lines.push(b.getLine(n).translateToString(true));
			return lines.join("\n");
		}
		return "";
	})(%q)`, sel), &s)
	return s
}

func (p *page) waitPWDScreen(sel, re string, timeout time.Duration) string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for {
		s := p.pwdScreen(sel)
		if rx.MatchString(s) {
			return s
		}
		if time.Now().After(deadline) {
			var wire string
			p.eval(`JSON.stringify((window.pwdWire ?? []).filter((w) => w.kind !== "in" || w.name !== "instance terminal out"))`, &wire)
			p.fatalf("%s does not show /%s/ after %s (the client's wire: %s); it shows:\n%s", sel, re, timeout, wire, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// wireEntry is one thing the client sent or got (window.pwdWire).
type wireEntry struct {
	Kind    string            `json:"kind"` // xhr, out (a frame sent), in (a frame got), close
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
	Form    []string          `json:"form"`
	Status  int               `json:"status"`
	Name    string            `json:"name"`
	Args    []json.RawMessage `json:"args"`
	Code    int               `json:"code"`
}

func (p *page) pwdWire() []wireEntry {
	p.t.Helper()
	var w []wireEntry
	p.eval(`(window.pwdWire ?? []).filter((w) => w.kind !== "in" || w.name !== "instance terminal out")`, &w)
	return w
}

func xhrs(w []wireEntry) []string {
	var out []string
	for _, e := range w {
		if e.Kind == "xhr" {
			out = append(out, fmt.Sprintf("%s %s %d", e.Method, e.URL, e.Status))
		}
	}
	return out
}

// A page written the way PWD tutorials are (.term1 and .term2 divs, click-to-run blocks, an upload button), on
// another origin (a second loopback port) listed in --public-origins, driven by a client that makes exactly the
// requests and frames PWD's SDK makes, in chromium against the real server and engine: the session is made on
// load, both terminals show a prompt, typing echoes and runs, a clicked block runs in its node only, exec and an
// upload reach the node, and closing the session ends it and leaves nothing in the engine.
func TestPWDPageCrossOrigin(t *testing.T) {
	needEngine(t)
	var srv *proc
	site := pwdSite(t, func() string { return srv.url })
	srv = startServer(t, "--data", t.TempDir(), "--admin-token", admin, "--node-memory", "512",
		"--pwd-compat", "--public-origins", site.URL)
	p := newPage(t, site.URL)
	started := time.Now()
	p.do("open the tutorial", chromedp.Navigate(site.URL+"/tutorial.html"))
	p.waitJS("the session", `window.pwdStarted !== undefined`, 30*time.Second)
	var res string
	p.eval(`window.pwdStarted`, &res)
	if res != "ok" {
		t.Fatalf("newSession: %s (wire %v)", res, xhrs(p.pwdWire()))
	}
	var pwdID string
	p.eval(`pwd.sessionId`, &pwdID)
	if len(pwdID) != 52 {
		t.Fatalf("the session's PWD id is %q", pwdID)
	}
	sandlotID := pwdID[:26]
	t.Cleanup(func() { deleteSession(t, srv.url, sandlotID) })

	p.waitPWDScreen(".term1", labPrompt("node1"), 90*time.Second)
	p.waitPWDScreen(".term2", labPrompt("node2"), 60*time.Second)
	t.Logf("page load to a prompt in both terminals: %v", time.Since(started))
	p.screenshot("pwd-tutorial")

	// What the client asked, in order, and the answers the browser let it read (CORS: status 0 if not).
	w := p.pwdWire()
	got := xhrs(w)
	base := srv.url
	want := []string{"POST " + base + "/ 200", "GET " + base + "/sessions/" + pwdID + " 200",
		"POST " + base + "/sessions/" + pwdID + "/instances 200", "POST " + base + "/sessions/" + pwdID + "/instances 200"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the client's calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if w[0].Body != "session-duration=90m" || w[0].Headers["Content-type"] != "application/x-www-form-urlencoded" {
		t.Errorf("the session's creation: %+v", w[0])
	}
	var bodies []string
	for _, e := range w {
		if e.Kind == "xhr" && strings.HasSuffix(e.URL, "/instances") {
			bodies = append(bodies, e.Body)
		}
	}
	// The SDK's JSON.stringify of {type: undefined, Hostname, ImageName: "", Envs: [], Networks: []}.
	for i, b := range bodies {
		if !strings.HasPrefix(b, `{"Hostname":"node`) || !strings.HasSuffix(b, `","ImageName":"","Envs":[],"Networks":[]}`) {
			t.Errorf("instance body %d: %s", i, b)
		}
	}
	news := 0
	for _, e := range w {
		if e.Kind == "in" && e.Name == "instance new" {
			news++
		}
	}
	if news != 2 {
		t.Errorf("%d \"instance new\" frames for two nodes", news)
	}
	var term1, term2 string
	p.eval(`Object.values(pwd.instances).find((i) => i.terms.some((t) => document.querySelector(".term1").contains(t.element))).name`, &term1)
	p.eval(`Object.values(pwd.instances).find((i) => i.terms.some((t) => document.querySelector(".term2").contains(t.element))).name`, &term2)
	// Made at once, asked to be node1 and node2: named so too, whichever was made first.
	if term1 != "node1" || term2 != "node2" {
		t.Fatalf("the terminals of .term1 and .term2 are on %q and %q", term1, term2)
	}

	// Typing into node1's terminal: each key goes as "instance terminal in" and comes back as its echo.
	p.do("click into node1's terminal", chromedp.Click(chromedp.CSS(".term1 .xterm")))
	p.waitJS("node1's terminal has the keyboard", `document.querySelector(".term1").contains(document.activeElement)`, 10*time.Second)
	p.do("type into node1", typeKeys("echo typed-$((6*7))"))
	p.waitPWDScreen(".term1", `(?m)echo typed-\$\(\(6\*7\)\)$`, 10*time.Second)
	p.do("Enter", typeKeys(kb.Enter))
	p.waitPWDScreen(".term1", `(?m)^typed-42$`, 10*time.Second)
	var keys int
	p.eval(`pwdWire.filter((w) => w.kind === "out" && w.name === "instance terminal in" && w.args[0] === `+fmt.Sprintf("%q", term1)+`).length`, &keys)
	if keys < len("echo typed-$((6*7))") {
		t.Errorf("%d keystroke frames for 19 keys typed", keys)
	}

	// The clicked block of .term2 runs in node2 only.
	p.do("click the node2 block", chromedp.Click(chromedp.CSS(`code[class="language-.term2"]`)))
	p.waitPWDScreen(".term2", `(?m)^clicked-on-node2$`, 20*time.Second)
	p.do("click the node1 block", chromedp.Click(chromedp.CSS(`code[class="language-.term1"]`)))
	p.waitPWDScreen(".term1", `(?m)^swarm: inactive$`, 20*time.Second)
	if strings.Contains(p.pwdScreen(".term1"), "clicked-on-") {
		t.Fatal("the block of .term2 ran in node1's terminal too")
	}

	// exec: the SDK is told only whether it answered 200; what it did shows in the node.
	var execErr string
	p.eval(fmt.Sprintf(`new Promise((ok) => pwd.exec(%q, ["sh", "-c", "echo from-exec > /root/exec.txt"], (e) => ok(e ? String(e) : "")))`, term1), &execErr)
	if execErr != "" {
		t.Fatalf("exec: %s", execErr)
	}
	// The upload button sends its file as FormData to node1's /root.
	p.do("click the upload", chromedp.Click(chromedp.CSS("#upload")))
	p.waitJS("the upload's answer", `pwdWire.some((w) => w.kind === "xhr" && w.url.includes("/uploads?") && w.status)`, 20*time.Second)
	var up wireEntry
	p.eval(`pwdWire.find((w) => w.kind === "xhr" && w.url.includes("/uploads?"))`, &up)
	if up.Status != 200 || !strings.HasSuffix(up.URL, "/instances/"+term1+"/uploads?url=&path=%2Froot") {
		t.Fatalf("the upload: %+v", up)
	}
	p.do("click into node1's terminal", chromedp.Click(chromedp.CSS(".term1 .xterm")))
	p.do("read what exec and the upload left", typeKeys("cat /root/exec.txt /root/hello.txt"+kb.Enter))
	p.waitPWDScreen(".term1", `(?m)^from-exec\nhello from the tutorial$`, 10*time.Second)

	// The close: a synchronous DELETE; the socket says "session end" and closes; the engine is emptied.
	var closeErr string
	p.eval(`new Promise((ok) => pwd.closeSession((e) => ok(e ? String(e) : "")))`, &closeErr)
	if closeErr != "" {
		t.Fatalf("closeSession: %s", closeErr)
	}
	p.waitJS("the socket closed", `pwdWire.some((w) => w.kind === "close")`, 20*time.Second)
	var ended bool
	p.eval(`pwdWire.some((w) => w.kind === "in" && w.name === "session end")`, &ended)
	if !ended {
		t.Error(`no "session end" frame before the socket closed`)
	}
	var s struct {
		State     string `json:"state"`
		EndReason string `json:"end_reason"`
	}
	get(t, srv.url+"/api/v1/sessions/"+sandlotID, &s)
	if s.State != "ended" || s.EndReason != "deleted" {
		t.Errorf("after closeSession the session is %s (%s)", s.State, s.EndReason)
	}
	waitFor(t, 30*time.Second, "nothing of the session left in the engine", func() bool { return countLabelled(t, sandlotID) == 0 })
	for _, e := range p.pwdWire() {
		if e.Kind == "xhr" && e.Status != 200 {
			t.Errorf("%s %s answered %d", e.Method, e.URL, e.Status)
		}
	}
}

// The same tutorial on an origin the server does not list: the browser gets no CORS headers, so the SDK's
// session creation fails in the page, and nothing is made.
func TestPWDPageOriginNotListed(t *testing.T) {
	needEngine(t)
	var srv *proc
	site := pwdSite(t, func() string { return srv.url })
	srv = startServer(t, "--data", t.TempDir(), "--admin-token", admin, "--pwd-compat")
	p := newPage(t, site.URL)
	p.do("open the tutorial", chromedp.Navigate(site.URL+"/tutorial.html"))
	p.waitJS("the SDK's answer", `window.pwdStarted !== undefined`, 30*time.Second)
	var res string
	p.eval(`window.pwdStarted`, &res)
	if got := xhrs(p.pwdWire()); res == "ok" || len(got) != 1 || got[0] != "POST "+srv.url+"/ 0" {
		t.Fatalf("a page of an unlisted origin: newSession %q, calls %v (want the POST / hidden by the browser)", res, got)
	}
	var sessions struct {
		Sessions []json.RawMessage `json:"sessions"`
	}
	get(t, srv.url+"/api/v1/sessions", &sessions)
	if len(sessions.Sessions) != 0 {
		t.Fatalf("a refused page made sessions: %s", sessions.Sessions)
	}
}
