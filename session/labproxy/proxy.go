// Package labproxy is Sandlot's lab proxy: HTTP and WebSocket traffic from the browser to any port of any node of
// a session, at
//
//	http://<node>-<port>-<session>.<lab domain>[:port]/...   (host-based: the app gets the whole origin)
//	http://<sandlot>/lab/<session>/<node>/<port>/...          (path-based fallback, served sandboxed)
//
// Access needs the session's token (its cookie, or Bearer), the admin token, or a lab link's token (session.Grant,
// checked by AllowsPort): ?sandlot_token=... is exchanged once for a cookie of that origin (or path) and the URL is
// reloaded without it, on the same host. Nothing of Sandlot's (its cookies, the token) reaches the app, and
// path-based, nothing of the app's that would act on all of Sandlot's origin (cookies, Clear-Site-Data, HSTS, CORS
// grants, service worker scope) reaches the browser. Bodies stream both ways; the original Host is passed on, with
// X-Forwarded-Host, -Proto, -For and, path-based, X-Forwarded-Prefix.
package labproxy

import (
	"context"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/sandlot/sandlot/session"
)

// Sessions is what the proxy needs of the session service.
type Sessions interface {
	Authorize(token string) (session.Grant, error)
	NodeAddress(ctx context.Context, id, name string) (string, error)
}

// Config tunes the proxy.
type Config struct {
	Domain        string // lab hosts are <node>-<port>-<session>.<Domain>; default "localhost"
	SecureCookies bool   // mark its cookies Secure (behind TLS)
}

// Proxy is the lab proxy. It is safe for concurrent use.
type Proxy struct {
	cfg       Config
	sessions  Sessions
	log       *slog.Logger
	transport *http.Transport

	mu    sync.Mutex
	addrs map[string]address // by "session/node", see address
}

// New returns a Proxy to the nodes of sessions.
func New(sessions Sessions, cfg Config, log *slog.Logger) *Proxy {
	cfg.Domain = strings.ToLower(strings.Trim(cfg.Domain, "."))
	if cfg.Domain == "" {
		cfg.Domain = "localhost"
	}
	return &Proxy{cfg: cfg, sessions: sessions, log: log, transport: newTransport(), addrs: map[string]address{}}
}

const (
	// Cookie is the proxy's cookie, holding the token a link brought; the session's own cookie, sandlot_<id>,
	// works too.
	Cookie     = "sandlot_lab"
	tokenParam = "sandlot_token"
)

var hostRE = regexp.MustCompile(`^(node[0-9]{1,4})-([0-9]{1,5})-([a-z0-9]{8,64})$`)

// Target is a port of a node of a session, and the path prefix it is served under (path-based only).
type Target struct {
	Session, Node string
	Port          int
	Prefix        string
}

func (t Target) String() string { return fmt.Sprintf("%s:%d", t.Node, t.Port) }

// HostTarget reads a host-based lab URL's host: "<node>-<port>-<session>.<domain>", any port.
func (p *Proxy) HostTarget(host string) (Target, bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	label, ok := strings.CutSuffix(strings.ToLower(host), "."+p.cfg.Domain)
	if !ok {
		return Target{}, false
	}
	m := hostRE.FindStringSubmatch(label)
	if m == nil {
		return Target{}, false
	}
	port, err := strconv.Atoi(m[2])
	if err != nil || port < 1 || port > 65535 {
		return Target{}, false
	}
	return Target{Node: m[1], Port: port, Session: m[3]}, true
}

// Wrap sends requests for a lab host to the proxy and every other request to next.
func (p *Proxy) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t, ok := p.HostTarget(r.Host); ok {
			p.serve(t).ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// PathHandler serves the path-based form, /lab/{id}/{name}/{port}/... (the patterns' wildcards).
func (p *Proxy) PathHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		port, err := strconv.Atoi(r.PathValue("port"))
		if err != nil || port < 1 || port > 65535 {
			Page(w, http.StatusNotFound, "No such port", "Ports are numbers from 1 to 65535.")
			return
		}
		t := Target{Session: r.PathValue("id"), Node: r.PathValue("name"), Port: port}
		t.Prefix = "/lab/" + t.Session + "/" + t.Node + "/" + strconv.Itoa(port)
		if r.URL.Path == t.Prefix { // relative links need the slash
			http.Redirect(w, r, t.Prefix+"/"+query(r.URL.RawQuery), http.StatusMovedPermanently)
			return
		}
		p.serve(t).ServeHTTP(w, r)
	})
}

