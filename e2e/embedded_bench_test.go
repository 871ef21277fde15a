package e2e

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Embedded labs to a usable prompt against the landing page's, one of each a round in turn on one server, so that
// the ratios hold however loaded the machine is: the landing page (pick "1 node", Start), a documentation page's
// <sandlot-lab nodes="1"> (open, Start; the page in front of Sandlot's origin) and a Play-with-Docker tutorial page
// of one terminal on another origin (its SDK makes the session on load; every call preflighted), each until node1's
// terminal shows its prompt. Reports each median and the ratios to the landing page's (the lab's target: <= 1.2).
func BenchmarkEmbeddedToPrompt(b *testing.B) {
	needEngine(b)
	var srv *proc
	pwd := pwdSite(b, func() string { return srv.url }, func(html string) string {
		return strings.Replace(html, `, { selector: ".term2" }`, "", 1)
	})
	srv = startServer(b, "--data", b.TempDir(), "--admin-token", admin, "--pwd-compat", "--public-origins", pwd.URL)
	docs := newDocSite(b, "/assets/sandlot-lab.js", srv.url)
	docs.page = strings.Replace(docPage("/assets/sandlot-lab.js"), `nodes="2"`, `nodes="1"`, 1)
	p := newPage(b, srv.url)
	landing := func() string {
		p.do("open the landing page", chromedp.Navigate(srv.url+"/"))
		p.waitJS("the templates", `!!document.querySelector('label.template[data-template="1-node"]')`, 10*time.Second)
		p.do("start", chromedp.Click(chromedp.CSS(`label.template[data-template="1-node"]`)), chromedp.Click(chromedp.CSS(`#start`)))
		p.waitJS("node1's prompt", `/\[node1 [0-9.]+\] .*[#$] ?$/m.test(document.querySelector('sandlot-terminal[instance="node1"]')?.text() ?? "")`, 60*time.Second)
		return sessionIDOf(p)
	}
	lab := func() string {
		p.do("open the documentation page", chromedp.Navigate(docs.URL+"/docs/lab.html"))
		p.waitJS("the Start button", `document.querySelector("sandlot-lab")?.dataset.state === "idle"`, 10*time.Second)
		p.do("start", chromedp.Click(chromedp.CSS("sandlot-lab .sl-lab-start")))
		p.waitJS("node1's prompt", `/\[node1 [0-9.]+\] .*[#$] ?$/m.test(document.querySelector('sandlot-lab sandlot-terminal[instance="node1"]')?.text?.() ?? "")`, 60*time.Second)
		var id string
		p.eval(`document.querySelector("sandlot-lab").session.id`, &id)
		p.eval(`sessionStorage.clear(); true`, nil)
		return id
	}
	tutorial := func() string {
		p.do("open the tutorial", chromedp.Navigate(pwd.URL+"/tutorial.html"))
		p.waitPWDScreen(".term1", labPrompt("node1"), 60*time.Second)
		var id string
		p.eval(`pwd.sessionId`, &id)
		return id[:26] // PWD's id is Sandlot's and a MAC
	}
	kinds := []struct {
		name string
		run  func() string
	}{{"landing", landing}, {"lab", lab}, {"pwd", tutorial}}
	took := map[string][]float64{}
	round := 0
	for b.Loop() {
		for i := range kinds {
			k := kinds[(round+i)%len(kinds)] // each goes first in turn
			start := time.Now()
			id := k.run()
			took[k.name] = append(took[k.name], float64(time.Since(start).Milliseconds()))
			b.StopTimer()
			deleteSession(b, srv.url, id)
			b.StartTimer()
		}
		round++
	}
	median := func(name string) float64 {
		ms := append([]float64(nil), took[name]...)
		sort.Float64s(ms)
		b.Logf("%s to prompt, ms: %v", name, ms)
		return ms[len(ms)/2]
	}
	l := median("landing")
	b.ReportMetric(l, "ms-landing")
	for _, k := range []string{"lab", "pwd"} {
		m := median(k)
		b.ReportMetric(m, "ms-"+k)
		b.ReportMetric(m/l, "ratio-"+k)
	}
}
