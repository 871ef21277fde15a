package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// upstream fetches blobs from the registry cached, with its token dance (Docker Hub's bearer tokens) done by
// go-containerregistry's transport, one per repository.
type upstream struct {
	base    *url.URL
	reg     name.Registry
	auth    authn.Authenticator
	timeout time.Duration
	plain   http.RoundTripper

	mu         sync.Mutex
	transports map[string]http.RoundTripper
}

func newUpstream(raw string, auth authn.Authenticator, timeout time.Duration) *upstream {
	base, _ := url.Parse(raw) // checked by Start
	var opts []name.Option
	if base.Scheme == "http" {
		opts = append(opts, name.Insecure)
	}
	reg, _ := name.NewRegistry(base.Host, opts...)
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	return &upstream{base: base, reg: reg, auth: auth, timeout: timeout, transports: map[string]http.RoundTripper{},
		plain: &http.Transport{DialContext: dialer.DialContext, ResponseHeaderTimeout: timeout,
			TLSHandshakeTimeout: 10 * time.Second, MaxIdleConnsPerHost: 16, Proxy: http.ProxyFromEnvironment}}
}

func (u *upstream) transport(ctx context.Context, repo string) (http.RoundTripper, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if t, ok := u.transports[repo]; ok {
		return t, nil
	}
	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	t, err := transport.NewWithContext(ctx, u.reg, u.auth, u.plain, []string{u.reg.Repo(repo).Scope(transport.PullScope)})
	if err != nil {
		return nil, err
	}
	if len(u.transports) > 1000 {
		clear(u.transports)
	}
	u.transports[repo] = t
	return t, nil
}

// blob asks the upstream for a blob; the caller closes the body.
func (u *upstream) blob(ctx context.Context, repo, digest string) (*http.Response, error) {
	t, err := u.transport(ctx, repo)
	if err != nil {
		return nil, fmt.Errorf("reach %s: %w", u.base.Host, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.base.Scheme+"://"+u.base.Host+"/v2/"+repo+"/blobs/"+digest, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: t}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s from %s: %w", digest, u.base.Host, err)
	}
	return resp, nil
}

// fetch streams a blob from the upstream to w and, at the same time, into the store under repo; the store
// checks its digest. The fetch goes on when w's client goes away, since other requests wait for the stored copy;
// it is given up when the upstream sends nothing for its timeout.
func (f *front) fetch(w http.ResponseWriter, r *http.Request, store, repo, digest string) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	resp, err := f.up.blob(ctx, repo, digest)
	if err != nil {
		f.c.metrics.requests.WithLabelValues("blob", resultError).Inc()
		registryError(w, http.StatusBadGateway, "UNAVAILABLE", err.Error())
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(body)
		return
	}
	f.c.metrics.upstreamPulls.Inc()
	pr, pw := io.Pipe()
	stored := make(chan error, 1)
	go func() {
		err := putBlob(ctx, f.client, store, repo, digest, pr)
		pr.CloseWithError(err) // a failed upload stops taking bytes; the node's copy goes on
		stored <- err
	}()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Docker-Content-Digest", digest)
	if resp.ContentLength >= 0 {
		w.Header().Set("Content-Length", fmt.Sprint(resp.ContentLength))
	}
	w.WriteHeader(http.StatusOK)

	idle := time.AfterFunc(f.up.timeout, cancel) // the upstream stalled
	defer idle.Stop()
	h := sha256.New()
	client, storing := true, true
	buf := make([]byte, 256<<10)
	var readErr error
	for {
		n, err := resp.Body.Read(buf)
		idle.Reset(f.up.timeout)
		if n > 0 {
			f.c.metrics.upstreamBytes.Add(float64(n))
			h.Write(buf[:n])
			if storing {
				if _, werr := pw.Write(buf[:n]); werr != nil {
					storing = false
				}
			}
			if client {
				if _, werr := w.Write(buf[:n]); werr != nil {
					client = false
				}
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				readErr = err
			}
			break
		}
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); readErr == nil && got != digest {
		readErr = fmt.Errorf("the upstream sent %s for %s", got, digest)
	}
	pw.CloseWithError(readErr)
	if err := <-stored; err != nil || readErr != nil {
		f.c.cfg.Log.Warn("image cache: a blob from the upstream is not stored", "repo", repo, "digest", digest,
			"err", errors.Join(readErr, err))
	}
}

// putBlob uploads body as digest into repo of the registry at base, in one streamed PATCH and a closing PUT.
func putBlob(ctx context.Context, client *http.Client, base, repo, digest string, body io.Reader) error {
	resp, err := do(ctx, client, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", nil, http.StatusAccepted)
	if err != nil {
		return err
	}
	loc, err := location(base, resp)
	if err != nil {
		return err
	}
	resp, err = do(ctx, client, http.MethodPatch, loc, body, http.StatusAccepted)
	if err != nil {
		return err
	}
	if loc, err = location(base, resp); err != nil {
		return err
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	_, err = do(ctx, client, http.MethodPut, loc+sep+"digest="+url.QueryEscape(digest), nil, http.StatusCreated)
	return err
}

// do sends a request and checks its status; the body of the answer is read and closed.
func do(ctx context.Context, client *http.Client, method, url string, body io.Reader, want int) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %s: %s", method, req.URL.Path, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp, nil
}

func location(base string, resp *http.Response) (string, error) {
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", errors.New("the registry gave no upload location")
	}
	if strings.HasPrefix(loc, "/") {
		loc = base + loc
	}
	return loc, nil
}
