package session

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The lab proxy: HTTP and WebSocket traffic from the browser to any port of any node of a session, at
//
//	http://<node>-<port>-<session>.<lab domain>[:port]/...   (host-based: the app gets the whole origin)
//	http://<sandlot>/lab/<session>/<node>/<port>/...          (path-based fallback, served sandboxed)
//
// Access needs the session's token (its cookie, or Bearer) or a lab link's token: ?sandlot_token=... is exchanged
// once for a cookie of that origin (or path) and the URL is reloaded without it. Nothing of Sandlot's (its
// cookies, the token) reaches the app. Bodies stream both ways; the original Host is passed on, with
// X-Forwarded-Host, -Proto, -For and, path-based, X-Forwarded-Prefix.

const (
	labCookie     = "sandlot_lab"
	labTokenParam = "sandlot_token"
)

var labHostRE = regexp.MustCompile(`^(node[0-9]{1,4})-([0-9]{1,5})-([a-z0-9]{8,64})$`)

// labTarget is a port of a node of a session, and the path prefix it is served under (path-based only).
type labTarget struct {
	session, node string
	port          int
	prefix        string
}

func (t labTarget) String() string { return fmt.Sprintf("%s:%d", t.node, t.port) }

// hostTarget reads a host-based lab URL's host: "<node>-<port>-<session>.<domain>", any port.
func (a *api) hostTarget(host string) (labTarget, bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	label, ok := strings.CutSuffix(strings.ToLower(host), "."+a.cfg.LabDomain)
	if !ok || a.cfg.LabDomain == "" {
		return labTarget{}, false
	}
	m := labHostRE.FindStringSubmatch(label)
	if m == nil {
		return labTarget{}, false
	}
	port, err := strconv.Atoi(m[2])
	if err != nil || port < 1 || port > 65535 {
		return labTarget{}, false
	}
	return labTarget{node: m[1], port: port, session: m[3]}, true
}

// labPath serves the path-based form, /lab/{id}/{name}/{port}/...
func (a *api) labPath() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		port, err := strconv.Atoi(r.PathValue("port"))
		if err != nil || port < 1 || port > 65535 {
			labPage(w, http.StatusNotFound, "No such port", "Ports are numbers from 1 to 65535.")
			return
		}
		t := labTarget{session: r.PathValue("id"), node: r.PathValue("name"), port: port}
		t.prefix = "/lab/" + t.session + "/" + t.node + "/" + strconv.Itoa(port)
		if r.URL.Path == t.prefix { // relative links need the slash
			u := *r.URL
			u.Path += "/"
			http.Redirect(w, r, u.String(), http.StatusMovedPermanently)
			return
		}
		a.proxy(t).ServeHTTP(w, r)
	})
}

// proxy lets an authorized request through to the target.
func (a *api) proxy(t labTarget) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token := r.URL.Query().Get(labTokenParam); token != "" {
			a.exchangeLabToken(w, r, t, token)
			return
		}
		if status, why := a.labAuthorized(r, t); status != 0 {
			labPage(w, status, "You cannot open "+t.String()+" of this session", why)
			return
		}
		ip, err := a.labAddress(r.Context(), t)
		switch {
		case errors.Is(err, ErrEnded):
			labPage(w, http.StatusGone, "This session has ended", "Its nodes and what ran on them are gone.")
			return
		case errors.Is(err, ErrNotFound):
			labPage(w, http.StatusNotFound, "No such node", "This session has no node "+t.node+".")
			return
		case err != nil:
			a.log.Error("lab proxy: find the node", "session", t.session, "node", t.node, "err", err)
			labPage(w, http.StatusServiceUnavailable, "Sandlot cannot look up this node now", "Try again in a moment.")
			return
		}
		a.labProxy(t, ip).ServeHTTP(w, r)
	})
}

// labAddressTTL is how long a node's address is remembered by the proxy: a page's burst of requests asks Redis
// once, and a node that went away is noticed within this time (its address stops answering at once anyway).
const labAddressTTL = time.Second

type labAddress struct {
	ip   string
	when time.Time
}

