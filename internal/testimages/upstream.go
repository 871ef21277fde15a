package testimages

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sandlot/sandlot/internal/registryproc"
)

// Mode is how an Upstream answers.
type Mode int

const (
	// Serving passes every request to the backing registry.
	Serving Mode = iota
	// Down closes the port and every connection to it: connecting is refused.
	Down
	// Hanging accepts connections and reads requests but does not answer them until the mode changes (then the
	// request is answered as the new mode says) or the test ends.
	Hanging
	// Failing answers every request 500 with a registry error.
	Failing
)

func (m Mode) String() string {
	switch m {
	case Serving:
		return "serving"
	case Down:
		return "down"
	case Hanging:
		return "hanging"
	case Failing:
		return "failing"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// Counts is what an Upstream has been asked for and has sent.
type Counts struct {
	Requests     int   // every request that reached it, in any mode
	ManifestGets int   // GETs of a manifest passed to the backing registry
	BlobGets     int   // GETs of a blob (a layer or a configuration) passed to the backing registry
	BlobBytes    int64 // bytes of blob content sent in answer to those
}

// Upstream is a stand-in for Docker Hub: a real registry (registryproc, normal mode) behind a reverse proxy that
// counts what it serves and can be made to go down, hang or fail. A cache under test is given URL as its upstream;
// the test puts images in with Push, which does not go through the proxy and is not counted.
type Upstream struct {
	t         testing.TB
	backend   *registryproc.Server
	addr      string          // the proxy's, kept when it is down so that it comes back on the same port
	transport *http.Transport // to the backend, for the proxy and for Push
	proxy     *httputil.ReverseProxy
	wg        sync.WaitGroup // the server goroutines and the requests in flight (added to under mu, until stopped)

	mu      sync.Mutex
	mode    Mode
	server  *http.Server  // nil when down
	release chan struct{} // closed when Hanging ends
	counts  Counts
	stopped bool
}

// NewUpstream starts an Upstream that is Serving, and stops it, its registry and everything it started when the
// test ends. It skips the test if docker-registry is not installed.
func NewUpstream(t testing.TB) *Upstream {
	t.Helper()
	if _, err := exec.LookPath("docker-registry"); err != nil {
		t.Skip("the upstream needs docker-registry: apt-get install docker-registry")
	}
	addr, err := registryproc.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	backend, err := registryproc.Start(context.Background(), registryproc.Config{Dir: t.TempDir(), Addr: addr})
	if err != nil {
		t.Fatalf("upstream registry: %v", err)
	}
	u := &Upstream{t: t, backend: backend, transport: &http.Transport{}, release: make(chan struct{})}
	target, _ := url.Parse(backend.URL())
	u.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.SetXForwarded() // the registry then gives upload locations on the proxy
		},
		Transport: u.transport,
		// The default logs every request a client gave up on; a test does that on purpose.
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) },
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		backend.Stop()
		t.Fatal(err)
	}
	u.addr = ln.Addr().String()
	u.serve(ln)
	t.Cleanup(u.stop)
	return u
}

// URL is the proxy's base URL, http://127.0.0.1:port: what a cache is given as its upstream.
func (u *Upstream) URL() string { return "http://" + u.addr }

// Push puts img in the backing registry as ref ("library/web:1"), failing the test if it cannot.
func (u *Upstream) Push(ref string, img v1.Image) {
	u.t.Helper()
	dst := u.backend.Addr() + "/" + ref
	if err := crane.Push(img, dst, crane.Insecure, crane.WithTransport(u.transport)); err != nil {
		u.t.Fatalf("push %s to the upstream: %v", ref, err)
	}
}

// Counts is what the proxy has been asked for and has sent since it started or since Reset.
func (u *Upstream) Counts() Counts {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.counts
}

// Reset sets the counts to zero.
func (u *Upstream) Reset() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.counts = Counts{}
}

