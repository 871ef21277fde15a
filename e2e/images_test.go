package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sandlot/sandlot/internal/testengine"
	"github.com/sandlot/sandlot/internal/testimages"
)

// The image cache with ten nodes: the first node's pull fetches each blob of the image from the upstream once;
// nine more nodes pulling it at once fetch nothing more from it; with the upstream down, a new node still runs it.
// The listing and /metrics show what happened.
func TestImageCacheTenNodes(t *testing.T) {
	needEngine(t)
	mirror := testengine.MirrorPort(t)
	up := testimages.NewUpstream(t)
	img := must(testimages.Web("served by the cache"))(t)
	up.Push("library/web:1", img)
	srv := startServer(t, "--data", t.TempDir(), "--admin-token", admin, "--image-upstream", up.URL(),
		"--image-cache-listen", mirror.String(), "--node-memory", "512", "--max-instances", "10",
		"--max-sessions-per-client", "10")
	run := []string{"docker", "run", "--rm", "web:1", "cat", "/www/index.html"}
	blobs, size := blobsOf(t, img)

	a := newLab(t, srv)
	a.expect(t, "node1", "served by the cache\n", run...)
	first := up.Counts()
	if first.BlobGets != blobs || first.BlobBytes != size {
		t.Errorf("one node's pull: the upstream served %d blob GETs, %d bytes; the image has %d blobs, %d bytes",
			first.BlobGets, first.BlobBytes, blobs, size)
	}

	// Nine more nodes, at once: a session runs at most four commands at a time, so four, four and one of A's.
	b, c := newLab(t, srv), newLab(t, srv)
	b.addNodes(t, 3)
	c.addNodes(t, 3)
	a.addNodes(t, 1)
	var at []labNode
	for _, l := range []*lab{b, c} {
		for _, n := range []string{"node1", "node2", "node3", "node4"} {
			at = append(at, labNode{l, n})
		}
	}
	at = append(at, labNode{a, "node2"})
	start := time.Now()
	for _, err := range runAll(at, "served by the cache\n", run...) {
		t.Error(err)
	}
	t.Logf("nine nodes pulled and ran web:1 at once in %s", time.Since(start).Round(time.Millisecond))
	ten := up.Counts()
	if ten.BlobGets != first.BlobGets {
		t.Errorf("nine more nodes: the upstream served %d more blob GETs (%d bytes)", ten.BlobGets-first.BlobGets,
			ten.BlobBytes-first.BlobBytes)
	}
	t.Logf("ten nodes: the upstream sent %d bytes of blobs for an image of %d bytes: ratio %.3f (%d manifest GETs)",
		ten.BlobBytes, size, float64(ten.BlobBytes)/float64(size), ten.ManifestGets)

	// The upstream down: a new node still runs it, from what the cache holds.
	up.SetMode(testimages.Down)
	a.addNodes(t, 1)
	a.expect(t, "node3", "served by the cache\n", run...)
	if n := up.Counts().BlobGets; n != ten.BlobGets {
		t.Errorf("the upstream down, it served %d blob GETs", n-ten.BlobGets)
	}

	list := listImages(t, srv)
	if len(list) != 1 || list[0].Name != "web" || list[0].Tag != "1" || list[0].Digest != must(img.Digest())(t).String() {
		t.Errorf("GET /api/v1/images: %+v, want web:1 (%s)", list, must(img.Digest())(t))
	}
	metrics := getText(t, srv.url+"/metrics")
	for _, m := range []string{"sandlot_image_cache_requests_total", "sandlot_image_cache_upstream_bytes_total"} {
		if !strings.Contains(metrics, "\n"+m) {
			t.Errorf("/metrics has no %s", m)
		}
	}
	if got := metricValue(metrics, "sandlot_image_cache_upstream_bytes_total"); got != float64(ten.BlobBytes) {
		t.Errorf("/metrics: sandlot_image_cache_upstream_bytes_total %v, the upstream sent %d", got, ten.BlobBytes)
	}
	if got := metricValue(metrics, `sandlot_image_cache_requests_total{kind="blob",result="hit"}`); got < 1 {
		t.Errorf("/metrics: no blob request was a hit:\n%s", grepLines(metrics, "sandlot_image_cache_"))
	}
	t.Logf("/metrics:\n%s", grepLines(metrics, "sandlot_image_cache_"))
}