// labAddress is the address of a live session's node, from a short-lived cache or the store.
func (a *api) labAddress(ctx context.Context, t labTarget) (string, error) {
	key := t.session + "/" + t.node
	a.labMu.Lock()
	c, ok := a.labAddrs[key]
	a.labMu.Unlock()
	if ok && time.Since(c.when) < labAddressTTL {
		return c.ip, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	sess, err := a.svc.liveInstance(ctx, t.session, t.node)
	if err != nil {
		return "", err
	}
	var ip string
	for _, in := range sess.Instances {
		if in.Name == t.node {
			ip = in.IP
		}
	}
	a.labMu.Lock()
	if len(a.labAddrs) > 10_000 {
		clear(a.labAddrs) // a crude bound; entries are cheap to make again
	}
	a.labAddrs[key] = labAddress{ip: ip, when: time.Now()}
	a.labMu.Unlock()
	return ip, nil
}

// labAuthorized says why a request may not reach the target (status 0: it may).
func (a *api) labAuthorized(r *http.Request, t labTarget) (int, string) {
	var tokens []string
	if c, err := r.Cookie(labCookie); err == nil {
		tokens = append(tokens, c.Value)
	}
	if c, err := r.Cookie(cookieName(t.session)); err == nil {
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
		if _, why = a.labToken(token, t); why == "" {
			return 0, ""
		}
	}
	return http.StatusForbidden, why
}

// labToken says whether token opens the target: it must be the session's own token, a lab link for exactly this
// node and port, or the admin token. It returns until when it does (the admin token: 8 h), or why it does not.
func (a *api) labToken(token string, t labTarget) (expires time.Time, why string) {
	if a.tokens.IsAdmin(token) {
		return time.Now().Add(8 * time.Hour), ""
	}
	if c, err := a.tokens.Verify(token); err == nil {
		if c.Session != t.session {
			return time.Time{}, "This key is for another session."
		}
		return c.ExpiresAt.Time, ""
	}
	c, err := a.tokens.VerifyPort(token)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return time.Time{}, "This link has expired. Ask for a new one."
	case err != nil:
		return time.Time{}, "This link is not valid."
	case c.Session != t.session || c.Node != t.node || c.Port != t.port:
		return time.Time{}, "This link is for another port, node or session."
	}
	return c.ExpiresAt.Time, ""
}

// exchangeLabToken turns ?sandlot_token= into a cookie of the lab's origin (or path) and reloads without it, so
// the token stays out of the app's view, its logs and the address bar.
func (a *api) exchangeLabToken(w http.ResponseWriter, r *http.Request, t labTarget, token string) {
	expires, why := a.labToken(token, t)
	if why != "" {
		labPage(w, http.StatusForbidden, "You cannot open "+t.String()+" of this session", why)
		return
	}
	path := "/"
	if t.prefix != "" {
		path = t.prefix + "/"
	}
	http.SetCookie(w, &http.Cookie{Name: labCookie, Value: token, Path: path, Expires: expires, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: a.cfg.SecureCookies})
	u := *r.URL
	q := u.Query()
	q.Del(labTokenParam)
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
}

// labProxy forwards to ip:port of the target.
func (a *api) labProxy(t labTarget, ip string) *httputil.ReverseProxy {
	addr := net.JoinHostPort(ip, strconv.Itoa(t.port))
	return &httputil.ReverseProxy{
		Transport:     a.labTransport,
		FlushInterval: -1, // stream: server-sent events and long polls must not wait for a buffer to fill
		Rewrite: func(pr *httputil.ProxyRequest) {
			if t.prefix != "" {
				pr.Out.URL.Path = "/" + strings.TrimPrefix(strings.TrimPrefix(pr.In.URL.Path, t.prefix), "/")
				pr.Out.URL.RawPath = ""
				pr.Out.Header.Set("X-Forwarded-Prefix", t.prefix)
			}
			pr.SetURL(&url.URL{Scheme: "http", Host: addr})
			pr.SetXForwarded()
			pr.Out.Host = pr.In.Host
			stripSandlot(pr.Out, a.tokens)
		},
		ModifyResponse: func(resp *http.Response) error {
			if t.prefix != "" {
				// Path-based, the app shares Sandlot's origin: an opaque origin keeps its scripts away from
				// Sandlot's cookies and API. Host-based URLs have an origin of their own and need none of this.
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
				labPage(w, http.StatusBadGateway, "Nothing listens on "+t.String()+" yet",
					"Start a server on port "+strconv.Itoa(t.port)+" of "+t.node+
						" (for example python3 -m http.server "+strconv.Itoa(t.port)+"); this page tries again every 2 s.")
				return
			}
			labPage(w, http.StatusBadGateway, t.String()+" did not answer", err.Error())
		},
	}
}