// SetMode makes the proxy answer as m says from now on. Going Down closes the port and its connections; coming
// back reopens the same port, and fails the test if that cannot be done.
func (u *Upstream) SetMode(m Mode) {
	u.t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.stopped || m == u.mode {
		return
	}
	if u.mode == Hanging {
		close(u.release)
		u.release = make(chan struct{})
	}
	if m == Down {
		_ = u.server.Close()
		u.server = nil
	} else if u.mode == Down {
		ln, err := net.Listen("tcp", u.addr)
		if err != nil {
			u.t.Fatalf("upstream: reopen %s: %v", u.addr, err)
		}
		u.serve(ln)
	}
	u.mode = m
}

// serve starts a server on ln; u.mu is held or u is not yet shared.
func (u *Upstream) serve(ln net.Listener) {
	u.server = &http.Server{Handler: http.HandlerFunc(u.handle)}
	u.wg.Add(1)
	go func(s *http.Server) {
		defer u.wg.Done()
		_ = s.Serve(ln) // returns when the server is closed
	}(u.server)
}

func (u *Upstream) stop() {
	u.mu.Lock()
	u.stopped = true
	close(u.release)
	if u.server != nil {
		_ = u.server.Close()
		u.server = nil
	}
	u.mu.Unlock()
	u.wg.Wait()
	u.transport.CloseIdleConnections()
	u.backend.Stop()
}

func (u *Upstream) handle(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	if u.stopped {
		u.mu.Unlock()
		panic(http.ErrAbortHandler)
	}
	u.wg.Add(1)
	defer u.wg.Done()
	u.counts.Requests++
	for u.mode == Hanging && !u.stopped {
		release := u.release
		u.mu.Unlock()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		u.mu.Lock()
	}
	mode, stopped := u.mode, u.stopped
	kind := kindOf(r)
	if mode == Serving && kind == manifest {
		u.counts.ManifestGets++
	}
	if mode == Serving && kind == blob {
		u.counts.BlobGets++
	}
	u.mu.Unlock()

	switch {
	case stopped || mode == Down:
		panic(http.ErrAbortHandler) // a request that was hanging when the port closed: drop it, unanswered
	case mode == Failing:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, failure)
	case kind == blob:
		u.proxy.ServeHTTP(&countingWriter{ResponseWriter: w, u: u}, r)
	default:
		u.proxy.ServeHTTP(w, r)
	}
}

// failure is the body of every answer when Failing: a registry error, as distribution gives them.
const failure = `{"errors":[{"code":"UNKNOWN","message":"the upstream is failing (testimages.Failing)"}]}` + "\n"

type requestKind int

const (
	other requestKind = iota
	manifest
	blob
)

// kindOf says whether r is a GET of a manifest (/v2/<name>/manifests/<reference>) or of a blob
// (/v2/<name>/blobs/<digest>, not an upload).
func kindOf(r *http.Request) requestKind {
	p := r.URL.Path
	if r.Method != http.MethodGet || !strings.HasPrefix(p, "/v2/") {
		return other
	}
	if i := strings.LastIndex(p, "/manifests/"); i >= 0 && !strings.Contains(p[i+len("/manifests/"):], "/") {
		return manifest
	}
	if i := strings.LastIndex(p, "/blobs/"); i >= 0 {
		if d := p[i+len("/blobs/"):]; strings.Contains(d, ":") && !strings.Contains(d, "/") {
			return blob
		}
	}
	return other
}

// countingWriter adds the body of a successful answer to the upstream's BlobBytes, before writing it, so that a
// client that has received a blob always finds it counted. An error's body is not counted.
type countingWriter struct {
	http.ResponseWriter
	u      *Upstream
	failed bool
}

func (c *countingWriter) WriteHeader(code int) {
	c.failed = code >= 300
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.add(int64(len(p)))
	n, err := c.ResponseWriter.Write(p)
	c.add(int64(n - len(p)))
	return n, err
}

func (c *countingWriter) add(n int64) {
	if n == 0 || c.failed {
		return
	}
	c.u.mu.Lock()
	c.u.counts.BlobBytes += n
	c.u.mu.Unlock()
}

// Unwrap lets http.ResponseController (which the proxy uses to flush) reach the connection.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
