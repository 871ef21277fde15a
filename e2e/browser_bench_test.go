package e2e

import (
	"sort"
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
