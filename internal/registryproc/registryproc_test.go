package registryproc

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	if _, err := exec.LookPath("docker-registry"); err != nil {
		t.Skip("docker-registry is not installed")
	}
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	addr, err := FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = addr
	s, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// A normal registry takes a push; a pull-through cache of it serves the image, and keeps serving it once the
// upstream is gone; a push to the cache is refused.
func TestCacheOfAnUpstream(t *testing.T) {
	upstream := start(t, Config{})
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref := strings.TrimPrefix(upstream.URL(), "http://") + "/library/tiny:1"
	if err := crane.Push(img, ref, crane.Insecure); err != nil {
		t.Fatal(err)
	}
	cache := start(t, Config{Upstream: upstream.URL()})
	cached := strings.TrimPrefix(cache.URL(), "http://") + "/library/tiny:1"
	want, _ := img.Digest()
	got, err := crane.Pull(cached, crane.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := got.Digest(); d != want {
		t.Fatalf("the cache served %s, want %s", d, want)
	}
	if _, err := got.RawManifest(); err != nil {
		t.Fatal(err)
	}
	layers, _ := got.Layers()
	for _, l := range layers { // fetch the layers through the cache, so that it stores them
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	upstream.Stop()
	if _, err := crane.Digest(cached, crane.Insecure); err != nil {
		t.Fatalf("with the upstream gone, the cache does not serve its copy: %v", err)
	}
	if err := crane.Push(img, strings.TrimPrefix(cache.URL(), "http://")+"/library/pushed:1", crane.Insecure); err == nil {
		t.Fatal("the cache took a push")
	}
}
