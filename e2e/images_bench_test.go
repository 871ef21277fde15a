package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/sandlot/sandlot/internal/testengine"
	"github.com/sandlot/sandlot/internal/testimages"
)

// BenchmarkImagePull: a node pulling a 50 MB image from the image cache (warm) against pulling the same image
// from a registry in a neighbour node of its session, interleaved, five rounds of each; the time of a pull is
// measured in the node (date around docker pull). Reports the medians in MB/s and their ratio (target: the
// cache at least 0.8 of the neighbour).
func BenchmarkImagePull(b *testing.B) {
	needEngine(b)
	mirror := testengine.MirrorPort(b)
	up := testimages.NewUpstream(b)
	big := must(testimages.Sized("big", 50<<20))(b)
	up.Push("library/registry-test:1", must(testimages.Registry())(b))
	up.Push("library/big:1", big)
	_, size := blobsOf(b, big)
	srv := startServer(b, "--data", b.TempDir(), "--admin-token", admin, "--image-upstream", up.URL(),
		"--image-cache-listen", mirror.String())
	l := newLab(b, srv)
	l.addNodes(b, 1)
	startRegistry(b, l, "node1")
	ip := l.ip(b, "node1")
	if err := crane.Push(big, ip+":5000/big:1", crane.Insecure); err != nil {
		b.Fatalf("push big:1 to node1's registry from the host: %v", err)
	}
	refs := []string{"big:1", "node1:5000/big:1"}
	for _, ref := range refs { // the cache fetches big:1 from the upstream; both are read once before timing
		b.Logf("first pull of %s: %.1f MB/s", ref, mbps(size, timedPull(b, l, "node2", ref)))
	}

	var cache, neighbour []float64
	for b.Loop() {
		for range 5 {
			cache = append(cache, mbps(size, timedPull(b, l, "node2", refs[0])))
			neighbour = append(neighbour, mbps(size, timedPull(b, l, "node2", refs[1])))
		}
	}
	c, n := median(cache), median(neighbour)
	b.ReportMetric(c, "MB/s-cache")
	b.ReportMetric(n, "MB/s-neighbour")
	b.ReportMetric(c/n, "cache/neighbour")
	b.Logf("image of %d bytes; MB/s from the cache %.1f, from node1's registry %.1f", size, cache, neighbour)
}

// timedPull pulls ref in node, then removes it again, and returns how long the pull took, measured in the node.
func timedPull(b *testing.B, l *lab, node, ref string) time.Duration {
	b.Helper()
	res := l.must(b, node, "sh", "-c", `set -e
		start=$(date +%s%N)
		docker pull -q "$1" >/dev/null
		end=$(date +%s%N)
		docker rmi "$1" >/dev/null
		echo $((end - start))`, "_", ref)
	ns, err := strconv.ParseInt(strings.TrimSpace(res.Stdout), 10, 64)
	if err != nil {
		b.Fatalf("pull %s in %s: it printed %q", ref, node, res.Stdout)
	}
	return time.Duration(ns)
}

func mbps(bytes int64, d time.Duration) float64 { return float64(bytes) / 1e6 / d.Seconds() }

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkImageTenUncached: ten nodes pull the same 20 MB image, which the cache does not hold, at once. Reports
// the bytes the upstream sent over the image's size (target: at most 1.1) and the wall time until every node has
// it. Each iteration pulls an image of its own (they share the base layer, already cached after the first).
func BenchmarkImageTenUncached(b *testing.B) {
	needEngine(b)
	mirror := testengine.MirrorPort(b)
	up := testimages.NewUpstream(b)
	srv := startServer(b, "--data", b.TempDir(), "--admin-token", admin, "--image-upstream", up.URL(),
		"--image-cache-listen", mirror.String(), "--node-memory", "512", "--max-instances", "10",
		"--max-sessions-per-client", "10")
	// A session runs at most four commands at once: ten nodes in sessions of four, three and three.
	var nodes []labNode
	for _, n := range []int{4, 3, 3} {
		l := newLab(b, srv)
		l.addNodes(b, n-1)
		for i := range n {
			nodes = append(nodes, labNode{l, fmt.Sprintf("node%d", i+1)})
		}
	}

	var ratios, walls []float64
	round := 0
	for b.Loop() {
		b.StopTimer()
		round++
		img := must(testimages.Sized(fmt.Sprintf("uncached-%d", round), 20<<20))(b)
		tag := fmt.Sprintf("uncached:%d", round)
		up.Push("library/"+tag, img)
		_, size := blobsOf(b, img)
		before := up.Counts()
		b.StartTimer()

		start := time.Now()
		errs := pullAll(nodes, tag)
		wall := time.Since(start)
		for _, err := range errs {
			b.Error(err)
		}
		after := up.Counts()
		sent := after.BlobBytes - before.BlobBytes
		ratios = append(ratios, float64(sent)/float64(size))
		walls = append(walls, wall.Seconds())
		b.Logf("round %d: %d nodes pulled %s (%d bytes) in %s; the upstream sent %d bytes in %d blob GETs",
			round, len(nodes), tag, size, wall.Round(time.Millisecond), sent, after.BlobGets-before.BlobGets)
	}
	b.ReportMetric(median(ratios), "upstream/size")
	b.ReportMetric(median(walls), "s-wall")
}

// pullAll runs docker pull of ref in every node at once and returns what went wrong.
func pullAll(nodes []labNode, ref string) []error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := n.l.run(n.node, "docker", "pull", "-q", ref)
			if err == nil && res.ExitCode != 0 {
				err = fmt.Errorf("session %s %s: docker pull %s: exit %d: %s", n.l.ID, n.node, ref, res.ExitCode, res.Stderr)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}
