package images

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Progress is what Preload says as it goes: per image, bytes done of the bytes it needs (those the cache has
// already count as done), and at the end its digest or what went wrong.
type Progress struct {
	Image  string `json:"image"`
	Done   int64  `json:"done"`
	Total  int64  `json:"total"`
	Digest string `json:"digest,omitempty"` // set when the image is in the cache whole
	Error  string `json:"error,omitempty"`  // set when it could not be
}

// manifestTypes is what Preload accepts, as docker does.
var manifestTypes = []string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}

// Preload puts images (names as docker takes them: "nginx:alpine", "training/whoami") into the cache from the
// upstream, pulling them as a node would (the linux/amd64 image of a multi-platform one), so that nodes pull them
// from the cache afterwards. It reports progress to progress (which may be nil) and returns the first error;
// each image is tried whatever happened to the others.
func (c *Cache) Preload(ctx context.Context, refs []string, progress func(Progress)) error {
	if progress == nil {
		progress = func(Progress) {}
	}
	if c.front.up == nil {
		return errors.New("this image cache has no upstream to preload from: import `docker save` archives instead")
	}
	if !c.proxyRunning() {
		c.retryProxy()
		if !c.proxyRunning() {
			return fmt.Errorf("the upstream %s does not answer: nothing can be preloaded now (the cache serves what it "+
				"holds; `sandlot images import` loads archives)", c.cfg.Upstream)
		}
	}
	var errs []error
	for _, ref := range refs {
		p, err := c.preload(ctx, ref, progress)
		if err != nil {
			p.Error = err.Error()
			errs = append(errs, fmt.Errorf("preload %s: %w", ref, err))
		}
		progress(p)
	}
	return errors.Join(errs...)
}

// preload puts one image in, and returns its last progress (with its digest once it is whole).
func (c *Cache) preload(ctx context.Context, ref string, progress func(Progress)) (Progress, error) {
	p := Progress{Image: ref}
	repo, id, err := dockerHubRef(ref)
	if err != nil {
		return p, err
	}
	m, digest, err := c.pullManifest(ctx, repo, id)
	if err != nil {
		return p, err
	}
	top := digest
	if len(m.Manifests) > 0 {
		child := ""
		for _, d := range m.Manifests {
			if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == "amd64" {
				child = d.Digest
				break
			}
		}
		if child == "" {
			return p, errors.New("it has no linux/amd64 image")
		}
		if m, _, err = c.pullManifest(ctx, repo, child); err != nil {
			return p, err
		}
	}
	if m.Config == nil {
		return p, errors.New("its manifest names no configuration")
	}
	blobs := append([]descriptor{*m.Config}, m.Layers...)
	for _, b := range blobs {
		p.Total += b.Size
	}
	progress(p)
	for _, b := range blobs {
		w := &counter{header: http.Header{}, on: func(n int64) { p.Done += n; progress(p) }}
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/v2/"+repo+"/blobs/"+b.Digest, nil)
		c.front.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			return p, fmt.Errorf("blob %s: the cache answered %d", b.Digest, w.status)
		}
	}
	if _, _, _, ok := image(c.storage, top); !ok {
		return p, errors.New("not every part of it reached the cache (see the server's log)")
	}
	p.Digest = top
	return p, nil
}

// pullManifest asks the front for a manifest, as a node would.
func (c *Cache) pullManifest(ctx context.Context, repo, ref string) (manifest, string, error) {
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/v2/"+repo+"/manifests/"+ref, nil)
	req.Header["Accept"] = manifestTypes
	rec := httptest.NewRecorder()
	c.front.ServeHTTP(rec, req)
	var m manifest
	if rec.Code != http.StatusOK {
		return m, "", fmt.Errorf("the registry answered %d: %s", rec.Code, registryMessage(rec.Body.Bytes()))
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		return m, "", fmt.Errorf("its manifest is not JSON: %w", err)
	}
	return m, rec.Header().Get("Docker-Content-Digest"), nil
}

// registryMessage is the first message of a registry's error answer, or the answer itself.
func registryMessage(body []byte) string {
	var e struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if json.Unmarshal(body, &e) == nil && len(e.Errors) > 0 {
		msg := e.Errors[0].Message
		if e.Errors[0].Code == "MANIFEST_UNKNOWN" || e.Errors[0].Code == "NAME_UNKNOWN" {
			msg = "no such image (" + strings.ToLower(msg) + ")"
		}
		return msg
	}
	return string(bytes.TrimSpace(body))
}

// CheckRef says whether ref is a name of a Docker Hub image the cache can hold.
func CheckRef(ref string) error {
	_, _, err := dockerHubRef(ref)
	return err
}

// dockerHubRef splits a Docker Hub image name into the repository and the tag or digest; images of other
// registries are refused (the cache mirrors Docker Hub, as the nodes' engines use it).
func dockerHubRef(ref string) (repo, id string, err error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", "", fmt.Errorf("%q is not an image name: %w", ref, err)
	}
	if reg := r.Context().RegistryStr(); reg != name.DefaultRegistry {
		return "", "", fmt.Errorf("%s is on %s: the cache holds images of Docker Hub only", ref, reg)
	}
	return r.Context().RepositoryStr(), r.Identifier(), nil
}

// counter is a ResponseWriter that counts what is written and keeps nothing.
type counter struct {
	header http.Header
	status int
	on     func(int64)
}

func (c *counter) Header() http.Header { return c.header }
func (c *counter) WriteHeader(s int) {
	if c.status == 0 {
		c.status = s
	}
}
func (c *counter) Write(p []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	if c.status == http.StatusOK {
		c.on(int64(len(p)))
	}
	return len(p), nil
}
