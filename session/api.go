package session

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sandlot/sandlot/frontend"
	"github.com/sandlot/sandlot/instance"
	"github.com/sandlot/sandlot/quota"
	"github.com/sandlot/sandlot/terminal"
)

// APIConfig tunes the HTTP API.
type APIConfig struct {
	TrustedProxies []netip.Prefix // X-Forwarded-For is believed only from these
	SecureCookies  bool           // set the Secure flag on session cookies (behind TLS)
	NodeLimits     instance.Limits
	Origins        []string // origins (scheme://host[:port]) allowed to open terminals; none: same host only
	LabDomain      string   // lab links are <node>-<port>-<session>.<LabDomain>; default "localhost"
	MaxUpload      int64    // bytes of files one request may send (upload or save); default DefaultMaxUpload
}

type api struct {
	upgrader *websocket.Upgrader
	svc      *Service
	tokens   *Tokens
	cfg      APIConfig
	ready    func(context.Context) error
	metrics  *Metrics
	log      *slog.Logger
	site     *frontend.Site

	labTransport *http.Transport
	labMu        sync.Mutex
	labAddrs     map[string]labAddress // by "session/node", see labAddress
}

// NewHandler returns the HTTP API of sessions. ready says whether the server's dependencies answer.
func NewHandler(svc *Service, tokens *Tokens, cfg APIConfig, ready func(context.Context) error, metrics *Metrics,
	log *slog.Logger) http.Handler {
	if cfg.LabDomain == "" {
		cfg.LabDomain = "localhost"
	}
	if cfg.MaxUpload <= 0 {
		cfg.MaxUpload = DefaultMaxUpload
	}
	a := &api{svc: svc, tokens: tokens, cfg: cfg, ready: ready, metrics: metrics, log: log,
		upgrader: terminal.NewUpgrader(cfg.Origins), site: frontend.Load(), labTransport: newLabTransport(),
		labAddrs: map[string]labAddress{}}
	mux := http.NewServeMux()
	patterns := map[string]bool{}
	for _, r := range a.routes() {
		mux.Handle(r.method+" "+r.pattern, r.handler)
		patterns[r.pattern] = true
	}
	// Any other method on a known path: a JSON 405 rather than the mux's plain text.
	for p := range patterns {
		mux.Handle(p, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			failWith(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed on "+r.URL.Path)
		}))
	}
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		failWith(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
	}))
	// A host-based lab URL (<node>-<port>-<session>.<lab domain>) is the lab proxy's, whatever its path.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t, ok := a.hostTarget(r.Host); ok {
			a.proxy(t).ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// sessionView is a session as the API shows it: with what its holder may still use.
type sessionView struct {
	Session
	Token  string `json:"token,omitempty"`
	Limits limits `json:"limits"`
}

type limits struct {
	MaxInstances       int             `json:"max_instances"`
	Instances          int             `json:"instances"`
	RemainingInstances int             `json:"remaining_instances"`
	MaxExpiresAt       time.Time       `json:"max_expires_at"`
	Node               instance.Limits `json:"node"`
	ClientSessions     int             `json:"client_sessions"`
	MaxClientSessions  int             `json:"max_client_sessions"`
	CapacityFree       int             `json:"capacity_free"`
}

// view shows a session with its limits; usage is read from quota unless the caller has it already.
func (a *api) view(ctx context.Context, s Session, token string, usage ...quota.Usage) sessionView {
	v := sessionView{Session: s, Token: token}
	v.Limits = limits{MaxInstances: s.MaxInstances, Instances: len(s.Instances), MaxExpiresAt: s.MaxExpiresAt,
		Node: a.cfg.NodeLimits}
	u, err := quota.Usage{}, error(nil)
	if len(usage) > 0 {
		u = usage[0]
	} else {
		u, err = a.svc.quota.Usage(ctx, s.Client, s.ID)
	}
	if err == nil {
		v.Limits.ClientSessions, v.Limits.MaxClientSessions = u.ClientSessions, u.MaxSessions
		v.Limits.CapacityFree = max(u.Capacity-u.Running, 0)
	}
	v.Limits.RemainingInstances = max(s.MaxInstances-len(s.Instances), 0)
	if s.State == StateEnded {
		v.Limits.RemainingInstances = 0
	}
	return v
}

type createSessionRequest struct {
	Template string `json:"template"`
	Duration string `json:"duration"`
}

func (a *api) createSession() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req createSessionRequest
		if err := decode(w, r, &req); err != nil {
			fail(w, a.log, err)
			return
		}
		cr := CreateRequest{Template: req.Template, Client: a.clientIP(r)}
		if req.Duration != "" {
			d, err := time.ParseDuration(req.Duration)
			if err != nil {
				fail(w, a.log, fmt.Errorf("%w: duration %q (like \"30m\" or \"2h\")", ErrInvalid, req.Duration))
				return
			}
			cr.Duration = d
		}
		if token := bearer(r); token != "" {
			switch {
			case a.tokens.IsAdmin(token):
				cr.Client = "admin"
			default:
				claims, err := a.tokens.VerifyLaunch(token)
				if err != nil {
					failWith(w, http.StatusUnauthorized, "bad_token", "the launch token is not valid: "+err.Error())
					return
				}
				cr.Launch = claims
			}
		}
		created, err := a.svc.Create(r.Context(), cr)
		if err != nil {
			fail(w, a.log, err)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: cookieName(created.Session.ID), Value: created.Token, Path: "/",
			HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: a.cfg.SecureCookies,
			Expires: created.Session.MaxExpiresAt})
		respond(w, http.StatusCreated, a.view(r.Context(), created.Session, created.Token, created.Usage))
	})
}