// Without an upstream, `sandlot images import` of a docker save archive puts its image in the cache, and a node
// runs it; what is not such an archive is refused with a clear error, and nothing of it is listed.
func TestImageImportOffline(t *testing.T) {
	needEngine(t)
	mirror := testengine.MirrorPort(t)
	srv := startServer(t, "--data", t.TempDir(), "--admin-token", admin, "--image-upstream", "none",
		"--image-cache-listen", mirror.String())
	dir := t.TempDir()
	img := must(testimages.Web("imported offline"))(t)
	good := filepath.Join(dir, "lab.tar")
	writeFile(t, good, func(w io.Writer) error { return testimages.Save(w, map[string]v1.Image{"sandlot-test/lab:1": img}) })

	out, errOut, err := sandlot(t, "images", "import", "--server", srv.url, "--admin-token", admin, good)
	if err != nil || !strings.Contains(out, "imported sandlot-test/lab:1") {
		t.Fatalf("import %s: %v\nstdout: %s\nstderr: %s", good, err, out, errOut)
	}
	t.Logf("import: %s", strings.TrimSpace(out))

	notTar := filepath.Join(dir, "notes.txt")
	writeFile(t, notTar, func(w io.Writer) error {
		_, err := io.WriteString(w, "these are notes, not an image archive\n")
		return err
	})
	otherTar := filepath.Join(dir, "other.tar") // a real tar, but not of docker save
	writeFile(t, otherTar, func(w io.Writer) error {
		tw := tar.NewWriter(w)
		body := []byte("hello\n")
		if err := tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: int64(len(body))}); err != nil {
			return err
		}
		if _, err := tw.Write(body); err != nil {
			return err
		}
		return tw.Close()
	})
	for _, bad := range []string{notTar, otherTar} {
		out, errOut, err := sandlot(t, "images", "import", "--server", srv.url, "--admin-token", admin, bad)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || !strings.Contains(errOut, "not a `docker save` archive") {
			t.Errorf("import %s: %v, want a nonzero exit saying it is not a docker save archive\nstdout: %s\nstderr: %s",
				filepath.Base(bad), err, out, errOut)
			continue
		}
		t.Logf("import %s: exit %d: %s", filepath.Base(bad), exit.ExitCode(), strings.TrimSpace(errOut))
	}

	l := newLab(t, srv)
	l.expect(t, "node1", "imported offline\n", "docker", "run", "--rm", "sandlot-test/lab:1", "cat", "/www/index.html")
	list := listImages(t, srv)
	if len(list) != 1 || list[0].Name != "sandlot-test/lab" || list[0].Tag != "1" {
		t.Errorf("GET /api/v1/images: %+v, want sandlot-test/lab:1 only", list)
	}
}

