package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// page is one browser tab on a running server, with the steps the tests take through the UI.
type page struct {
	t   testing.TB
	ctx context.Context
	url string
}

// newPage starts a headless Debian chromium (a fresh profile, 1280x720) on the server at url.
func newPage(t testing.TB, url string) *page {
	t.Helper()
	ctx := startChromium(t)
	grantClipboard(t, ctx, url, "")
	return &page{t: t, ctx: ctx, url: url}
}

// chromium is one browser for several people on the server at url: each of its pages is in a browser context of
// its own (cookies, storage and cache apart, as separate browsers have), so that a room of attendees costs one
// browser process, not one each.
type chromium struct {
	t   testing.TB
	ctx context.Context
	url string
}

// newChromium starts a headless Debian chromium (a fresh profile) on the server at url.
func newChromium(t testing.TB, url string) *chromium {
	t.Helper()
	return &chromium{t: t, ctx: startChromium(t), url: url}
}

// page opens a tab (1280x720) in a new browser context: another person's browser.
func (c *chromium) page() *page {
	c.t.Helper()
	ctx, cancel := chromedp.NewContext(c.ctx, chromedp.WithNewBrowserContext())
	c.t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 720)); err != nil { // the first Do opens the tab
		c.t.Fatalf("open a tab: %v", err)
	}
	grantClipboard(c.t, ctx, c.url, chromedp.FromContext(ctx).BrowserContextID)
	return &page{t: c.t, ctx: ctx, url: c.url}
}

// startChromium starts a headless Debian chromium (a fresh profile, 1280x720, with extra options if any) and
// returns its first tab's context; the test's end stops it.
func startChromium(t testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("SANDLOT_REQUIRE_DOCKER") == "1" {
			t.Fatalf("no chromium for the browser tests (make host-browser installs it): %v", err)
		}
		t.Skipf("no chromium: %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 720),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		// Every tab is a person looking at their own screen: none is throttled as a tab in the background.
		chromedp.Flag("disable-background-timer-throttling", true), chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(opts, extra...)...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 720)); err != nil { // the first Do starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// grantClipboard lets the pages of a browser context (the default one: "") copy selections to the clipboard and
// paste from it, as a person who allowed that would.
func grantClipboard(t testing.TB, ctx context.Context, url string, bc cdp.BrowserContextID) {
	t.Helper()
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: name, AllowWithoutSanitization: true},
			Setting:    browser.PermissionSettingGranted, Origin: url, BrowserContextID: bc}); err != nil {
			t.Fatalf("grant %s: %v", name, err)
		}
	}
}

func (p *page) fatalf(format string, args ...any) {
	p.t.Helper()
	p.t.Fatalf(format, args...)
}

// do runs steps, failing the test if they do not finish in 60 s.
func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression (awaiting a promise) and decodes its value into out.
func (p *page) eval(expr string, out any) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.fatalf("evaluate %s: %v", expr, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			p.fatalf("evaluate %s: %v (%s)", expr, err, raw)
		}
	}
}

// waitJS waits until a JavaScript expression is truthy.
func (p *page) waitJS(what, expr string, timeout time.Duration) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, timeout+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(timeout))); err != nil {
		p.fatalf("waiting for %s: %v", what, err)
	}
}

func termSelector(node string, tab int) string {
	return fmt.Sprintf(`sandlot-terminal[instance="%s"][tab="%d"]`, node, tab)
}

// screen is everything node's terminal tab shows and keeps.
func (p *page) screen(node string, tab int) string {
	p.t.Helper()
	var s string
	p.eval(fmt.Sprintf(`document.querySelector(%q)?.text() ?? ""`, termSelector(node, tab)), &s)
	return s
}

