// Package testimages gives tests of Sandlot's registry cache what they need without the internet: small, real,
// runnable linux/amd64 images built in Go from binaries on this host (a static busybox, Debian's
// docker-registry), `docker save` archives of them, and Upstream, a stand-in for Docker Hub that counts what it
// serves and can be made to go down, hang, or fail.
//
// The images are deterministic for a given host: the same label gives the same digest on every call.
package testimages

import (
	"crypto/sha256"
	"debug/elf"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// Web is an image of busybox httpd serving label (and a newline) at / on port 80: `docker run -d -p 8080:80 IMG`
// then `wget -qO- localhost:8080` prints label. It has no entrypoint, so `docker run IMG echo hi` runs echo; the
// applets are sh, httpd, echo, cat and wget. It has two layers, and the first (busybox) is the same for every
// label, so that a cache can be seen to share it.
func Web(label string) (v1.Image, error) {
	base, err := busyboxLayer()
	if err != nil {
		return nil, err
	}
	www, err := layer(regular("www/index.html", 0o644, []byte(label+"\n")))
	if err != nil {
		return nil, err
	}
	return image(v1.Config{
		Env: []string{"PATH=/bin"},
		Cmd: []string{"httpd", "-f", "-p", "80", "-h", "/www"},
	}, base, www)
}

// Sized is Web(label) with a third layer holding /data/random: size bytes that do not compress, so that the
// image's pull moves about size bytes (for throughput benchmarks). The bytes are the same for the same label and
// size.
func Sized(label string, size int64) (v1.Image, error) {
	if size < 0 {
		return nil, fmt.Errorf("sized image %q: negative size %d", label, size)
	}
	web, err := Web(label)
	if err != nil {
		return nil, err
	}
	seed := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d", label, size))
	data := make([]byte, size)
	_, _ = rand.NewChaCha8(seed).Read(data) // never fails
	l, err := layer(regular("data/random", 0o644, data))
	if err != nil {
		return nil, err
	}
	return mutate.AppendLayers(web, l)
}

// registryConfig is the configuration of the registry in Registry's image: that of the official registry image.
const registryConfig = `version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
`

// Registry is an image of this host's docker-registry (distribution) listening on :5000, keeping its content in
// /var/lib/registry, like the official registry image: `docker run -d -p 5000:5000 IMG` gives a registry that
// takes pushes. REGISTRY_HTTP_ADDR and the other REGISTRY_* variables override its configuration. It holds the
// binary, the shared libraries ldd lists for it, and its configuration, nothing else (no shell).
//
// /var/lib/registry is not a volume, so that removing the container removes what was pushed to it.
func Registry() (v1.Image, error) { return registryImage() }

var registryImage = sync.OnceValues(func() (v1.Image, error) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return nil, errors.New("registry image: docker-registry is not installed (apt-get install docker-registry)")
	}
	files, err := withLibraries(bin, "usr/bin/docker-registry")
	if err != nil {
		return nil, fmt.Errorf("registry image: %w", err)
	}
	files = append(files,
		regular("etc/docker/registry/config.yml", 0o644, []byte(registryConfig)),
		dir("var/lib/registry", 0o755),
		dir("tmp", 0o1777))
	l, err := layer(files...)
	if err != nil {
		return nil, fmt.Errorf("registry image: %w", err)
	}
	return image(v1.Config{
		Entrypoint:   []string{"/usr/bin/docker-registry"},
		Cmd:          []string{"serve", "/etc/docker/registry/config.yml"},
		ExposedPorts: map[string]struct{}{"5000/tcp": {}},
	}, l)
})

// withLibraries is the executable bin, put at name in an image, and the shared libraries and loader ldd lists
// for it, each at the path ldd gives (the file it links to, not the link: on a merged-/usr host /lib64 is one).
func withLibraries(bin, name string) ([]entry, error) {
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", bin, err)
	}
	paths := []string{bin}
	for line := range strings.Lines(string(out)) {
		if strings.Contains(line, "not found") {
			return nil, fmt.Errorf("ldd %s: %s", bin, strings.TrimSpace(line))
		}
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "/") {
				paths = append(paths, f) // "libc.so.6 => /lib/.../libc.so.6 (0x...)" or "/lib64/ld-....so.2 (0x...)"
				break
			}
		}
	}
	var files []entry
	for i, p := range paths {
		body, err := os.ReadFile(p) // follows links
		if err != nil {
			return nil, err
		}
		at := strings.TrimPrefix(filepath.ToSlash(p), "/")
		if i == 0 {
			at = name
		}
		files = append(files, regular(at, 0o755, body))
	}
	return files, nil
}

// busyboxLayer is a static busybox at /bin/busybox with the applets Web promises linked to it.
var busyboxLayer = sync.OnceValues(func() (v1.Layer, error) {
	body, err := staticBusybox()
	if err != nil {
		return nil, err
	}
	files := []entry{regular("bin/busybox", 0o755, body)}
	for _, applet := range []string{"sh", "httpd", "echo", "cat", "wget"} {
		files = append(files, symlink("bin/"+applet, "busybox"))
	}
	return layer(files...)
})

// busyboxPaths are where Debian's busybox-static puts it (and where a merged /usr shows it too).
var busyboxPaths = []string{"/bin/busybox", "/usr/bin/busybox"}

// staticBusybox is the content of the first statically linked x86-64 busybox on this host. A dynamic one would
// not run in an image without its libraries.
func staticBusybox() ([]byte, error) {
	for _, p := range busyboxPaths {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		static := f.Machine == elf.EM_X86_64 && !hasInterpreter(f)
		f.Close()
		if static {
			return os.ReadFile(p)
		}
	}
	return nil, fmt.Errorf("no statically linked x86-64 busybox at %s: apt-get install busybox-static",
		strings.Join(busyboxPaths, " or "))
}

func hasInterpreter(f *elf.File) bool {
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return true
		}
	}
	return false
}

// created is every image's creation time: fixed, so that digests do not change from run to run.
var created = v1.Time{Time: time.Unix(0, 0).UTC()}

// image is a linux/amd64 image of those layers, in order, with that configuration.
func image(cfg v1.Config, layers ...v1.Layer) (v1.Image, error) {
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		Created:      created,
		Config:       cfg,
	})
	if err != nil {
		return nil, err
	}
	return mutate.AppendLayers(img, layers...)
}