func (a *api) listSessions() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ids, err := a.svc.store.Live(r.Context())
		if err != nil {
			fail(w, a.log, err)
			return
		}
		out := []Session{}
		for _, id := range ids {
			if s, err := a.svc.store.Get(r.Context(), id); err == nil {
				out = append(out, s)
			}
		}
		respond(w, http.StatusOK, map[string]any{"sessions": out})
	})
}

func (a *api) getSession() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := a.svc.Get(r.Context(), r.PathValue("id"))
		if err != nil {
			fail(w, a.log, err)
			return
		}
		respond(w, http.StatusOK, a.view(r.Context(), s, ""))
	})
}

func (a *api) deleteSession() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		reason := EndDeleted
		if isAdmin(r.Context()) {
			reason = EndAdmin
		}
		if _, err := a.svc.End(r.Context(), id, reason, ""); err != nil {
			fail(w, a.log, err)
			return
		}
		s, err := a.svc.Get(r.Context(), id)
		if err != nil {
			fail(w, a.log, err)
			return
		}
		respond(w, http.StatusOK, a.view(r.Context(), s, ""))
	})
}

type extendRequest struct {
	Duration string `json:"duration"`
}

func (a *api) extendSession() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req extendRequest
		if err := decode(w, r, &req); err != nil {
			fail(w, a.log, err)
			return
		}
		d, err := time.ParseDuration(req.Duration)
		if err != nil {
			fail(w, a.log, fmt.Errorf("%w: duration %q (like \"30m\")", ErrInvalid, req.Duration))
			return
		}
		s, err := a.svc.Extend(r.Context(), r.PathValue("id"), d)
		if err != nil {
			fail(w, a.log, err)
			return
		}
		respond(w, http.StatusOK, a.view(r.Context(), s, ""))
	})
}

type setupRequest struct {
	Template string `json:"template"`
}

func (a *api) setupSession() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req setupRequest
		if err := decode(w, r, &req); err != nil {
			fail(w, a.log, err)
			return
		}
		if req.Template == "" {
			fail(w, a.log, fmt.Errorf("%w: template is required", ErrInvalid))
			return
		}
		s, err := a.svc.Setup(r.Context(), r.PathValue("id"), req.Template)
		if err != nil {
			fail(w, a.log, err)
			return
		}
		respond(w, http.StatusOK, a.view(r.Context(), s, ""))
	})
}

type addInstanceRequest struct {
	Hostname string `json:"hostname"`
}

func (a *api) addInstance() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req addInstanceRequest
		if err := decode(w, r, &req); err != nil {
			fail(w, a.log, err)
			return
		}
		in, err := a.svc.AddInstance(r.Context(), r.PathValue("id"), req.Hostname)
		if err != nil {
			fail(w, a.log, err)
			return
		}
		respond(w, http.StatusCreated, in)
	})
}

func (a *api) removeInstance() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.svc.RemoveInstance(r.Context(), r.PathValue("id"), r.PathValue("name")); err != nil {
			fail(w, a.log, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func (a *api) instanceAction(action string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in, err := a.svc.InstanceAction(r.Context(), r.PathValue("id"), r.PathValue("name"), action)
		if err != nil {
			fail(w, a.log, err)
			return
		}
		respond(w, http.StatusOK, in)
	})
}

type execRequest struct {
	Cmd []string `json:"cmd"`
}

type execResponse struct {
	ExitCode  int    `json:"exit_code"`
	Stdout    string `json:"stdout"`
	Stderr    string `json:"stderr"`
	Truncated bool   `json:"truncated"`
}

func (a *api) exec() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req execRequest
		if err := decode(w, r, &req); err != nil {
			fail(w, a.log, err)
			return
		}
		if err := checkCmd(req.Cmd); err != nil {
			fail(w, a.log, err)
			return
		}
		res, err := a.svc.Exec(r.Context(), r.PathValue("id"), r.PathValue("name"), req.Cmd)
		if err != nil {
			fail(w, a.log, err)
			return
		}
		respond(w, http.StatusOK, execResponse{ExitCode: res.ExitCode, Stdout: string(res.Stdout),
			Stderr: string(res.Stderr), Truncated: res.Truncated})
	})
}