// waitScreen waits until node's terminal shows a line matching re, and returns the screen.
func (p *page) waitScreen(node string, tab int, re string, timeout time.Duration) string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for {
		s := p.screen(node, tab)
		if rx.MatchString(s) {
			return s
		}
		if time.Now().After(deadline) {
			p.fatalf("%s's terminal %d does not show /%s/ after %s; it shows:\n%s", node, tab, re, timeout, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pick selects a node in the node list, which gives its terminal the keyboard.
func (p *page) pick(node string) {
	p.t.Helper()
	p.do("pick "+node, chromedp.Click(chromedp.CSS(fmt.Sprintf(`li.node[data-node=%q] button.pick`, node))))
	p.waitJS(node+"'s terminal has the keyboard", fmt.Sprintf(
		`document.activeElement?.closest("sandlot-terminal")?.getAttribute("instance") === %q`, node), 10*time.Second)
}

// typeLine types a command into the focused terminal, key by key, and presses Enter.
func (p *page) typeLine(line string) {
	p.t.Helper()
	p.do("type "+line, typeKeys(line+kb.Enter))
}

// typeKeys presses keys as a browser sees a person press them: a keydown that carries the text, then a keyup.
// (chromedp.KeyEvent sends a keydown without text and a separate char event; Chrome then fires keypress and
// input without the keydown, which no real keyboard does, and xterm.js takes such input twice.)
func typeKeys(keys string, modifiers ...chromedp.Modifier) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		for _, r := range keys {
			events := kb.Encode(r)
			down, up := *events[0], *events[len(events)-1]
			if len(events) == 3 {
				down.Text, down.UnmodifiedText = events[1].Text, events[1].UnmodifiedText
			}
			for _, m := range modifiers {
				down.Modifiers |= int64(m)
				up.Modifiers |= int64(m)
			}
			if down.Modifiers&^int64(chromedp.ModifierShift) != 0 {
				down.Text, down.UnmodifiedText = "", "" // Ctrl+V is a command, not text
			}
			for _, e := range []input.DispatchKeyEventParams{down, up} {
				if _, err := chromedp.Call(ctx, input.DispatchKeyEvent, e); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// waitPrompt waits for node's shell prompt ("[node1 198.18.…] ~ #").
func (p *page) waitPrompt(node string, tab int) {
	p.t.Helper()
	p.waitScreen(node, tab, `(?m)\[`+node+` [0-9.]+\] .*[#$] ?$`, 60*time.Second)
}

// start opens the landing page, picks a template by its name ("" for an empty session) and starts.
func (p *page) start(template string) {
	p.t.Helper()
	if template == "" {
		template = "empty"
	}
	p.do("open the landing page", chromedp.Navigate(p.url+"/"))
	var title string
	p.eval(`document.body.innerText`, &title)
	if strings.Contains(title, "built without its web page") {
		p.fatalf("the binary has no web page: build it first (make ui)")
	}
	p.do("pick "+template, chromedp.Click(chromedp.CSS(fmt.Sprintf(`label.template[data-template=%q]`, template))),
		chromedp.Click(chromedp.CSS(`#start`)))
	p.waitJS("the session page", `location.pathname.startsWith("/s/") && !!document.querySelector("sl-session .bar")`, 30*time.Second)
}

// waitNodes waits until the page lists n nodes, all running, and nothing is being made.
func (p *page) waitNodes(n int, timeout time.Duration) {
	p.t.Helper()
	p.waitJS(fmt.Sprintf("%d running nodes", n), fmt.Sprintf(
		`document.querySelectorAll("li.node[data-node] .dot.running").length === %d && !document.querySelector("li.node.placeholder")`, n),
		timeout)
}

func (p *page) text(sel string) string {
	p.t.Helper()
	var s string
	p.eval(fmt.Sprintf(`document.querySelector(%q)?.innerText ?? ""`, sel), &s)
	return strings.TrimSpace(s)
}

// screenshot saves a PNG of the page under the screenshots directory (.cache/screenshots, or
// $SANDLOT_SCREENSHOTS); `make screenshots` copies the current ones into docs/.
func (p *page) screenshot(name string) {
	p.t.Helper()
	png, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("SANDLOT_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join("..", ".cache", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.fatalf("screenshots: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		p.fatalf("screenshot: %v", err)
	}
}

// newSession starts a server and a browser on it, then a session from the landing page (see start), which is
// deleted when the test ends. It returns the page, the server and the session's id.
func newSession(t *testing.T, template string) (*page, *proc, string) {
	t.Helper()
	needEngine(t)
	srv := startServer(t, "--data", t.TempDir(), "--admin-token", admin)
	p := newPage(t, srv.url)
	p.start(template)
	id := sessionIDOf(p)
	t.Cleanup(func() { deleteSession(t, srv.url, id) })
	return p, srv, id
}

func sessionIDOf(p *page) string {
	var id string
	p.eval(`location.pathname.split("/")[2]`, &id)
	return id
}

// From the landing page, "3 managers + 2 workers": the page lists five nodes, and docker node ls typed into
// node1's terminal shows five nodes Ready.
func TestBrowserSwarmTemplate(t *testing.T) {
	needEngine(t)
	srv := startServer(t, "--data", t.TempDir(), "--admin-token", admin)
	p := newPage(t, srv.url)
	p.do("open the landing page", chromedp.Navigate(srv.url+"/"))
	p.waitJS("the templates", `document.querySelectorAll("label.template").length === 6`, 10*time.Second)
	p.screenshot("landing")

	p.start("swarm-3m2w")
	t.Cleanup(func() { deleteSession(t, srv.url, sessionIDOf(p)) })
	p.waitNodes(5, 90*time.Second)
	p.waitJS("the setup to finish", `document.querySelector("sl-session").busy === ""`, 60*time.Second)
	if got := p.text(".usage"); got != "5 / 5 nodes" {
		t.Errorf("usage says %q, want 5 / 5 nodes", got)
	}
	p.pick("node1")
	p.waitPrompt("node1", 1)
	p.typeLine("docker node ls")
	screen := p.waitScreen("node1", 1, `(?s)(Ready.*){5}`, 30*time.Second)
	if n := strings.Count(screen, "Ready"); n != 5 {
		t.Fatalf("docker node ls shows %d nodes Ready, want 5:\n%s", n, screen)
	}

	// Both themes, and the text size control: the terminals follow.
	var theme string
	p.eval(`document.documentElement.dataset.theme`, &theme)
	p.screenshot("session-" + theme)
	p.do("switch the theme", chromedp.Click(chromedp.CSS("#theme")))
	other := map[string]string{"dark": "light", "light": "dark"}[theme]
	p.waitJS("the other theme", fmt.Sprintf(`document.documentElement.dataset.theme === %q && document.querySelector(%q).getAttribute("theme") === %q`,
		other, termSelector("node1", 1), other), 5*time.Second)
	p.screenshot("session-" + other)
	p.do("larger text", chromedp.Click(chromedp.CSS(`button[aria-label="larger text"]`)))
	p.waitJS("the terminal's text to grow", fmt.Sprintf(`document.querySelector(%q).getAttribute("font-size") === "%d"`,
		termSelector("node1", 1), 15), 5*time.Second)
	p.do("smaller text", chromedp.Click(chromedp.CSS(`button[aria-label="smaller text"]`)))

	// A 1024-pixel-wide laptop screen: nothing sticks out sideways, and the controls stay in view.
	p.do("a smaller screen", chromedp.EmulateViewport(1024, 640))
	p.waitJS("the page to fit 1024 pixels", `document.documentElement.scrollWidth <= 1024 &&
		document.querySelector("#end").getBoundingClientRect().right <= 1024 &&
		document.querySelector(".shown .xterm-screen").getBoundingClientRect().right <= 1024`, 5*time.Second)
	p.screenshot("session-1024")
}

// The two-node flow by hand: start an empty session, add two nodes, swarm init in node1, copy the join command
// from node1's terminal (select it) and paste it into node2 (Ctrl+V): node1 lists two nodes. On the way, a reload
// brings back the same terminals and shells with their scrollback, and a second tab is a second shell.
func TestBrowserTwoNodesByHand(t *testing.T) {
	p, _, _ := newSession(t, "")
	p.waitJS("the empty session", `document.querySelector(".hint")?.innerText.includes("No nodes")`, 10*time.Second)
	p.do("add a node", chromedp.Click(chromedp.CSS("#add-node")))
	p.waitNodes(1, 60*time.Second)
	p.do("add another node", chromedp.Click(chromedp.CSS("#add-node")))
	p.waitNodes(2, 60*time.Second)

	p.pick("node1")
	p.waitPrompt("node1", 1)
	p.typeLine("export X=42; echo before-reload-$((6*7))")
	p.waitScreen("node1", 1, `(?m)^before-reload-42$`, 10*time.Second)
	p.do("open a second tab on node1", chromedp.Click(chromedp.CSS(`button.tab-new`)))
	p.waitPrompt("node1", 2)
	p.typeLine("echo second-shell-$((6*7))")
	p.waitScreen("node1", 2, `(?m)^second-shell-42$`, 10*time.Second)

	p.do("reload", chromedp.Reload())
	p.waitNodes(2, 30*time.Second)
	p.waitScreen("node1", 1, `(?m)^before-reload-42$`, 20*time.Second)
	p.waitScreen("node1", 2, `(?m)^second-shell-42$`, 20*time.Second)
	p.do("back to node1's first tab", chromedp.Click(chromedp.CSS(`.tab[data-tab="1"] button.tab-pick`)))
	p.pick("node1")
	p.typeLine("echo X is $X")
	p.waitScreen("node1", 1, `(?m)^X is 42$`, 10*time.Second)
	if s := p.screen("node1", 1); strings.Count(s, "before-reload-42\n") != 1 {
		t.Fatalf("after the reload the output before it is there %d times, want once:\n%s", strings.Count(s, "before-reload-42\n"), s)
	}

	ip := p.text(`li.node[data-node="node1"] .ip`)
	if !regexp.MustCompile(`^198\.1[89]\.\d+\.\d+$`).MatchString(ip) {
		t.Fatalf("node1's address in the list is %q", ip)
	}
	p.typeLine("docker swarm init --advertise-addr " + ip)
	p.waitScreen("node1", 1, `docker swarm join --token SWMTKN-\S+ \S+:2377`, 30*time.Second)

	// Select the join command as a person would: a triple click on its line copies it.
	var at struct{ X, Y float64 }
	p.eval(fmt.Sprintf(`document.querySelector(%q).locate("docker swarm join --token")`, termSelector("node1", 1)), &at)
	p.do("select the join command", chromedp.MouseClickXY(at.X+20, at.Y, chromedp.ClickCount(3)))
	var copied string
	p.waitJS("the join command on the clipboard", `navigator.clipboard.readText().then(t => t.includes("docker swarm join --token"))`, 5*time.Second)
	p.eval(`navigator.clipboard.readText()`, &copied)
	if !regexp.MustCompile(`^\s*docker swarm join --token SWMTKN-\S+ [0-9.]+:2377\s*$`).MatchString(copied) {
		t.Fatalf("the clipboard holds %q, want the join command alone", copied)
	}

	p.pick("node2")
	p.waitPrompt("node2", 1)
	p.do("paste with Ctrl+V", typeKeys("v", chromedp.ModifierCtrl))
	p.waitScreen("node2", 1, `docker swarm join --token SWMTKN-`, 10*time.Second)
	p.typeLine("")
	p.waitScreen("node2", 1, `This node joined a swarm as a worker`, 30*time.Second)

	p.pick("node1")
	p.typeLine("docker node ls")
	screen := p.waitScreen("node1", 1, `(?s)(Ready.*){2}`, 30*time.Second)
	if n := strings.Count(screen, "Ready"); n != 2 {
		t.Fatalf("docker node ls shows %d nodes Ready, want 2:\n%s", n, screen)
	}

	// Ending the session from the page: two clicks, then the end is shown with its reason.
	p.do("end the session", chromedp.Click(chromedp.CSS("#end")), chromedp.Click(chromedp.CSS("#end")))
	p.waitJS("the end", `document.querySelector(".ended .reason")?.dataset.reason === "deleted"`, 20*time.Second)
}

// A session that reaches its deadline: the page says so, with the reason, within 2 s of it.
func TestBrowserShowsTheEnd(t *testing.T) {
	needEngine(t)
	srv := startServer(t, "--data", t.TempDir(), "--admin-token", admin)
	p := newPage(t, srv.url)
	p.do("open the landing page", chromedp.Navigate(srv.url+"/"))
	var s struct {
		ID        string    `json:"id"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	p.eval(`fetch("/api/v1/sessions", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({duration: "6s"})}).then(r => r.json())`, &s)
	p.do("open the session", chromedp.Navigate(srv.url+"/s/"+s.ID))
	p.waitJS("the countdown", `/^00:0\d left$/.test(document.querySelector("#time-left")?.innerText ?? "")`, 10*time.Second)
	p.waitJS("the end", `document.querySelector(".ended .reason")?.dataset.reason === "expired"`, 20*time.Second)
	shown := time.Now()
	if late := shown.Sub(s.ExpiresAt); late > 2*time.Second {
		t.Fatalf("the end was shown %s after the deadline, want within 2 s", late)
	} else {
		t.Logf("the end was shown %s after the deadline", late.Round(time.Millisecond))
	}
	if got := p.text(".ended .reason"); !strings.Contains(got, "time ran out") {
		t.Fatalf("the end says %q", got)
	}
	p.do("start again", chromedp.Click(chromedp.CSS("#restart-session")))
	p.waitJS("the landing page", `location.pathname === "/" && !!document.querySelector("#start")`, 10*time.Second)
}

// deleteSession ends a session (if it still lives) and waits until nothing of it is left in Docker.
func deleteSession(t testing.TB, url, id string) {
	t.Helper()
	if id == "" {
		return
	}
	req, _ := http.NewRequest("DELETE", url+"/api/v1/sessions/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	waitFor(t, 30*time.Second, "nothing of session "+id+" left in Docker", func() bool { return countLabelled(t, id) == 0 })
}
