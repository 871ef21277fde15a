package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The Network panel in chromium: a fault added with the form is in place between the nodes (a ping through the
// API stops), the tiles it touches are marked, a bad value comes back named, "cut node3 off" partitions node3
// from the others in one click, and removing every fault heals the network and the marks.
func TestBrowserNetworkPanel(t *testing.T) {
	p, _, id := newSession(t, "")
	for i := 1; i <= 3; i++ {
		p.do("add a node", chromedp.Click(chromedp.CSS("#add-node")))
		p.waitNodes(i, 90*time.Second)
	}
	p.waitJS("the Network panel", `document.querySelector("#network .hint")?.innerText.includes("No faults")`, 10*time.Second)
	pings := func(from, to string) bool {
		to = p.text(fmt.Sprintf(`li.node[data-node=%q] .ip`, to)) // by address: the faults are the question, not DNS
		var code int
		p.eval(fmt.Sprintf(`fetch("/api/v1/sessions/%s/instances/%s/exec", {method: "POST", credentials: "same-origin",
			headers: {"Content-Type": "application/json"}, body: JSON.stringify({cmd: ["sh", "-c", "ping -c 2 -i 0.2 -W 1 %s"]})})
			.then(r => r.json()).then(j => j.exit_code)`, id, from, to), &code)
		return code == 0
	}
	marked := func() string {
		var names []string
		p.eval(`[...document.querySelectorAll("li.node.faulted")].map(e => e.dataset.node)`, &names)
		return strings.Join(names, ",")
	}
	var latencyOff bool
	p.eval(`(async () => { const n = await fetch("/api/v1/sessions/`+id+`/network").then(r => r.json());
		return !n.supported.latency && document.querySelector("#network input[name=latency]").disabled
			|| n.supported.latency && !document.querySelector("#network input[name=latency]").disabled })()`, &latencyOff)
	if !latencyOff {
		t.Error("the latency field does not follow what the kernel allows")
	}

	// node1 -> node2 loses everything: a fault from the form.
	p.do("fill in a loss", chromedp.SetValue(chromedp.CSS(`#network select[name=from]`), "node1"),
		chromedp.SetValue(chromedp.CSS(`#network select[name=to]`), "node2"),
		chromedp.SendKeys(chromedp.CSS(`#network input[name=loss]`), "100"),
		chromedp.Click(chromedp.CSS(`#network button.add`)))
	p.waitJS("the fault listed", `!!document.querySelector('#network li.fault[data-from="node1"][data-to="node2"]')`, 10*time.Second)
	p.waitJS("node1 and node2 marked", `document.querySelectorAll("li.node.faulted").length === 2`, 5*time.Second)
	if m := marked(); m != "node1,node2" {
		t.Errorf("marked tiles: %s", m)
	}
	if pings("node1", "node2") || !pings("node1", "node3") {
		t.Error("with 100% loss from node1 to node2, node1 reaches node2, or no longer reaches node3")
	}

	// A bad value: the server's refusal, naming the field, and nothing changed.
	p.do("fill in a bad loss", chromedp.SetValue(chromedp.CSS(`#network select[name=from]`), "node2"),
		chromedp.SetValue(chromedp.CSS(`#network select[name=to]`), "node3"),
		chromedp.SendKeys(chromedp.CSS(`#network input[name=loss]`), "150"),
		chromedp.Click(chromedp.CSS(`#network button.add`)))
	p.waitJS("the refusal", `document.querySelector("#network .network-error")?.innerText.includes("links[1].loss")`, 10*time.Second)
	if n := p.text(`#network .faults`); strings.Contains(n, "node2 → node3") {
		t.Errorf("a refused fault is listed: %s", n)
	}

	// One click: node3 cut off from the others.
	p.do("cut node3 off", chromedp.Click(chromedp.CSS(`#network button.isolate-node[data-node="node3"]`)))
	p.waitJS("the partition listed", `!!document.querySelector("#network li.fault.partition")`, 10*time.Second)
	p.waitJS("every node marked", `document.querySelectorAll("li.node.faulted").length === 3`, 5*time.Second)
	if pings("node3", "node2") || pings("node1", "node3") {
		t.Error("node3 is cut off and still reaches, or is reached")
	}
	p.screenshot("network-panel")

	p.do("remove all faults", chromedp.Click(chromedp.CSS(`#network button.clear-faults`)))
	p.waitJS("no faults", `document.querySelector("#network .hint")?.innerText.includes("No faults")`, 10*time.Second)
	p.waitJS("no marks", `document.querySelectorAll("li.node.faulted").length === 0`, 5*time.Second)
	if !pings("node1", "node2") || !pings("node3", "node1") {
		t.Error("healed, the nodes do not reach each other")
	}
}