// checkCmd accepts 1 to 256 arguments, none with a NUL byte.
func checkCmd(cmd []string) error {
	if len(cmd) == 0 || len(cmd) > 256 {
		return fmt.Errorf("%w: cmd needs 1 to 256 arguments, like [\"sh\", \"-c\", \"docker ps\"]", ErrInvalid)
	}
	for _, arg := range cmd {
		if strings.ContainsRune(arg, 0) {
			return fmt.Errorf("%w: cmd arguments may not contain NUL bytes", ErrInvalid)
		}
	}
	return nil
}

// terminal upgrades to the WebSocket terminal protocol (terminal/PROTOCOL.md) on terminal ?t= (default 1) of a node.
func (a *api) terminal() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tid := 1
		if t := r.URL.Query().Get("t"); t != "" {
			n, err := strconv.Atoi(t)
			if err != nil {
				fail(w, a.log, fmt.Errorf("%w: terminal %q is not a number", ErrInvalid, t))
				return
			}
			tid = n
		}
		term, err := a.svc.Terminal(r.Context(), r.PathValue("id"), r.PathValue("name"), tid)
		if err != nil {
			fail(w, a.log, err)
			return
		}
		ws, err := a.upgrader.Upgrade(w, r, nil)
		if err != nil {
			return // the upgrader has answered
		}
		terminal.Serve(ws, term, readOnly(r.Context()))
	})
}

type viewerLink struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// viewerLink issues a read-only token for the session's terminals, valid as long as the session may live.
func (a *api) viewerLink() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := a.svc.live(r.Context(), r.PathValue("id"))
		if err != nil {
			fail(w, a.log, err)
			return
		}
		token, err := a.tokens.Issue(s.ID, "viewer", s.MaxExpiresAt)
		if err != nil {
			fail(w, a.log, err)
			return
		}
		respond(w, http.StatusCreated, viewerLink{Token: token, ExpiresAt: s.MaxExpiresAt})
	})
}

func (a *api) listTemplates() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		respond(w, http.StatusOK, map[string]any{"templates": a.svc.templates.List()})
	})
}

//go:embed openapi.json
var openAPIDoc []byte

func (a *api) openAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPIDoc)
	})
}

// page is the web page (package frontend): the landing page at /, a session's page at /s/{id}.
func (a *api) page() http.Handler { return a.site.Page() }

// assets are the page's scripts and stylesheets, and sandlot-terminal.js for pages that embed a terminal.
func (a *api) assets() http.Handler { return a.site.Assets() }

func (a *api) healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		respond(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

func (a *api) readyz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := a.ready(ctx); err != nil {
			failWith(w, http.StatusServiceUnavailable, "not_ready", err.Error())
			return
		}
		respond(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

func (a *api) metricsHandler() http.Handler {
	return promhttp.HandlerFor(a.metrics.Registry, promhttp.HandlerOpts{})
}

// session lets a request through only with the token of the session in its path (from the Authorization header,
// or the cookie the web page got), or the admin token. The id alone grants nothing.
func (a *api) session(next http.Handler) http.Handler { return a.sessionAuth(next, false) }

// sessionOrLink is session for WebSocket routes, which browsers cannot give headers: the token may also come as
// ?token= (a viewer link carries a viewer token so).
func (a *api) sessionOrLink(next http.Handler) http.Handler { return a.sessionAuth(next, true) }

func (a *api) sessionAuth(next http.Handler, queryToken bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		token := bearer(r)
		if token == "" && queryToken {
			token = r.URL.Query().Get("token")
		}
		if token == "" {
			if c, err := r.Cookie(cookieName(id)); err == nil {
				token = c.Value
			}
		}
		if token == "" {
			failWith(w, http.StatusUnauthorized, "no_token", "this call needs the session's token (Authorization: Bearer <token>)")
			return
		}
		if a.tokens.IsAdmin(token) {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), adminKey{}, true)))
			return
		}
		claims, err := a.tokens.Verify(token)
		if err != nil {
			failWith(w, http.StatusUnauthorized, "bad_token", "the token is not valid: "+err.Error())
			return
		}
		if claims.Session != id {
			failWith(w, http.StatusForbidden, "wrong_session", "the token is for another session")
			return
		}
		if claims.Scope != "session" && r.Method != http.MethodGet {
			failWith(w, http.StatusForbidden, "read_only", "a viewer token may only read")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), scopeKey{}, claims.Scope)))
	})
}

// admin lets a request through only with the admin token.
func (a *api) admin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := bearer(r)
		if token == "" {
			failWith(w, http.StatusUnauthorized, "no_token", "this call needs the admin token")
			return
		}
		if !a.tokens.IsAdmin(token) {
			failWith(w, http.StatusForbidden, "not_admin", "this call needs the admin token")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), adminKey{}, true)))
	})
}

type adminKey struct{}

type scopeKey struct{}

// readOnly reports whether the request holds only a viewer token.
func readOnly(ctx context.Context) bool { v, _ := ctx.Value(scopeKey{}).(string); return v == "viewer" }

func isAdmin(ctx context.Context) bool { v, _ := ctx.Value(adminKey{}).(bool); return v }

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func cookieName(id string) string { return "sandlot_" + id }

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