// `sandlot images preload`: an image of the upstream is cached (with progress printed), one it lacks is a clear
// error and a nonzero exit; with the upstream hanging, a preload fails within a bounded time and the server keeps
// answering meanwhile.
func TestImagePreloadCLI(t *testing.T) {
	needEngine(t)
	mirror := testengine.MirrorPort(t)
	up := testimages.NewUpstream(t)
	img := must(testimages.Web("preloaded"))(t)
	up.Push("library/web:1", img)
	srv := startServer(t, "--data", t.TempDir(), "--admin-token", admin, "--image-upstream", up.URL(),
		"--image-cache-listen", mirror.String())
	flags := []string{"--server", srv.url, "--admin-token", admin}

	out, errOut, err := sandlot(t, append(append([]string{"images", "preload"}, flags...), "web:1", "nosuch:1")...)
	t.Logf("preload web:1 nosuch:1: %v\nstdout:\n%sstderr:\n%s", err, out, errOut)
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Errorf("preload of an image the upstream lacks: %v, want a nonzero exit", err)
	}
	digest := must(img.Digest())(t).String()
	for _, want := range []string{
		`(?m)^web:1: [0-9.]+ [KMG]iB of [0-9.]+ [KMG]iB$`, // progress
		`(?m)^web:1: cached \(` + regexp.QuoteMeta(digest) + `\)$`,
		`(?m)^nosuch:1: failed: .*no such image`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("preload's output has no line matching %s", want)
		}
	}
	if !strings.Contains(errOut, "nosuch:1") {
		t.Errorf("preload's error does not name nosuch:1: %s", errOut)
	}
	if list := listImages(t, srv); len(list) != 1 || list[0].Name != "web" || list[0].Tag != "1" || list[0].Digest != digest {
		t.Errorf("GET /api/v1/images: %+v, want web:1 (%s) only", list, digest)
	}
	if out, errOut, err := sandlot(t, append([]string{"images", "list"}, flags...)...); err != nil ||
		!regexp.MustCompile(`(?m)^web:1 `).MatchString(out) || strings.Contains(out, "nosuch") {
		t.Errorf("images list: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}

	// The upstream hanging: a preload of an image the cache lacks ends with an error, in bounded time.
	up.SetMode(testimages.Hanging)
	healthy := make(chan error, 1)
	stop := make(chan struct{})
	go func() { healthy <- pollHealth(srv.url, stop) }()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, binary, append(append([]string{"images", "preload"}, flags...), "other:1")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	took := time.Since(start)
	close(stop)
	t.Logf("preload other:1, the upstream hanging: %v after %s\nstdout:\n%sstderr:\n%s", err,
		took.Round(time.Millisecond), stdout.String(), stderr.String())
	if ctx.Err() != nil {
		t.Errorf("preload with the upstream hanging did not end within 90 s")
	} else if !errors.As(err, &exit) || !strings.Contains(stderr.String(), "other:1") {
		t.Errorf("preload with the upstream hanging: %v, want a nonzero exit naming other:1", err)
	}
	// The cache gives up on the upstream (after its UpstreamTimeout) and answers from its store, which lacks the
	// image: that is the error to see, not the preload's request given up on by the server.
	if !regexp.MustCompile(`(?m)^other:1: failed: .*no such image`).MatchString(stdout.String()) ||
		strings.Contains(stderr.String(), "context canceled") {
		t.Errorf("preload with the upstream hanging: want other:1 failed as not in the cache, not a canceled request:\n%s%s",
			stdout.String(), stderr.String())
	}
	if took > 60*time.Second {
		t.Errorf("preload with the upstream hanging took %s, want under 60 s", took)
	}
	if err := <-healthy; err != nil {
		t.Errorf("while the preload waited on the hanging upstream: %v", err)
	}
	up.SetMode(testimages.Serving)
}

// The mirror is read-only (a push to it is refused) and a session's own registry is its own: node2 pushes to and
// pulls from node1:5000, a node of another session cannot reach it.
func TestImageMirrorIsReadOnlyAndPrivate(t *testing.T) {
	needEngine(t)
	mirror := testengine.MirrorPort(t)
	up := testimages.NewUpstream(t)
	up.Push("library/registry-test:1", must(testimages.Registry())(t))
	up.Push("library/web:1", must(testimages.Web("pushed between nodes"))(t))
	srv := startServer(t, "--data", t.TempDir(), "--admin-token", admin, "--image-upstream", up.URL(),
		"--image-cache-listen", mirror.String(), "--node-memory", "512")
	a := newLab(t, srv)
	a.addNodes(t, 1)

	// Read-only: the registry API's upload refused, and docker push to it fails.
	res := a.must(t, "node2", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
		"http://"+mirror.String()+"/v2/x/blobs/uploads/")
	if res.Stdout != "405" {
		t.Errorf("POST of an upload to the mirror: %q, want 405", res.Stdout)
	}
	a.must(t, "node2", "docker", "pull", "-q", "web:1")
	a.must(t, "node2", "docker", "tag", "web:1", mirror.String()+"/x:1")
	res = a.must(t, "node2", "sh", "-c", `docker push "$1"; echo "exit $?"`, "_", mirror.String()+"/x:1")
	if strings.HasSuffix(strings.TrimSpace(res.Stdout), "exit 0") {
		t.Errorf("docker push to the mirror worked:\n%s%s", res.Stdout, res.Stderr)
	}
	t.Logf("docker push to the mirror: %s %s", strings.TrimSpace(res.Stdout), strings.TrimSpace(res.Stderr))

	// A registry in node1, through the cache, takes node2's push and gives it back.
	startRegistry(t, a, "node1")
	a.expect(t, "node2", "pushed between nodes\n", "sh", "-c", `set -e
		docker tag web:1 node1:5000/x:1
		docker push -q node1:5000/x:1 >/dev/null
		docker rmi -f node1:5000/x:1 web:1 >/dev/null
		docker pull -q node1:5000/x:1 >/dev/null
		docker run --rm node1:5000/x:1 cat /www/index.html`)
	ip := a.ip(t, "node1")
	a.must(t, "node2", "curl", "-sf", "--max-time", "3", "-o", "/dev/null", "http://"+ip+":5000/v2/")

	// Another session's node cannot.
	b := newLab(t, srv)
	res = b.exec(t, "node1", "curl", "-s", "--max-time", "3", "-o", "/dev/null", "-w", "%{http_code}", "http://"+ip+":5000/v2/")
	if res.ExitCode == 0 {
		t.Errorf("session B's node reached session A's registry at %s:5000: %+v", ip, res)
	}
	t.Logf("session B's node to %s:5000: curl exit %d", ip, res.ExitCode)
}

// startRegistry runs Registry's image (registry-test:1, from the upstream through the cache) in node, published
// on its port 5000, and waits until it answers.
func startRegistry(t testing.TB, l *lab, node string) {
	t.Helper()
	l.must(t, node, "docker", "run", "-d", "--name", "registry", "-p", "5000:5000", "registry-test:1")
	l.must(t, node, "sh", "-c", `for i in $(seq 100); do curl -sf -o /dev/null localhost:5000/v2/ && exit 0; sleep 0.1; done
		echo "the registry does not answer"; docker logs registry; exit 1`)
}

// lab is a session of the server under test, driven through the API with its token.
type lab struct {
	url   string // the server's
	ID    string `json:"id"`
	Token string `json:"token"`
}

// newLab starts a session of one node (node1); it is ended, and checked to leave nothing behind, when t ends.
func newLab(t testing.TB, srv *proc) *lab {
	t.Helper()
	l := &lab{url: srv.url}
	post(t, srv.url+"/api/v1/sessions", "", `{"template":"1-node"}`, http.StatusCreated, l)
	t.Cleanup(func() { deleteSession(t, srv.url, l.ID) })
	return l
}

// addNodes adds n nodes, one after the other.
func (l *lab) addNodes(t testing.TB, n int) {
	t.Helper()
	for range n {
		var in struct{ Name string }
		post(t, l.url+"/api/v1/sessions/"+l.ID+"/instances", l.Token, `{}`, http.StatusCreated, &in)
	}
}

// ip is node's address on the session's network.
func (l *lab) ip(t testing.TB, node string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", l.url+"/api/v1/sessions/"+l.ID, nil)
	req.Header.Set("Authorization", "Bearer "+l.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct {
		Instances []struct{ Name, IP string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	for _, in := range s.Instances {
		if in.Name == node && in.IP != "" {
			return in.IP
		}
	}
	t.Fatalf("session %s has no %s with an address: %+v", l.ID, node, s.Instances)
	return ""
}

// execResult is the API's answer to an exec (encoding "text" only: the commands here print text).
type execResult struct {
	ExitCode  int    `json:"exit_code"`
	Stdout    string `json:"stdout"`
	Stderr    string `json:"stderr"`
	Encoding  string `json:"encoding"`
	Truncated bool   `json:"truncated"`
}

// run runs cmd in node through the exec API; it may be called from any goroutine.
func (l *lab) run(node string, cmd ...string) (execResult, error) {
	var res execResult
	body, _ := json.Marshal(map[string][]string{"cmd": cmd})
	req, _ := http.NewRequest("POST", l.url+"/api/v1/sessions/"+l.ID+"/instances/"+node+"/exec", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+l.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return res, fmt.Errorf("%s: %q: %w", node, cmd, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return res, fmt.Errorf("%s: %q: %s %s", node, cmd, resp.Status, data)
	}
	if err := json.Unmarshal(data, &res); err != nil {
		return res, fmt.Errorf("%s: %q: %w", node, cmd, err)
	}
	if res.Encoding != "text" {
		return res, fmt.Errorf("%s: %q: the answer is %s, not text", node, cmd, res.Encoding)
	}
	return res, nil
}

// exec runs cmd in node, whatever its exit code.
func (l *lab) exec(t testing.TB, node string, cmd ...string) execResult {
	t.Helper()
	res, err := l.run(node, cmd...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// must runs cmd in node, which must exit 0.
func (l *lab) must(t testing.TB, node string, cmd ...string) execResult {
	t.Helper()
	res := l.exec(t, node, cmd...)
	if res.ExitCode != 0 {
		t.Fatalf("%s: %q: exit %d\nstdout: %s\nstderr: %s", node, cmd, res.ExitCode, res.Stdout, res.Stderr)
	}
	return res
}

// expect runs cmd in node, which must exit 0 and print exactly want.
func (l *lab) expect(t testing.TB, node, want string, cmd ...string) {
	t.Helper()
	if res := l.must(t, node, cmd...); res.Stdout != want {
		t.Fatalf("%s: %q printed %q, want %q (stderr: %s)", node, cmd, res.Stdout, want, res.Stderr)
	}
}

// labNode is a node of a session.
type labNode struct {
	l    *lab
	node string
}

// runAll runs cmd in every node at once and returns what went wrong: an error, a nonzero exit, an output other
// than want.
func runAll(nodes []labNode, want string, cmd ...string) []error {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := n.l.run(n.node, cmd...)
			switch {
			case err != nil:
				errs[i] = err
			case res.ExitCode != 0 || res.Stdout != want:
				errs[i] = fmt.Errorf("session %s %s: %q: exit %d, printed %q, want %q (stderr: %s)", n.l.ID, n.node, cmd,
					res.ExitCode, res.Stdout, want, res.Stderr)
			}
		}()
	}
	wg.Wait()
	var out []error
	for _, err := range errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// blobsOf is the number of blobs of img (its configuration and layers) and their bytes: what a pull moves.
func blobsOf(t testing.TB, img v1.Image) (int, int64) {
	t.Helper()
	size := int64(len(must(img.RawConfigFile())(t)))
	layers := must(img.Layers())(t)
	for _, l := range layers {
		size += must(l.Size())(t)
	}
	return 1 + len(layers), size
}

// cachedImage is an entry of GET /api/v1/images.
type cachedImage struct {
	Name   string `json:"name"`
	Tag    string `json:"tag"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// listImages is GET /api/v1/images, asked without a token (anyone may).
func listImages(t testing.TB, srv *proc) []cachedImage {
	t.Helper()
	// The answer may be a second old.
	time.Sleep(1100 * time.Millisecond)
	var out struct{ Images []cachedImage }
	if err := json.Unmarshal([]byte(getText(t, srv.url+"/api/v1/images")), &out); err != nil {
		t.Fatalf("GET /api/v1/images: %v", err)
	}
	return out.Images
}

// getText is the body of a GET without a token, which must answer 200.
func getText(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v\n%s", url, resp.Status, err, data)
	}
	return string(data)
}

// metricValue is the value of the sample named exactly so (with its labels) in a Prometheus text exposition, or
// -1 if there is none.
func metricValue(text, sample string) float64 {
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// grepLines is the lines of text that start with prefix.
func grepLines(text, prefix string) string {
	var b strings.Builder
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, prefix) {
			b.WriteString(line)
		}
	}
	return b.String()
}

// pollHealth asks url's /healthz every 200 ms, each with 2 s to answer 200, until stop is closed; it returns the
// first failure.
func pollHealth(url string, stop <-chan struct{}) error {
	client := &http.Client{Timeout: 2 * time.Second}
	for asked := 0; ; asked++ {
		resp, err := client.Get(url + "/healthz")
		if err != nil {
			return fmt.Errorf("/healthz, after %d answers: %w", asked, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/healthz, after %d answers: %s", asked, resp.Status)
		}
		select {
		case <-stop:
			if asked == 0 {
				return errors.New("/healthz was never asked")
			}
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// sandlot runs the built binary and returns what it printed, and its exit error.
func sandlot(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// writeFile makes path with what write writes.
func writeFile(t testing.TB, path string, write func(io.Writer) error) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(write(f), f.Close()); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// must(f())(t) is f's value, or ends the test with f's error.
func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
