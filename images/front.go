package images

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"

	"golang.org/x/sync/singleflight"
)

// front is what nodes reach: one port, read-only (GET and HEAD of the registry API, nothing else).
//
// Manifests go to the pull-through cache, which asks the upstream and keeps a copy; when the upstream fails or
// takes longer than UpstreamTimeout, they come from the store (what was cached or put in before). Identical
// manifest requests at the same moment share one answer.
//
// Blobs come from the store when it has them. A blob it lacks is fetched from the upstream by the front itself,
// once: the first request streams it to its node while storing it, and the others wait, then read the stored copy.
// (The pull-through cache would fetch each missed blob twice from the upstream: see decision 0019.)
type front struct {
	c        *Cache
	up       *upstream // nil: no upstream
	client   *http.Client
	manifest singleflight.Group

	mu       sync.Mutex
	inflight map[string]chan struct{} // blobs being fetched from the upstream now, by digest
}

func newFront(c *Cache, up *upstream) *front {
	return &front{c: c, up: up, inflight: map[string]chan struct{}{},
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

// repoPart is a repository name as the registry API has it (it becomes a path in the storage: nothing else passes).
const repoPart = `[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*`

var (
	manifestPath = regexp.MustCompile(`^/v2/(` + repoPart + `)/manifests/([A-Za-z0-9_][A-Za-z0-9._-]{0,127}|sha256:[0-9a-f]{64})$`)
	blobPath     = regexp.MustCompile(`^/v2/(` + repoPart + `)/blobs/(sha256:[0-9a-f]{64})$`)
)

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		registryError(w, http.StatusMethodNotAllowed, "UNSUPPORTED",
			"Sandlot's image cache is read-only: push to a registry of your own (a node can run one, e.g. node1:5000)")
		return
	}
	switch {
	case r.URL.Path == "/v2/" || r.URL.Path == "/v2":
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "{}")
	case manifestPath.MatchString(r.URL.Path):
		m := manifestPath.FindStringSubmatch(r.URL.Path)
		f.serveManifest(w, r, m[1], m[2])
	case blobPath.MatchString(r.URL.Path):
		m := blobPath.FindStringSubmatch(r.URL.Path)
		f.serveBlob(w, r, m[1], m[2])
	default:
		registryError(w, http.StatusNotFound, "NAME_UNKNOWN", "Sandlot's image cache serves images of Docker Hub, nothing else")
	}
}

// answer is a registry's buffered answer to a manifest request.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (f *front) serveManifest(w http.ResponseWriter, r *http.Request, repo, ref string) {
	key := r.Method + " " + repo + " " + ref + " " + strings.Join(r.Header.Values("Accept"), ",")
	v, err, _ := f.manifest.Do(key, func() (any, error) { return f.askManifest(r, repo, ref) })
	if err != nil {
		f.c.metrics.requests.WithLabelValues("manifest", resultError).Inc()
		registryError(w, http.StatusBadGateway, "UNAVAILABLE", err.Error())
		return
	}
	a := v.(answer)
	if a.status == http.StatusOK && r.Method == http.MethodGet {
		f.c.uses.touch(repo, ref)
	}
	for _, h := range []string{"Content-Type", "Content-Length", "Docker-Content-Digest", "Etag"} {
		if vs := a.header.Values(h); len(vs) > 0 {
			w.Header()[h] = vs
		}
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

// askManifest asks the pull-through cache, then, if it fails, the store.
func (f *front) askManifest(r *http.Request, repo, ref string) (answer, error) {
	proxy, store, release := f.c.registries()
	defer release()
	path := "/v2/" + repo + "/manifests/" + ref
	if proxy != "" {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), f.c.cfg.UpstreamTimeout)
		a, err := f.ask(ctx, r, proxy+path)
		cancel()
		if err == nil && a.status < 500 {
			f.c.metrics.requests.WithLabelValues("manifest", resultProxied).Inc()
			return a, nil
		}
		f.c.metrics.requests.WithLabelValues("manifest", resultOffline).Inc()
	} else {
		f.c.metrics.requests.WithLabelValues("manifest", resultHit).Inc()
	}
	a, err := f.ask(r.Context(), r, store+path)
	if err != nil {
		return answer{}, fmt.Errorf("the image cache's store does not answer: %w", err)
	}
	return a, nil
}