// stripSandlot removes what is Sandlot's from a request before it goes to a lab: its cookies, the lab token
// parameter, and an Authorization that holds a Sandlot token.
func stripSandlot(r *http.Request, tokens *Tokens) {
	cookies := r.Cookies()
	r.Header.Del("Cookie")
	for _, c := range cookies {
		if !strings.HasPrefix(c.Name, "sandlot_") {
			r.AddCookie(c)
		}
	}
	if q := r.URL.Query(); q.Has(labTokenParam) {
		q.Del(labTokenParam)
		r.URL.RawQuery = q.Encode()
	}
	if b := bearer(r); b != "" {
		if _, err := tokens.Verify(b); err == nil || tokens.IsAdmin(b) {
			r.Header.Del("Authorization")
		}
	}
}

// newLabTransport is the proxy's way to nodes: never through an HTTP proxy from the environment, quick to say
// that nothing listens, and keeping connections to nodes for reuse.
func newLabTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// labPage answers with a small page that explains.
func labPage(w http.ResponseWriter, status int, title, text string) {
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

type linkRequest struct {
	Duration string `json:"duration"` // how long the link works; default: as long as the session may live
}

type labLink struct {
	URL       string    `json:"url"`      // host-based
	PathURL   string    `json:"path_url"` // path-based, on this server's own origin
	ExpiresAt time.Time `json:"expires_at"`
}

// portLink issues a link to a port of a node: for the learner's own browser, or, with a duration, to share.
func (a *api) portLink() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req linkRequest
		if err := decode(w, r, &req); err != nil {
			fail(w, a.log, err)
			return
		}
		port, err := strconv.Atoi(r.PathValue("port"))
		if err != nil || port < 1 || port > 65535 {
			fail(w, a.log, fmt.Errorf("%w: port %q (1 to 65535)", ErrInvalid, r.PathValue("port")))
			return
		}
		sess, err := a.svc.liveInstance(r.Context(), r.PathValue("id"), r.PathValue("name"))
		if err != nil {
			fail(w, a.log, err)
			return
		}
		expires := sess.MaxExpiresAt
		if req.Duration != "" {
			d, err := time.ParseDuration(req.Duration)
			if err != nil || d <= 0 {
				fail(w, a.log, fmt.Errorf("%w: duration %q (like \"1h\")", ErrInvalid, req.Duration))
				return
			}
			if until := time.Now().Add(d); until.Before(expires) {
				expires = until
			}
		}
		t := labTarget{session: sess.ID, node: r.PathValue("name"), port: port}
		token, err := a.tokens.IssuePort(t.session, t.node, t.port, expires)
		if err != nil {
			fail(w, a.log, err)
			return
		}
		scheme := "http"
		if r.TLS != nil || a.cfg.SecureCookies {
			scheme = "https"
		}
		port80 := ""
		if _, p, err := net.SplitHostPort(r.Host); err == nil {
			port80 = ":" + p
		}
		q := "/?" + labTokenParam + "=" + url.QueryEscape(token)
		respond(w, http.StatusCreated, labLink{
			URL:       fmt.Sprintf("%s://%s-%d-%s.%s%s%s", scheme, t.node, t.port, t.session, a.cfg.LabDomain, port80, q),
			PathURL:   fmt.Sprintf("%s://%s/lab/%s/%s/%d%s", scheme, r.Host, t.session, t.node, t.port, q),
			ExpiresAt: expires.UTC().Truncate(time.Second),
		})
	})
}
