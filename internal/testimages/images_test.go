package testimages

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/sandlot/sandlot/internal/registryproc"
)

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

func digest(t *testing.T, img v1.Image) v1.Hash { return must(img.Digest())(t) }

func layerDigests(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	var ds []v1.Hash
	for _, l := range must(img.Layers())(t) {
		ds = append(ds, must(l.Digest())(t))
	}
	return ds
}

// The same arguments give the same image; Web images of different labels share their busybox layer.
func TestImagesAreDeterministic(t *testing.T) {
	a1, a2, b := must(Web("a"))(t), must(Web("a"))(t), must(Web("b"))(t)
	if digest(t, a1) != digest(t, a2) {
		t.Error("Web(a) differs from Web(a)")
	}
	if digest(t, a1) == digest(t, b) {
		t.Error("Web(a) is Web(b)")
	}
	la, lb := layerDigests(t, a1), layerDigests(t, b)
	if len(la) != 2 || la[0] != lb[0] || la[1] == lb[1] {
		t.Errorf("Web(a) has layers %v, Web(b) %v: want two, the first shared", la, lb)
	}
	s1, s2 := must(Sized("s", 1000))(t), must(Sized("s", 1000))(t)
	if digest(t, s1) != digest(t, s2) {
		t.Error("Sized(s, 1000) differs from itself")
	}
}

func TestWebConfig(t *testing.T) {
	cf := must(must(Web("x"))(t).ConfigFile())(t)
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
	if len(cf.Config.Entrypoint) != 0 || strings.Join(cf.Config.Cmd, " ") != "httpd -f -p 80 -h /www" {
		t.Errorf("entrypoint %q, cmd %q", cf.Config.Entrypoint, cf.Config.Cmd)
	}
}

// Sized's extra layer is incompressible: it moves at least the bytes asked for.
func TestSizedDoesNotCompress(t *testing.T) {
	const size = 1 << 20
	layers := must(must(Sized("big", size))(t).Layers())(t)
	if len(layers) != 3 {
		t.Fatalf("%d layers, want 3", len(layers))
	}
	if n := must(layers[2].Size())(t); n < size {
		t.Errorf("the random layer is %d bytes compressed, less than the %d in it", n, size)
	}
}

// Each image, pushed to an upstream and pulled back through its proxy, is the same image, whole.
func TestImagesRoundTrip(t *testing.T) {
	u := NewUpstream(t)
	for name, build := range map[string]func() (v1.Image, error){
		"web":      func() (v1.Image, error) { return Web("round trip") },
		"sized":    func() (v1.Image, error) { return Sized("round trip", 1<<20) },
		"registry": Registry,
	} {
		t.Run(name, func(t *testing.T) {
			img := must(build())(t)
			u.Push("library/"+name+":1", img)
			got := pullThrough(t, u, "library/"+name+":1")
			if digest(t, got) != digest(t, img) {
				t.Fatalf("pulled %s, pushed %s", digest(t, got), digest(t, img))
			}
			checkWhole(t, got)
		})
	}
}

func TestSave(t *testing.T) {
	web1, web2 := must(Web("one"))(t), must(Web("two"))(t)
	refs := map[string]v1.Image{"web:1": web1, "web:also-1": web1, "node1:5000/team/web:2": web2}
	var archive bytes.Buffer
	if err := Save(&archive, refs); err != nil {
		t.Fatal(err)
	}
	opener := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(archive.Bytes())), nil }
	for ref, want := range refs {
		tag := must(name.NewTag(ref))(t)
		got, err := tarball.Image(opener, &tag)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if digest(t, got) != digest(t, want) {
			t.Errorf("%s: loaded %s, saved %s", ref, digest(t, got), digest(t, want))
		}
		checkWhole(t, got)
	}
	if err := Save(io.Discard, map[string]v1.Image{"Not A Ref": web1}); err == nil {
		t.Error("Save took a bad reference")
	}
}

// Web's busybox runs outside an engine: echo, and httpd serving the label.
func TestWebRunsUnderChroot(t *testing.T) {
	img := must(Web("hello from web"))(t)
	root := extract(t, img)
	out, err := exec.Command("chroot", root, "/bin/echo", "hi").CombinedOutput()
	if err != nil || string(out) != "hi\n" {
		t.Fatalf("echo hi: %q, %v", out, err)
	}
	addr := must(registryproc.FreeLoopbackAddr())(t)
	startChrooted(t, root, nil, "/bin/httpd", "-f", "-p", addr, "-h", "/www")
	body := waitGet(t, "http://"+addr+"/")
	if body != "hello from web\n" {
		t.Fatalf("httpd answered %q", body)
	}
}

