package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// A PWD tutorial page to a usable prompt, measured as BenchmarkLandingToPrompt is (run both in one run to
// compare): from opening the page of testdata/pwd with only its .term1 (one node, as the landing page's "1 node"),
// whose SDK creates the session on load, until that terminal shows node1's prompt. The page is on another origin
// (a second loopback port, listed in --public-origins), so every call is preflighted.
func BenchmarkPWDPageToPrompt(b *testing.B) {
	needEngine(b)
	var srv *proc
	site := pwdSite(b, func() string { return srv.url }, func(html string) string {
		return strings.Replace(html, `, { selector: ".term2" }`, "", 1)
	})
	srv = startServer(b, "--data", b.TempDir(), "--admin-token", admin, "--pwd-compat", "--public-origins", site.URL)
	p := newPage(b, site.URL)
	var took []float64
	for b.Loop() {
		start := time.Now()
		p.do("open the tutorial", chromedp.Navigate(site.URL+"/tutorial.html"))
		p.waitPWDScreen(".term1", labPrompt("node1"), 60*time.Second)
		took = append(took, float64(time.Since(start).Milliseconds()))
		b.StopTimer()
		var id string
		p.eval(`pwd.sessionId`, &id)
		deleteSession(b, srv.url, id[:26])
		b.StartTimer()
	}
	reportMillis(b, "PWD page to prompt", took)
}
