package api

import (
	"github.com/sandlot/sandlot/session"
	"io"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/sandlot/sandlot/internal/redistest"
)

// The lab proxy against a direct connection to the node, on loopback: the median time of a small GET (keep-alive
// on both paths) and the throughput of a 256 MiB download, each to the same server in the node.
func BenchmarkLabProxy(b *testing.B) {
	s := newServer(b, redistest.New(b), serverOpts{})
	c := s.create(nil)
	var node session.Instance
	s.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+c.ID+"/instances", c.Token, nil, &node)
	b.Cleanup(func() { s.call("DELETE", "/api/v1/sessions/"+c.ID, c.Token, nil, nil) })
	s.mustCall(http.StatusOK, "POST", "/api/v1/sessions/"+c.ID+"/instances/node1/exec", c.Token, map[string]any{"cmd": []string{"sh", "-c",
		"mkdir -p /srv/www && echo ok >/srv/www/small && head -c 256M /dev/zero >/srv/www/big && " +
			"(cd /srv/www && python3 -c 'import http.server as h; h.ThreadingHTTPServer.protocol_version=\"HTTP/1.1\"; " +
			"h.SimpleHTTPRequestHandler.protocol_version=\"HTTP/1.1\"; h.test(HandlerClass=h.SimpleHTTPRequestHandler, ServerClass=h.ThreadingHTTPServer, port=8080)' >/dev/null 2>&1 &)"}}, nil)
	waitPort(b, s, c, "node1", 8080)
	var link labLink
	s.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+c.ID+"/instances/node1/ports/8080/link", c.Token, nil, &link)
	u, _ := url.Parse(link.URL)
	proxied := labClient(b, s)
	get := func(client *http.Client, u string) int64 {
		resp, err := client.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("GET %s: %d", u, resp.StatusCode)
		}
		return n
	}
	resp, err := proxied.Get(link.URL) // the link's token becomes the cookie
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	direct := &http.Client{Transport: &http.Transport{Proxy: nil}}
	directURL, proxyURL := "http://"+node.IP+":8080", "http://"+u.Host

	// Direct and proxied requests alternate, so that both see the same machine (a 2-core VM is noisy).
	var direct1, proxied1 []time.Duration
	var directMB, proxiedMB []float64
	timed := func(client *http.Client, u string) (time.Duration, int64) {
		start := time.Now()
		n := get(client, u)
		return time.Since(start), n
	}
	for b.Loop() {
		for range 300 {
			d, _ := timed(direct, directURL+"/small")
			p, _ := timed(proxied, proxyURL+"/small")
			direct1, proxied1 = append(direct1, d), append(proxied1, p)
		}
		d, n := timed(direct, directURL+"/big")
		directMB = append(directMB, float64(n)/1e6/d.Seconds())
		p, n := timed(proxied, proxyURL+"/big")
		proxiedMB = append(proxiedMB, float64(n)/1e6/p.Seconds())
	}
	slices.Sort(direct1)
	slices.Sort(proxied1)
	slices.Sort(directMB)
	slices.Sort(proxiedMB)
	d, p := direct1[len(direct1)/2], proxied1[len(proxied1)/2]
	dMB, pMB := directMB[len(directMB)/2], proxiedMB[len(proxiedMB)/2]
	b.ReportMetric(float64(d.Microseconds()), "µs-direct-median")
	b.ReportMetric(float64(p.Microseconds()), "µs-proxied-median")
	b.ReportMetric(float64((p - d).Microseconds()), "µs-added")
	b.ReportMetric(dMB, "MB/s-direct")
	b.ReportMetric(pMB, "MB/s-proxied")
	b.ReportMetric(pMB/dMB, "download-ratio")
}
