package images

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sandlot/sandlot/internal/registryproc"
	"github.com/sandlot/sandlot/internal/testimages"
)

type fixture struct {
	t     *testing.T
	up    *testimages.Upstream
	cache *Cache
	reg   *prometheus.Registry
	cfg   Config
}

// newCache starts a cache of up (nil: no upstream) in dir ("" : a new one).
func newCache(t *testing.T, up *testimages.Upstream, cfg Config) *fixture {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	listen, err := registryproc.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = listen
	if up != nil {
		cfg.Upstream = up.URL()
	}
	if cfg.UpstreamTimeout == 0 {
		cfg.UpstreamTimeout = 2 * time.Second
	}
	f := &fixture{t: t, up: up, reg: prometheus.NewRegistry(), cfg: cfg}
	cfg.Registerer = f.reg
	f.cache, err = Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.cache.Close)
	return f
}

// pull pulls ref ("library/web:1") through the cache as a node would: manifest, configuration, every layer.
func (f *fixture) pull(ref string) (v1.Image, error) {
	img, err := crane.Pull(f.cfg.Listen+"/"+ref, crane.Insecure)
	if err != nil {
		return nil, err
	}
	if _, err := img.RawConfigFile(); err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
	}
	return img, nil
}

func (f *fixture) mustPull(ref string, want v1.Image) {
	f.t.Helper()
	got, err := f.pull(ref)
	if err != nil {
		f.t.Fatalf("pull %s through the cache: %v", ref, err)
	}
	gd, _ := got.Digest()
	wd, _ := want.Digest()
	if gd != wd {
		f.t.Fatalf("pull %s: got %s, want %s", ref, gd, wd)
	}
}

// settle waits until no blob is being stored: a client has its last byte a moment before the store has it.
func (f *fixture) settle() {
	deadline := time.Now().Add(10 * time.Second)
	for f.cache.front.fetching() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

func (f *fixture) listed() []string {
	f.settle()
	var out []string
	for _, img := range f.cache.List() {
		out = append(out, img.Name+":"+img.Tag)
	}
	return out
}

// mustImage is the image a testimages function made (which fails only if this host lacks busybox).
func mustImage(img v1.Image, err error) v1.Image {
	if err != nil {
		panic(err)
	}
	return img
}

func imageBytes(t *testing.T, img v1.Image) int64 {
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	total := m.Config.Size
	for _, l := range m.Layers {
		total += l.Size
	}
	return total
}

// Ten nodes pulling one uncached image at once cost the upstream one copy of it: each blob is fetched once.
// Then, with the upstream down, hanging or failing, the image still comes from the cache.
func TestTenAtOnceThenOffline(t *testing.T) {
	up := testimages.NewUpstream(t)
	img := mustImage(testimages.Sized("ten", 8<<20))
	up.Push("library/ten:1", img)
	f := newCache(t, up, Config{})
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.pull("library/ten:1"); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a pull failed: %v", err)
	}
	c := up.Counts()
	m, _ := img.Manifest()
	if c.BlobGets != len(m.Layers)+1 {
		t.Errorf("the upstream was asked for %d blobs, want %d (each once)", c.BlobGets, len(m.Layers)+1)
	}
	size := imageBytes(t, img)
	if ratio := float64(c.BlobBytes) / float64(size); ratio > 1.1 {
		t.Errorf("the upstream sent %d bytes for an image of %d (%.2fx, want <= 1.1x)", c.BlobBytes, size, ratio)
	}
	if got := testutil.ToFloat64(f.cache.metrics.upstreamBytes); int64(got) != c.BlobBytes {
		t.Errorf("metrics say %v upstream bytes, the upstream sent %d", got, c.BlobBytes)
	}
	if hits := testutil.ToFloat64(f.cache.metrics.requests.WithLabelValues("blob", resultWaited)) +
		testutil.ToFloat64(f.cache.metrics.requests.WithLabelValues("blob", resultHit)); hits < 9 {
		t.Errorf("metrics count %v blob hits, want at least 9", hits)
	}
	if got := f.listed(); !slices.Equal(got, []string{"ten:1"}) {
		t.Errorf("listed %v", got)
	}
	for _, mode := range []testimages.Mode{testimages.Down, testimages.Hanging, testimages.Failing} {
		up.SetMode(mode)
		start := time.Now()
		f.mustPull("library/ten:1", img)
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("with the upstream %s, the pull took %s", mode, took)
		}
	}
}

// Layers shared by images of different repositories (a base image's) are fetched once.
func TestSharedLayerFetchedOnce(t *testing.T) {
	up := testimages.NewUpstream(t)
	a, b := mustImage(testimages.Web("a")), mustImage(testimages.Web("b"))
	up.Push("library/a:1", a)
	up.Push("other/b:1", b)
	f := newCache(t, up, Config{})
	f.mustPull("library/a:1", a)
	first := up.Counts().BlobGets
	f.mustPull("other/b:1", b)
	// b shares a's busybox layer: only its own layer and configuration come from the upstream.
	if got := up.Counts().BlobGets - first; got != 2 {
		t.Errorf("the second image cost %d blob fetches, want 2 (the shared layer is stored)", got)
	}
}

