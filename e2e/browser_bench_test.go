package e2e

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Landing page to a usable prompt, in the browser: from opening the landing page, through a click on Start with
// "1 node", until node1's terminal shows its shell prompt. Reports the median over the iterations (the first one
// runs with a cold browser cache).
func BenchmarkLandingToPrompt(b *testing.B) {
	needEngine(b)
	srv := startServer(b, "--data", b.TempDir(), "--admin-token", admin)
	p := newPage(b, srv.url)
	var took []float64
	for b.Loop() {
		start := time.Now()
		p.do("open the landing page", chromedp.Navigate(srv.url+"/"))
		p.waitJS("the templates", `!!document.querySelector('label.template[data-template="1-node"]')`, 10*time.Second)
		landing := time.Since(start)
		p.do("start", chromedp.Click(chromedp.CSS(`label.template[data-template="1-node"]`)), chromedp.Click(chromedp.CSS(`#start`)))
		p.waitJS("node1 listed", `document.querySelectorAll("li.node[data-node] .dot.running").length === 1`, 30*time.Second)
		listed := time.Since(start)
		p.waitJS("node1's prompt", `/\[node1 [0-9.]+\] .*[#$] ?$/m.test(document.querySelector('sandlot-terminal[instance="node1"]')?.text() ?? "")`, 30*time.Second)
		took = append(took, float64(time.Since(start).Milliseconds()))
		b.Logf("landing page shown %v, node listed %v, prompt %v", landing, listed, time.Since(start))
		b.StopTimer()
		deleteSession(b, srv.url, sessionIDOf(p))
		b.StartTimer()
	}
	sort.Float64s(took)
	b.ReportMetric(took[len(took)/2], "ms-median")
	b.ReportMetric(took[0], "ms-min")
	b.ReportMetric(took[len(took)-1], "ms-max")
	b.Logf("landing to prompt, ms: %v", took)
}

// A documentation page's lab to a usable prompt, measured as BenchmarkLandingToPrompt is (run both in one run to
// compare): from opening a page with <sandlot-lab nodes="1">, through a click on Start, until node1's terminal
// shows its prompt. The page is on Sandlot's origin (a test page in front of the server).
func BenchmarkLabStartToPrompt(b *testing.B) {
	needEngine(b)
	srv := startServer(b, "--data", b.TempDir(), "--admin-token", admin)
	site := newDocSite(b, "/assets/sandlot-lab.js", srv.url)
	site.page = strings.Replace(docPage("/assets/sandlot-lab.js"), `nodes="2"`, `nodes="1"`, 1)
	p := newPage(b, site.URL)
	var took []float64
	for b.Loop() {
		start := time.Now()
		p.do("open the page", chromedp.Navigate(site.URL+"/docs/lab.html"))
		p.waitJS("the Start button", `document.querySelector("sandlot-lab")?.dataset.state === "idle"`, 10*time.Second)
		p.do("start", chromedp.Click(chromedp.CSS("sandlot-lab .sl-lab-start")))
		p.waitJS("node1's prompt", `/\[node1 [0-9.]+\] .*[#$] ?$/m.test(document.querySelector('sandlot-lab sandlot-terminal[instance="node1"]')?.text?.() ?? "")`, 60*time.Second)
		took = append(took, float64(time.Since(start).Milliseconds()))
		b.StopTimer()
		var id string
		p.eval(`document.querySelector("sandlot-lab").session.id`, &id)
		p.eval(`sessionStorage.clear(); true`, nil)
		deleteSession(b, srv.url, id)
		b.StartTimer()
	}
	sort.Float64s(took)
	b.ReportMetric(took[len(took)/2], "ms-median")
	b.ReportMetric(took[0], "ms-min")
	b.ReportMetric(took[len(took)-1], "ms-max")
	b.Logf("lab start to prompt, ms: %v", took)
}