// serve lets an authorized request through to the target.
func (p *Proxy) serve(t Target) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token := r.URL.Query().Get(tokenParam); token != "" {
			p.exchange(w, r, t, token)
			return
		}
		if status, why := p.authorized(r, t); status != 0 {
			Page(w, status, "You cannot open "+t.String()+" of this session", why)
			return
		}
		ip, err := p.address(r.Context(), t)
		switch {
		case errors.Is(err, session.ErrEnded):
			Page(w, http.StatusGone, "This session has ended", "Its nodes and what ran on them are gone.")
			return
		case errors.Is(err, session.ErrNotFound):
			Page(w, http.StatusNotFound, "No such node", "This session has no node "+t.Node+".")
			return
		case err != nil:
			p.log.Error("lab proxy: find the node", "session", t.Session, "node", t.Node, "err", err)
			Page(w, http.StatusServiceUnavailable, "Sandlot cannot look up this node now", "Try again in a moment.")
			return
		}
		p.reverseProxy(t, ip).ServeHTTP(w, r)
	})
}

// addressTTL is how long a node's address is remembered: a page's burst of requests asks the store once, and a
// node that went away is noticed within this time (its address stops answering at once anyway).
const addressTTL = time.Second

type address struct {
	ip   string
	when time.Time
}

// address is the address of a live session's node, from a short-lived cache or the session service.
func (p *Proxy) address(ctx context.Context, t Target) (string, error) {
	key := t.Session + "/" + t.Node
	p.mu.Lock()
	c, ok := p.addrs[key]
	p.mu.Unlock()
	if ok && time.Since(c.when) < addressTTL {
		return c.ip, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ip, err := p.sessions.NodeAddress(ctx, t.Session, t.Node)
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	if len(p.addrs) > 10_000 {
		clear(p.addrs) // a crude bound; entries are cheap to make again
	}
	p.addrs[key] = address{ip: ip, when: time.Now()}
	p.mu.Unlock()
	return ip, nil
}

// authorized says why a request may not reach the target (status 0: it may).
func (p *Proxy) authorized(r *http.Request, t Target) (int, string) {
	var tokens []string
	if c, err := r.Cookie(Cookie); err == nil {
		tokens = append(tokens, c.Value)
	}
	if c, err := r.Cookie("sandlot_" + t.Session); err == nil {
		tokens = append(tokens, c.Value)
	}
	if b := bearer(r); b != "" {
		tokens = append(tokens, b)
	}
	if len(tokens) == 0 {
		return http.StatusUnauthorized, "Open this link from the session's page in Sandlot, or ask its owner for a share link."
	}
	why := ""
	for _, token := range tokens {
		if _, why = p.check(token, t); why == "" {
			return 0, ""
		}
	}
	return http.StatusForbidden, why
}

// check says whether token opens the target, until when, or why it does not.
func (p *Proxy) check(token string, t Target) (expires time.Time, why string) {
	g, err := p.sessions.Authorize(token)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return time.Time{}, "This link has expired. Ask for a new one."
	case err != nil:
		return time.Time{}, "This link is not valid."
	}
	if err := g.AllowsPort(t.Session, t.Node, t.Port); err != nil {
		return time.Time{}, err.Error()
	}
	return g.Expires, ""
}

// exchange turns ?sandlot_token= into a cookie of the lab's origin (or path) and reloads without it, on this host
// and path, so the token stays out of the app's view, its logs and the address bar.
func (p *Proxy) exchange(w http.ResponseWriter, r *http.Request, t Target, token string) {
	expires, why := p.check(token, t)
	if why != "" {
		Page(w, http.StatusForbidden, "You cannot open "+t.String()+" of this session", why)
		return
	}
	cookiePath := "/"
	if t.Prefix != "" {
		cookiePath = t.Prefix + "/"
	}
	http.SetCookie(w, &http.Cookie{Name: Cookie, Value: token, Path: cookiePath, Expires: expires, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: p.cfg.SecureCookies})
	q := r.URL.Query()
	q.Del(tokenParam)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, samePlace(r.URL.EscapedPath())+query(q.Encode()), http.StatusSeeOther)
}

// samePlace makes a path that a browser resolves on the current host: one leading slash, never "//host" or "/\host"
// (which browsers read as another host).
func samePlace(p string) string {
	return "/" + strings.TrimLeft(p, "/\\")
}

func query(raw string) string {
	if raw == "" {
		return ""
	}
	return "?" + raw
}