// Nodes cannot write into the cache, nor reach anything but the registry API's reads.
func TestReadOnly(t *testing.T) {
	up := testimages.NewUpstream(t)
	f := newCache(t, up, Config{})
	img := mustImage(testimages.Web("push"))
	err := crane.Push(img, f.cfg.Listen+"/library/pushed:1", crane.Insecure)
	if err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("a push to the cache: %v, want refused as read-only", err)
	}
	for _, c := range []struct{ method, path string }{
		{"POST", "/v2/library/x/blobs/uploads/"},
		{"PUT", "/v2/library/x/manifests/1"},
		{"DELETE", "/v2/library/x/manifests/sha256:" + strings.Repeat("0", 64)},
		{"PATCH", "/v2/library/x/blobs/uploads/abc"},
	} {
		req, _ := http.NewRequest(c.method, "http://"+f.cfg.Listen+c.path, strings.NewReader("x"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d, want 405", c.method, c.path, resp.StatusCode)
		}
	}
	for _, path := range []string{"/v2/_catalog", "/v2/../../etc/passwd", "/v2/library/x/tags/list",
		"/v2/library/../../x/manifests/1", "/v2/LIBRARY/x/manifests/1", "/debug/vars", "/"} {
		resp, err := http.Get("http://" + f.cfg.Listen + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
	if got := f.listed(); len(got) != 0 {
		t.Errorf("listed after refused writes: %v", got)
	}
}

// Preload fills the cache with progress; a name that is not an image, or not on the upstream, is a clear error
// and lists nothing; an upstream that hangs or fails gives an error in bounded time.
func TestPreload(t *testing.T) {
	up := testimages.NewUpstream(t)
	img := mustImage(testimages.Sized("pre", 2<<20))
	up.Push("library/pre:1", img)
	f := newCache(t, up, Config{})
	var last Progress
	var lines int
	if err := f.cache.Preload(context.Background(), []string{"pre:1"}, func(p Progress) { last = p; lines++ }); err != nil {
		t.Fatal(err)
	}
	wd, _ := img.Digest()
	if last.Digest != wd.String() || last.Done != imageBytes(t, img) || last.Total != last.Done || lines < 3 {
		t.Errorf("last progress %+v after %d, want digest %s and all %d bytes", last, lines, wd, imageBytes(t, img))
	}
	if !f.cache.Has("pre:1") || !f.cache.Has("docker.io/library/pre:1") {
		t.Error("Has does not see the preloaded image")
	}
	up.Reset()
	f.mustPull("library/pre:1", img)
	if c := up.Counts(); c.BlobGets != 0 {
		t.Errorf("a pull after the preload fetched %d blobs from the upstream", c.BlobGets)
	}
	for ref, want := range map[string]string{
		"nosuch:1":              "no such image",
		"Not An Image":          "not an image name",
		"ghcr.io/someone/x:1":   "Docker Hub only",
		"library/pre:nosuchtag": "no such image",
	} {
		err := f.cache.Preload(context.Background(), []string{ref}, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("preload %q: %v, want an error saying %q", ref, err, want)
		}
	}
	up.Push("library/later:1", mustImage(testimages.Web("later")))
	for _, mode := range []testimages.Mode{testimages.Hanging, testimages.Failing, testimages.Down} {
		up.SetMode(mode)
		start := time.Now()
		err := f.cache.Preload(context.Background(), []string{"later:1"}, nil)
		if err == nil {
			t.Errorf("preload with the upstream %s succeeded", mode)
		}
		if took := time.Since(start); took > 3*f.cfg.UpstreamTimeout+2*time.Second {
			t.Errorf("preload with the upstream %s took %s", mode, took)
		}
	}
	if got := f.listed(); !slices.Equal(got, []string{"pre:1"}) {
		t.Errorf("listed %v, want only pre:1", got)
	}
}

// A blob whose fetch breaks off midway is not stored, and the image is not listed as present.
func TestCutShortIsNotListed(t *testing.T) {
	up := testimages.NewUpstream(t)
	img := mustImage(testimages.Sized("cut", 16<<20))
	up.Push("library/cut:1", img)
	f := newCache(t, up, Config{})
	m, _ := img.Manifest()
	big := m.Layers[len(m.Layers)-1].Digest.String()
	if _, err := crane.Manifest(f.cfg.Listen+"/library/cut:1", crane.Insecure); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + f.cfg.Listen + "/v2/library/cut/blobs/" + big)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	up.SetMode(testimages.Down) // the upstream goes away a MiB into the layer
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	f.settle()
	if hasBlob(f.cache.storage, "library/cut", big) {
		t.Error("a blob cut short is stored")
	}
	if got := f.listed(); len(got) != 0 {
		t.Errorf("listed %v after a cut-short pull", got)
	}
}

// Import takes a docker save archive; its images are then pulled with no upstream at all. What is not such an
// archive is refused, clearly, and nothing of it is listed.
func TestImport(t *testing.T) {
	f := newCache(t, nil, Config{})
	web := mustImage(testimages.Web("imported"))
	var archive bytes.Buffer
	if err := testimages.Save(&archive, map[string]v1.Image{"sandlot-test/web:1": web, "web:2": web}); err != nil {
		t.Fatal(err)
	}
	names, err := f.cache.Import(context.Background(), bytes.NewReader(archive.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"sandlot-test/web:1", "web:2"}) {
		t.Errorf("imported %v", names)
	}
	f.mustPull("sandlot-test/web:1", web)
	f.mustPull("library/web:2", web)
	if got := f.listed(); !slices.Equal(got, []string{"sandlot-test/web:1", "web:2"}) {
		t.Errorf("listed %v", got)
	}
	truncated := archive.Bytes()[:archive.Len()*2/3]
	for what, body := range map[string][]byte{
		"empty":         nil,
		"text":          []byte("hello, not a tar\n"),
		"random":        bytes.Repeat([]byte{0x1f, 0x8b, 7, 3}, 4096),
		"cut short":     truncated,
		"a tar of junk": tarOf(t, map[string]string{"manifest.json": `[{"Config":"x.json","RepoTags":["junk:1"],"Layers":["nope.tar"]}]`}),
		"unnamed":       tarOf(t, map[string]string{"manifest.json": `[{"Config":"x.json","Layers":[]}]`}),
		"elsewhere":     tarOf(t, map[string]string{"manifest.json": `[{"Config":"x.json","RepoTags":["ghcr.io/x/y:1"],"Layers":[]}]`}),
	} {
		_, err := f.cache.Import(context.Background(), bytes.NewReader(body))
		if err == nil {
			t.Errorf("import of %s: no error", what)
		} else if what != "elsewhere" && !errors.Is(err, ErrNotAnArchive) {
			t.Errorf("import of %s: %v, want ErrNotAnArchive", what, err)
		}
	}
	if got := f.listed(); !slices.Equal(got, []string{"sandlot-test/web:1", "web:2"}) {
		t.Errorf("listed %v after bad imports", got)
	}
	entries, _ := os.ReadDir(f.cfg.Dir + "/tmp")
	if len(entries) != 0 {
		t.Errorf("imports left %d files in tmp", len(entries))
	}
}

// The cache keeps under its size cap, least recently used repositories first, and what it holds (and when it was
// used) survives a restart.
func TestSizeCapAndRestart(t *testing.T) {
	up := testimages.NewUpstream(t)
	imgs := map[string]v1.Image{}
	for _, name := range []string{"old", "mid", "new"} {
		imgs[name] = mustImage(testimages.Sized(name, 4<<20))
		up.Push("library/"+name+":1", imgs[name])
	}
	dir := t.TempDir()
	f := newCache(t, up, Config{Dir: dir, MaxBytes: 12 << 20}) // room for two of the three (4 MiB each and a shared busybox), not three
	for _, name := range []string{"old", "mid", "new"} {
		f.mustPull("library/"+name+":1", imgs[name])
		time.Sleep(10 * time.Millisecond)
	}
	f.mustPull("library/mid:1", imgs["mid"]) // used again: old is now the least recently used
	f.settle()
	r, err := f.cache.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Removed, []string{"library/old"}) || r.After > 12<<20 {
		t.Errorf("collected %+v, want library/old removed and at most %d bytes left", r, 12<<20)
	}
	if got := f.listed(); !slices.Equal(got, []string{"mid:1", "new:1"}) {
		t.Errorf("listed %v after collecting", got)
	}
	up.SetMode(testimages.Down)
	f.mustPull("library/new:1", imgs["new"]) // the registries came back after collecting
	if _, err := f.pull("library/old:1"); err == nil {
		t.Error("old is still pulled with the upstream down")
	}
	used := f.cache.List()[0].LastUsed
	f.cache.Close()
	g := newCache(t, up, Config{Dir: dir, MaxBytes: 12 << 20}) // with the upstream still down
	if got := g.listed(); !slices.Equal(got, []string{"mid:1", "new:1"}) {
		t.Errorf("listed %v after a restart", got)
	}
	if again := g.cache.List()[0].LastUsed; used == nil || again == nil || !again.Equal(*used) {
		t.Errorf("last use %v before the restart, %v after", used, again)
	}
	g.mustPull("library/mid:1", imgs["mid"])
	if err := g.cache.Preload(context.Background(), []string{"old:1"}, nil); err == nil || !strings.Contains(err.Error(), "does not answer") {
		t.Errorf("preload with the upstream down since the start: %v, want it said that the upstream does not answer", err)
	}
	up.SetMode(testimages.Serving)
	if err := g.cache.Preload(context.Background(), []string{"old:1"}, nil); err != nil { // the upstream is back
		t.Errorf("preload once the upstream is back: %v", err)
	}
	g.mustPull("library/old:1", imgs["old"])
}

func tarOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(body))
	}
	tw.Close()
	return b.Bytes()
}