// Registry's image runs outside an engine, as an engine would run it, and takes a push.
func TestRegistryRunsUnderChroot(t *testing.T) {
	img := must(Registry())(t)
	cf := must(img.ConfigFile())(t)
	root := extract(t, img)
	addr := must(registryproc.FreeLoopbackAddr())(t)
	// The image listens on :5000; a free loopback port stands for it here.
	startChrooted(t, root, []string{"REGISTRY_HTTP_ADDR=" + addr}, append(cf.Config.Entrypoint, cf.Config.Cmd...)...)
	waitGet(t, "http://"+addr+"/v2/")

	pushed := must(random.Image(100_000, 2))(t)
	tr := transport(t)
	ref := addr + "/x:1"
	if err := crane.Push(pushed, ref, crane.Insecure, crane.WithTransport(tr)); err != nil {
		t.Fatal(err)
	}
	got := must(crane.Pull(ref, crane.Insecure, crane.WithTransport(tr)))(t)
	if digest(t, got) != digest(t, pushed) {
		t.Fatalf("pulled %s, pushed %s", digest(t, got), digest(t, pushed))
	}
	checkWhole(t, got)
	if _, err := os.Stat(filepath.Join(root, "var/lib/registry/docker/registry/v2/repositories/x")); err != nil {
		t.Errorf("the registry did not keep the push in /var/lib/registry: %v", err)
	}
}

// checkWhole reads all of img and fails the test if any part of it is not what its digest says.
func checkWhole(t *testing.T, img v1.Image) {
	t.Helper()
	config := must(img.RawConfigFile())(t)
	if want := must(img.ConfigName())(t); sha(t, io.NopCloser(bytes.NewReader(config))) != want {
		t.Fatalf("the configuration is not %s", want)
	}
	for _, l := range must(img.Layers())(t) {
		d, diffID := must(l.Digest())(t), must(l.DiffID())(t)
		if got := sha(t, must(l.Compressed())(t)); got != d {
			t.Fatalf("layer %s: its content is %s", d, got)
		}
		if got := sha(t, must(l.Uncompressed())(t)); got != diffID {
			t.Fatalf("layer %s: its uncompressed content is %s, not %s", d, got, diffID)
		}
	}
}

// sha is the digest of what rc gives, which it closes.
func sha(t *testing.T, rc io.ReadCloser) v1.Hash {
	t.Helper()
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		t.Fatal(err)
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}

func needChroot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("running an image's files without an engine needs chroot, so root")
	}
	if _, err := exec.LookPath("chroot"); err != nil {
		t.Skip("chroot is not installed")
	}
}

// extract writes img's files into a temporary directory, as an engine would make its root filesystem.
func extract(t *testing.T, img v1.Image) string {
	t.Helper()
	needChroot(t)
	root := t.TempDir()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return root
		}
		if err != nil {
			t.Fatal(err)
		}
		if !filepath.IsLocal(h.Name) {
			t.Fatalf("the image has %q, outside its root", h.Name)
		}
		p := filepath.Join(root, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, h.FileInfo().Mode())
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, p)
		case tar.TypeReg:
			var f *os.File
			if f, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, h.FileInfo().Mode()); err == nil {
				_, err = io.Copy(f, tr)
				err = errors.Join(err, f.Close())
			}
		default:
			err = fmt.Errorf("unexpected type %c", h.Typeflag)
		}
		if err != nil {
			t.Fatalf("extract %s: %v", h.Name, err)
		}
	}
}

// startChrooted runs args in root, with env (and PATH=/bin), until the test ends.
func startChrooted(t *testing.T, root string, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command("chroot", append([]string{root}, args...)...)
	cmd.Env = append([]string{"PATH=/bin"}, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s said: %s", args[0], out.String())
		}
	})
}

// waitGet is the body of url's answer, once it answers 200 (within 15 s).
func waitGet(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Transport: transport(t), Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				return string(body)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer 200 within 15 s (last: %v)", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// transport is an HTTP transport whose idle connections are closed when the test ends.
func transport(t testing.TB) *http.Transport {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}