// originWide are response headers that act on the whole origin that serves them: path-based, that origin is
// Sandlot's own, so an app's must not reach the browser.
var originWide = []string{"Set-Cookie", "Set-Cookie2", "Clear-Site-Data", "Strict-Transport-Security",
	"Service-Worker-Allowed", "Access-Control-Allow-Origin", "Access-Control-Allow-Credentials",
	"Access-Control-Allow-Methods", "Access-Control-Allow-Headers", "Access-Control-Expose-Headers",
	"Origin-Agent-Cluster", "Permissions-Policy"}

// reverseProxy forwards to ip:port of the target.
func (p *Proxy) reverseProxy(t Target, ip string) *httputil.ReverseProxy {
	addr := net.JoinHostPort(ip, strconv.Itoa(t.Port))
	return &httputil.ReverseProxy{
		Transport:     p.transport,
		FlushInterval: -1, // stream: server-sent events and long polls must not wait for a buffer to fill
		Rewrite: func(pr *httputil.ProxyRequest) {
			if t.Prefix != "" {
				pr.Out.URL.Path = "/" + strings.TrimPrefix(strings.TrimPrefix(pr.In.URL.Path, t.Prefix), "/")
				pr.Out.URL.RawPath = ""
				pr.Out.Header.Set("X-Forwarded-Prefix", t.Prefix)
			}
			pr.SetURL(&url.URL{Scheme: "http", Host: addr})
			pr.SetXForwarded()
			pr.Out.Host = pr.In.Host
			p.stripSandlot(pr.Out)
		},
		ModifyResponse: func(resp *http.Response) error {
			if t.Prefix != "" {
				// Path-based, the app shares Sandlot's origin: an opaque origin keeps its scripts away from
				// Sandlot's cookies and API, and nothing it answers may act on the whole origin. Host-based URLs
				// have an origin of their own and need none of this.
				for _, h := range originWide {
					resp.Header.Del(h)
				}
				resp.Header.Add("Content-Security-Policy", "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads")
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the browser left
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				w.Header().Set("Refresh", "2")
				Page(w, http.StatusBadGateway, "Nothing listens on "+t.String()+" yet",
					"Start a server on port "+strconv.Itoa(t.Port)+" of "+t.Node+
						" (for example python3 -m http.server "+strconv.Itoa(t.Port)+"); this page tries again every 2 s.")
				return
			}
			Page(w, http.StatusBadGateway, t.String()+" did not answer", err.Error())
		},
	}
}

// stripSandlot removes what is Sandlot's from a request before it goes to a lab: its cookies, the lab token
// parameter, and an Authorization that holds a Sandlot token.
func (p *Proxy) stripSandlot(r *http.Request) {
	cookies := r.Cookies()
	r.Header.Del("Cookie")
	for _, c := range cookies {
		if !strings.HasPrefix(c.Name, "sandlot_") {
			r.AddCookie(c)
		}
	}
	if q := r.URL.Query(); q.Has(tokenParam) {
		q.Del(tokenParam)
		r.URL.RawQuery = q.Encode()
	}
	if b := bearer(r); b != "" {
		if _, err := p.sessions.Authorize(b); err == nil {
			r.Header.Del("Authorization")
		}
	}
}

// newTransport is the proxy's way to nodes: never through an HTTP proxy from the environment, quick to say that
// nothing listens, and keeping connections to nodes for reuse.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// LinkURLs are the two addresses of a lab link carrying token, for a client that reached Sandlot at r's host:
// host-based (on the lab domain) and path-based (on Sandlot's own origin).
func (p *Proxy) LinkURLs(r *http.Request, g session.Grant, token string, secure bool) (hostURL, pathURL string) {
	scheme := "http"
	if r.TLS != nil || secure {
		scheme = "https"
	}
	port := ""
	if _, pt, err := net.SplitHostPort(r.Host); err == nil {
		port = ":" + pt
	}
	q := "/?" + tokenParam + "=" + url.QueryEscape(token)
	hostURL = fmt.Sprintf("%s://%s-%d-%s.%s%s%s", scheme, g.Node, g.Port, g.Session, p.cfg.Domain, port, q)
	pathURL = fmt.Sprintf("%s://%s/lab/%s/%s/%d%s", scheme, r.Host, g.Session, g.Node, g.Port, q)
	return hostURL, pathURL
}

// Page answers with a small page that explains.
func Page(w http.ResponseWriter, status int, title, text string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<!doctype html><meta charset="utf-8"><title>%s</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:12vh auto;padding:0 1em;color:#1f2328}
h1{font-size:22px}small{color:#59636e}</style>
<h1>%s</h1><p>%s</p><p><small>Sandlot lab proxy · %d %s</small></p>
`, html.EscapeString(title), html.EscapeString(title), html.EscapeString(text), status, http.StatusText(status))
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}
