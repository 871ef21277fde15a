// Package api is Sandlot's HTTP API (v1): the routes of routes.go, described by openapi.json, over the session
// service, the lab proxy and the web page. It talks to the service only through its exported methods: tokens are
// checked once, by the route's permission (session.Grant); bodies are decoded and errors encoded in one place
// (json.go); hostile clients are bounded here (limits.go, guard.go).
package api

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sandlot/sandlot/frontend"
	"github.com/sandlot/sandlot/instance"
	"github.com/sandlot/sandlot/quota"
	"github.com/sandlot/sandlot/session"
	"github.com/sandlot/sandlot/session/labproxy"
	"github.com/sandlot/sandlot/session/pwdcompat"
	"github.com/sandlot/sandlot/session/workshop"
	"github.com/sandlot/sandlot/stackfetch"
	"github.com/sandlot/sandlot/terminal"
)

// Config tunes the HTTP API. Zero values mean the defaults.
type Config struct {
	TrustedProxies []netip.Prefix // X-Forwarded-For is believed only from these
	SecureCookies  bool           // set the Secure flag on session cookies (behind TLS)
	// Origins (scheme://host[:port]) that may, besides Sandlot's own, open terminals and send state-changing
	// requests from a browser; none: same host only.
	Origins       []string
	MaxUpload     int64 // bytes of files one request may send (upload or save); default DefaultMaxUpload
	MaxExecOutput int   // bytes of each of an exec's streams kept; default DefaultMaxExecOutput
	// SocketsPerClient and UploadsPerClient bound what one client address holds at once; defaults 200 and 4.
	SocketsPerClient int
	UploadsPerClient int
	Images           ImageCache // nil: no image cache of its own
	MaxImport        int64      // bytes of a `docker save` archive an import takes; default DefaultMaxImport
	// Stacks is the policy of "Try in Sandlot" fetches (package stackfetch); StacksPerClient is how many one
	// client address may fetch an hour (one at a time), default 30.
	Stacks          stackfetch.Config
	StacksPerClient int
	// PWDCompat serves Play-with-Docker's API and terminal WebSocket beside Sandlot's (session/pwdcompat).
	PWDCompat bool
}

// DefaultMaxExecOutput is how much of each stream of an exec is answered: with base64 (at most 4/3 of it) both
// streams stay within 2 MiB.
const DefaultMaxExecOutput = 768 << 10

func (c Config) withDefaults() Config {
	if c.MaxUpload <= 0 {
		c.MaxUpload = DefaultMaxUpload
	}
	if c.MaxExecOutput <= 0 {
		c.MaxExecOutput = DefaultMaxExecOutput
	}
	if c.SocketsPerClient <= 0 {
		c.SocketsPerClient = 200
	}
	if c.UploadsPerClient <= 0 {
		c.UploadsPerClient = 4
	}
	if c.StacksPerClient <= 0 {
		c.StacksPerClient = 30
	}
	return c
}

type api struct {
	svc      *session.Service
	ws       *workshop.Service
	proxy    *labproxy.Proxy
	cfg      Config
	upgrader *websocket.Upgrader
	site     *frontend.Site
	origins  map[string]bool
	sockets  *perClient // WebSockets open, by client address
	uploads  *perClient // uploads being read, by client address
	stacks   *stackfetch.Fetcher
	fetches  *fetchLimit // stacks fetched, by client address
	log      *slog.Logger
}

// NewHandler returns the HTTP API over svc and its workshops ws, with the lab proxy in front (host-based lab URLs)
// and among the routes (path-based).
func NewHandler(svc *session.Service, ws *workshop.Service, proxy *labproxy.Proxy, cfg Config, log *slog.Logger) http.Handler {
	a := newAPI(svc, proxy, cfg, log)
	a.ws = ws
	mux := http.NewServeMux()
	patterns := map[string]bool{}
	for _, r := range a.routes() {
		mux.Handle(r.method+" "+r.pattern, a.guard(r.handler))
		patterns[r.pattern] = true
	}
	if cfg.PWDCompat {
		// PWD's surface is not API v1 (openapi.json does not list it): docs/pwd-compat.md is its contract.
		for _, r := range a.pwdRoutes() {
			mux.Handle(r.Method+" "+r.Pattern, a.guard(r.Handler))
			patterns[r.Pattern] = true
		}
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
	return proxy.Wrap(a.cors(mux))
}

func newAPI(svc *session.Service, proxy *labproxy.Proxy, cfg Config, log *slog.Logger) *api {
	cfg = cfg.withDefaults()
	a := &api{svc: svc, proxy: proxy, cfg: cfg, upgrader: terminal.NewUpgrader(cfg.Origins), site: frontend.Load(),
		origins: map[string]bool{}, sockets: newPerClient(cfg.SocketsPerClient),
		uploads: newPerClient(cfg.UploadsPerClient), log: log,
		stacks: stackfetch.New(cfg.Stacks), fetches: newFetchLimit(cfg.StacksPerClient, time.Hour)}
	for _, o := range cfg.Origins {
		a.origins[o] = true
	}
	return a
}

func (a *api) pwdRoutes() []pwdcompat.Route {
	return pwdcompat.Routes(a.svc, pwdcompat.Config{Origins: a.cfg.Origins, Key: a.svc.Subkey("pwd session ids"),
		ClientIP: a.clientIP, MaxUpload: a.cfg.MaxUpload, MaxExecOutput: a.cfg.MaxExecOutput,
		Sockets: a.sockets.acquire, Log: a.log})
}

// sessionView is a session as the API shows it: with what its holder may still use.
type sessionView struct {
	session.Session
	Token    string         `json:"token,omitempty"`
	Limits   limits         `json:"limits"`
	Workshop *workshop.Info `json:"workshop,omitempty"` // for an attendee's session: the page shows its title, broadcasts and end
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
func (a *api) view(ctx context.Context, s session.Session, token string, usage ...quota.Usage) sessionView {
	v := sessionView{Session: s, Token: token}
	v.Limits = limits{MaxInstances: s.MaxInstances, Instances: len(s.Instances), MaxExpiresAt: s.MaxExpiresAt,
		Node: a.svc.NodeLimits()}
	u, err := quota.Usage{}, error(nil)
	if len(usage) > 0 {
		u = usage[0]
	} else {
		u, err = a.svc.Usage(ctx, s)
	}
	if err == nil {
		v.Limits.ClientSessions, v.Limits.MaxClientSessions = u.ClientSessions, u.MaxSessions
		v.Limits.CapacityFree = max(u.Capacity-u.Running, 0)
	}
	if s.Workshop != "" && a.ws != nil {
		if info, err := a.ws.Info(ctx, s.Workshop); err == nil {
			v.Workshop = &info
		}
	}
	v.Limits.RemainingInstances = max(s.MaxInstances-len(s.Instances), 0)
	if s.State == session.StateEnded {
		v.Limits.RemainingInstances = 0
	}
	return v
}

// page is the web page (package frontend): the landing page at / (which, given ?stack=, tries that stack, like
// /try?stack=), a session's page at /s/{id}.
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
		if err := a.svc.Ready(ctx); err != nil {
			failWith(w, http.StatusServiceUnavailable, "not_ready", err.Error())
			return
		}
		respond(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

func (a *api) metricsHandler() http.Handler {
	var once sync.Once
	var h http.Handler
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { h = promhttp.HandlerFor(a.svc.Metrics().Registry, promhttp.HandlerOpts{}) })
		h.ServeHTTP(w, r)
	})
}
