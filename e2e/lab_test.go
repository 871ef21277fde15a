package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

const composeFile = `version: "2.4"
services:
  web:
    image: busybox
    command: httpd -f -p 8000
    ports: ["8000:8000"]
`

// dropFiles drops files (name to content) on the element sel, as a drag from the desktop would.
func (p *page) dropFiles(sel string, files map[string]string) {
	p.t.Helper()
	var parts []string
	for name, content := range files {
		parts = append(parts, fmt.Sprintf(`dt.items.add(new File([%q], %q, {type: "text/plain"}));`, content, name))
	}
	p.eval(fmt.Sprintf(`(() => {
		const dt = new DataTransfer(); %s
		const el = document.querySelector(%q);
		for (const type of ["dragenter", "dragover", "drop"])
			el.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: dt}));
		return true;
	})()`, strings.Join(parts, " "), sel), nil)
}

// The lab reached from the page: a port badge appears for a web server in node1 and opens it through the proxy in
// a new tab; a WebSocket echo server in the node answers through the proxy; docker-compose.yml dropped on the
// terminal lands in the shell's directory and docker-compose up -d runs it; the editor changes it; ssh node2
// hostname from node1 needs no password.
func TestBrowserLab(t *testing.T) {
	p, srv, id := newSession(t, "1-node")
	p.waitNodes(1, 60*time.Second)
	p.do("add node2", chromedp.Click(chromedp.CSS("#add-node")))
	p.waitNodes(2, 60*time.Second)

	// A web server: its badge, then a click opens it in a new tab, through the proxy.
	p.pick("node1")
	p.waitPrompt("node1", 1)
	p.typeLine("mkdir -p /srv/site && echo hello-through-the-proxy >/srv/site/index.html && (cd /srv/site && python3 -m http.server 8080 >/dev/null 2>&1 &)")
	started := time.Now()
	p.waitJS("the 8080 badge", `!!document.querySelector('li.node[data-node="node1"] .port[data-port="8080"]')`, 15*time.Second)
	t.Logf("the 8080 badge appeared %s after the server was started", time.Since(started).Round(10*time.Millisecond))
	opened := chromedp.WaitNewTarget(p.ctx, func(i *target.Info) bool { return strings.Contains(i.URL, "node1-8080-"+id) })
	p.do("open the port", chromedp.Click(chromedp.CSS(`li.node[data-node="node1"] .port[data-port="8080"] .port-open`)))
	var tab target.ID
	select {
	case tab = <-opened:
	case <-time.After(15 * time.Second):
		t.Fatal("no tab opened for node1:8080")
	}
	lab, cancel := chromedp.NewContext(p.ctx, chromedp.WithTargetID(tab))
	defer cancel()
	if err := chromedp.Do(lab); err != nil { // the first Do attaches, and must have no timeout
		t.Fatal(err)
	}
	labPage := &page{t: t, ctx: lab, url: srv.url}
	labPage.waitJS("the site through the proxy", `document.body?.innerText.includes("hello-through-the-proxy")`, 15*time.Second)
	labPage.waitJS("the lab's own origin, without the token in the address", fmt.Sprintf(
		`location.hostname === %q && !location.search.includes("sandlot_token")`, "node1-8080-"+id+".localhost"), 5*time.Second)

	// docker-compose.yml dropped on the terminal, after cd /root: it lands in /root.
	p.pick("node1")
	p.typeLine("cd /root")
	p.waitScreen("node1", 1, `(?m)\] ~ # ?$`, 10*time.Second)
	p.dropFiles("section.terminals", map[string]string{"docker-compose.yml": composeFile})
	p.waitJS("the upload", `document.querySelector(".toast")?.innerText.includes("/root/docker-compose.yml")`, 15*time.Second)
	p.typeLine("docker-compose up -d && echo compose-$((6*7))")
	p.waitScreen("node1", 1, `(?m)^compose-42$`, 60*time.Second)
	p.waitJS("the 8000 badge of the compose service", `!!document.querySelector('li.node[data-node="node1"] .port[data-port="8000"]')`, 15*time.Second)

	// The WebSocket echo server, uploaded the same way, answers through the proxy from the lab's own origin.
	wsecho, err := os.ReadFile("../session/api/testdata/wsecho.py")
	if err != nil {
		t.Fatal(err)
	}
	p.dropFiles("section.terminals", map[string]string{"wsecho.py": string(wsecho)})
	p.waitJS("the upload", `document.querySelector(".toast")?.innerText.includes("/root/wsecho.py")`, 15*time.Second)
	p.typeLine("(python3 wsecho.py >/dev/null 2>&1 &)")
	p.waitJS("the 9000 badge", `!!document.querySelector('li.node[data-node="node1"] .port[data-port="9000"]')`, 15*time.Second)
	var link struct{ URL string }
	p.eval(fmt.Sprintf(`fetch("/api/v1/sessions/%s/instances/node1/ports/9000/link", {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"}).then(r => r.json())`, id), &link)
	labPage.do("open the echo server's origin", chromedp.Navigate(link.URL))
	labPage.waitJS("the echo server's origin", `location.host.startsWith("node1-9000-")`, 10*time.Second)
	labPage.waitJS("the echo through the proxy", `(() => {
		if (!window.echoSocket) {
			window.echoSocket = new WebSocket("ws://" + location.host + "/echo");
			echoSocket.onopen = () => echoSocket.send("ping-through-the-proxy");
			echoSocket.onmessage = (m) => { window.echoed = m.data; echoSocket.close(); };
			echoSocket.onerror = () => { window.echoed = "websocket error"; };
		}
		return window.echoed === "ping-through-the-proxy";
	})()`, 15*time.Second)

	// The editor: open docker-compose.yml, change the published port, save; cat shows the change.
	p.do("open the files", chromedp.Click(chromedp.CSS(`li.node[data-node="node1"] .files-open`)))
	p.waitJS("the tree", `!!document.querySelector('sl-files button[data-path="/root/docker-compose.yml"]')`, 10*time.Second)
	p.do("open the file", chromedp.Click(chromedp.CSS(`sl-files button[data-path="/root/docker-compose.yml"]`)))
	p.waitJS("the file in the editor", `document.querySelector("sl-files textarea")?.value.includes("8000:8000")`, 10*time.Second)
	p.eval(`(() => { const ta = document.querySelector("sl-files textarea");
		ta.value = ta.value.replace("8000:8000", "8001:8000"); ta.dispatchEvent(new Event("input")); return true; })()`, nil)
	p.do("save", chromedp.Click(chromedp.CSS("#files-save")))
	p.waitJS("saved", `document.querySelector(".files-message")?.innerText.includes("Saved")`, 10*time.Second)
	p.do("close the files", chromedp.Click(chromedp.CSS("#files-close")))
	p.pick("node1")
	p.typeLine("grep -c 8001:8000 docker-compose.yml")
	p.waitScreen("node1", 1, `(?m)^1$`, 10*time.Second)

	// ssh to node2: no password, no host key question.
	p.typeLine("ssh node2 hostname")
	p.waitScreen("node1", 1, `(?m)^node2$`, 20*time.Second)
	p.screenshot("lab")
}