// ask sends r's method and Accept headers to url and buffers the answer (a manifest: small).
func (f *front) ask(ctx context.Context, r *http.Request, url string) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, r.Method, url, nil)
	if err != nil {
		return answer{}, err
	}
	req.Header["Accept"] = r.Header.Values("Accept")
	resp, err := f.client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return answer{}, err
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

func (f *front) serveBlob(w http.ResponseWriter, r *http.Request, repo, digest string) {
	proxy, store, release := f.c.registries()
	defer release()
	st := f.c.storage
	if hasBlob(st, repo, digest) || (f.up == nil && mountBlob(r.Context(), f.client, st, store, repo, digest) == nil) {
		f.c.metrics.requests.WithLabelValues("blob", resultHit).Inc()
		f.pass(w, r, store)
		return
	}
	if f.up == nil {
		f.pass(w, r, store) // the store's "blob unknown"
		return
	}
	if r.Method == http.MethodHead { // the pull-through cache asks the upstream, fetching nothing
		ctx, cancel := context.WithTimeout(r.Context(), f.c.cfg.UpstreamTimeout)
		a, err := f.ask(ctx, r, proxy+r.URL.Path)
		cancel()
		if err != nil || a.status != http.StatusOK {
			registryError(w, http.StatusNotFound, "BLOB_UNKNOWN", "the image cache does not have "+digest)
			return
		}
		for _, h := range []string{"Content-Type", "Content-Length", "Docker-Content-Digest"} {
			w.Header()[h] = a.header.Values(h)
		}
		return
	}
	for attempt := 0; ; attempt++ {
		f.mu.Lock()
		wait, busy := f.inflight[digest]
		if !busy {
			done := make(chan struct{})
			f.inflight[digest] = done
			f.mu.Unlock()
			if mountBlob(r.Context(), f.client, st, store, repo, digest) == nil { // stored for another repository
				f.c.metrics.requests.WithLabelValues("blob", resultHit).Inc()
				f.pass(w, r, store)
			} else {
				f.c.metrics.requests.WithLabelValues("blob", resultMiss).Inc()
				f.fetch(w, r, store, repo, digest)
			}
			f.mu.Lock()
			delete(f.inflight, digest)
			f.mu.Unlock()
			close(done)
			return
		}
		f.mu.Unlock()
		select {
		case <-wait:
		case <-r.Context().Done():
			return
		}
		if hasBlob(st, repo, digest) || mountBlob(r.Context(), f.client, st, store, repo, digest) == nil {
			f.c.metrics.requests.WithLabelValues("blob", resultWaited).Inc()
			f.pass(w, r, store)
			return
		}
		if attempt > 0 { // two fetches failed: say so rather than try for ever
			f.c.metrics.requests.WithLabelValues("blob", resultError).Inc()
			registryError(w, http.StatusBadGateway, "UNAVAILABLE", "the image cache could not fetch "+digest+" from its upstream")
			return
		}
	}
}

// fetching says whether a blob is being fetched from the upstream now.
func (f *front) fetching() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.inflight) > 0
}

// pass streams r's answer from the registry at base.
func (f *front) pass(w http.ResponseWriter, r *http.Request, base string) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.Path, nil)
	if err != nil {
		registryError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	for _, h := range []string{"Accept", "Range"} {
		req.Header[h] = r.Header.Values(h)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		registryError(w, http.StatusBadGateway, "UNAVAILABLE", "the image cache's registry does not answer")
		return
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "Content-Length", "Content-Range", "Accept-Ranges", "Docker-Content-Digest", "Etag"} {
		if vs := resp.Header.Values(h); len(vs) > 0 {
			w.Header()[h] = vs
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// registryError answers in the registry API's error format, which docker shows to its user.
func registryError(w http.ResponseWriter, status int, code, msg string) {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"errors":[{"code":%q,"message":%q}]}`, code, msg)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(b.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}
