package api

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"
)

// perClient bounds what one client address holds at once (WebSockets, uploads).
type perClient struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

func newPerClient(max int) *perClient { return &perClient{max: max, n: map[string]int{}} }

// acquire takes one for client, unless it holds the most already; release gives it back.
func (p *perClient) acquire(client string) (release func(), ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[client] >= p.max {
		return nil, false
	}
	p.n[client]++
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			if p.n[client]--; p.n[client] <= 0 {
				delete(p.n, client)
			}
			p.mu.Unlock()
		})
	}, true
}

// Body timing: a body may pause for bodyIdle at most, and must be in within bodyGrace plus the time it takes at
// bodyRate, so that a client trickling a byte now and then cannot hold a request (and a spool file) open.
// Variables so that a test can shorten them.
var (
	bodyIdle  = 15 * time.Second
	bodyGrace = 30 * time.Second
)

const (
	bodyRate = 64 << 10 // bytes a second
	bodyMost = 15 * time.Minute
)

var errSlowBody = errors.New("the request's body came too slowly")

// guard bounds the time a request's body takes (see bodyIdle); requests without a body pass as they are.
func (a *api) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			size := r.ContentLength
			if size < 0 {
				size = a.cfg.MaxUpload
			}
			overall := time.Now().Add(min(bodyGrace+time.Duration(size/bodyRate)*time.Second, bodyMost))
			p := &paced{body: r.Body, rc: http.NewResponseController(w), overall: overall}
			p.extend()
			r.Body = p
		}
		next.ServeHTTP(w, r)
	})
}

// paced is a body whose read deadline moves on as bytes arrive, never past overall.
type paced struct {
	body interface {
		Read([]byte) (int, error)
		Close() error
	}
	rc      *http.ResponseController
	overall time.Time
}

func (p *paced) extend() {
	deadline := time.Now().Add(bodyIdle)
	if deadline.After(p.overall) {
		deadline = p.overall
	}
	_ = p.rc.SetReadDeadline(deadline)
}

func (p *paced) Read(b []byte) (int, error) {
	n, err := p.body.Read(b)
	if n > 0 {
		p.extend()
	}
	if err == io.EOF {
		// The body is in. net/http now reads the connection in the background (to see a client leave), and a
		// deadline left behind would end the request's context, and the next request's, when it passes.
		_ = p.rc.SetReadDeadline(time.Time{})
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = errSlowBody
	}
	return n, err
}

func (p *paced) Close() error { return p.body.Close() }

// clientIP is the address the request came from: the peer, or, when the peer is a trusted proxy, the last address
// in X-Forwarded-For that is not a trusted proxy.
func (a *api) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	peer = peer.Unmap()
	if !a.trusted(peer) {
		return peer.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		addr, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		if addr = addr.Unmap(); !a.trusted(addr) {
			return addr.String()
		}
	}
	return peer.String()
}

func (a *api) trusted(addr netip.Addr) bool {
	for _, p := range a.cfg.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
