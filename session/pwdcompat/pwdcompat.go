// Package pwdcompat serves Play-with-Docker's HTTP API and terminal WebSocket over Sandlot's sessions, so that
// pages built on PWD's JavaScript SDK and scripts written for PWD's API work unchanged when pointed at a Sandlot
// (docs/pwd-compat.md is the contract, docs/decisions/0023-pwd-compat.md the policy). It talks to sessions only
// through session.Service's exported methods.
//
// PWD sessions have no token. The id a PWD client holds is the capability instead: the Sandlot session's id
// followed by a MAC of it under a key derived from Sandlot's signing key, so that the session's id alone (shown in
// a Sandlot page's URL, a viewer link, the logs) grants nothing here. Browsers may use it only from Sandlot's own
// pages and --public-origins (reads and WebSocket included); requests without an Origin (scripts) on the id alone.
package pwdcompat

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sandlot/sandlot/session"
)

// Config is what the compatibility layer needs of its host. Zero values mean the defaults.
type Config struct {
	Origins       []string                   // listed origins (--public-origins): their pages may use these routes
	Key           []byte                     // the key of the ids' MACs (required: session.Tokens.Subkey)
	ClientIP      func(*http.Request) string // the client's address, for quotas; default: the peer
	MaxUpload     int64                      // bytes of files one upload may carry; default 32 MiB
	MaxExecOutput int                        // bytes of an exec's streams kept (PWD answers only the exit code)
	// Sockets takes one WebSocket of a client (release gives it back), or says it holds too many; nil: no bound.
	Sockets func(client string) (release func(), ok bool)
	Log     *slog.Logger
}

// Route is one route of PWD's surface.
type Route struct {
	Method, Pattern string
	Handler         http.Handler
}

type compat struct {
	svc     *session.Service
	cfg     Config
	origins map[string]bool
	log     *slog.Logger
}

// Routes returns PWD's routes over svc (see docs/pwd-compat.md). The caller mounts them; each one checks the
// request's origin and the id's MAC itself.
func Routes(svc *session.Service, cfg Config) []Route {
	if cfg.ClientIP == nil {
		cfg.ClientIP = func(r *http.Request) string { return r.RemoteAddr }
	}
	if cfg.MaxUpload <= 0 {
		cfg.MaxUpload = 32 << 20
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	p := &compat{svc: svc, cfg: cfg, origins: map[string]bool{}, log: cfg.Log}
	for _, o := range cfg.Origins {
		p.origins[o] = true
	}
	return []Route{
		{"POST", "/{$}", p.fromPage(p.newSession())},
		{"GET", "/sessions/{sid}", p.onSession(p.getSession())},
		{"DELETE", "/sessions/{sid}", p.onSession(p.closeSession())},
		{"POST", "/sessions/{sid}/setup", p.onSession(p.setup())},
		{"POST", "/sessions/{sid}/instances", p.onSession(p.newInstance())},
		{"DELETE", "/sessions/{sid}/instances/{name}", p.onSession(p.deleteInstance())},
		{"POST", "/sessions/{sid}/instances/{name}/exec", p.onSession(p.exec())},
		{"POST", "/sessions/{sid}/instances/{name}/uploads", p.onSession(p.upload())},
		{"GET", "/sessions/{sid}/ws/{$}", p.onSession(p.terminals())},
	}
}

// idLen is the length of a Sandlot session id (session.NewID), and so of the MAC that follows it in a PWD id.
const idLen = 26

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

func (p *compat) mac(id string) string {
	m := hmac.New(sha256.New, p.cfg.Key)
	m.Write([]byte("pwd-session:" + id))
	return strings.ToLower(b32.EncodeToString(m.Sum(nil)[:16]))
}

// pwdID is the id a PWD client is given for session id: the capability to act on it.
func (p *compat) pwdID(id string) string { return id + p.mac(id) }

// sessionID is the Sandlot session a PWD id names, if its MAC is right.
func (p *compat) sessionID(pwd string) (string, bool) {
	if len(pwd) != 2*idLen {
		return "", false
	}
	id := pwd[:idLen]
	return id, hmac.Equal([]byte(pwd[idLen:]), []byte(p.mac(id)))
}

// originAllowed says whether the request's Origin, if any, is Sandlot's own host or listed.
func (p *compat) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || p.origins[origin] {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && strings.EqualFold(u.Host, r.Host)
}

// listedOrigin is the request's Origin when it is listed: the origin whose quota an anonymous session counts on.
func (p *compat) listedOrigin(r *http.Request) string {
	if o := r.Header.Get("Origin"); p.origins[o] {
		return o
	}
	return ""
}

// fromPage refuses browser requests from origins that are neither Sandlot's nor listed.
func (p *compat) fromPage(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.originAllowed(r) {
			failWith(w, http.StatusForbidden, "bad_origin",
				"Play-with-Docker routes are served to Sandlot's own pages and --public-origins only")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// onSession is fromPage for a session's routes: the PWD id in the path must carry its MAC; the Sandlot session's
// id goes on as the path value "id". A wrong MAC is answered like an unknown session.
func (p *compat) onSession(next http.Handler) http.Handler {
	return p.fromPage(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := p.sessionID(r.PathValue("sid"))
		if !ok {
			failWith(w, http.StatusNotFound, "not_found", "no such session")
			return
		}
		r.SetPathValue("id", id)
		next.ServeHTTP(w, r)
	}))
}

// pwdSession is a session as PWD's GET /sessions/{id} shows it.
type pwdSession struct {
	ID           string                  `json:"id"`
	CreatedAt    time.Time               `json:"created_at"`
	ExpiresAt    time.Time               `json:"expires_at"`
	PwdIPAddress string                  `json:"pwd_ip_address"`
	Ready        bool                    `json:"ready"`
	Stack        string                  `json:"stack"`
	StackName    string                  `json:"stack_name"`
	ImageName    string                  `json:"image_name"`
	Host         string                  `json:"host"`
	UserID       string                  `json:"user_id"`
	PlaygroundID string                  `json:"playground_id"`
	Instances    map[string]*pwdInstance `json:"instances"`
}

// pwdInstance is a node as PWD shows an instance. Its name is the node's (node1, ...): PWD clients only hand it
// back.
type pwdInstance struct {
	Name        string `json:"name"`
	Image       string `json:"image"`
	Hostname    string `json:"hostname"`
	IP          string `json:"ip"`
	RoutableIP  string `json:"routable_ip"`
	SessionID   string `json:"session_id"`
	ProxyHost   string `json:"proxy_host"`
	SessionHost string `json:"session_host"`
	Type        string `json:"type"`
	TLS         bool   `json:"tls"`
}

func (p *compat) instance(r *http.Request, in session.Instance) *pwdInstance {
	id := r.PathValue("id")
	return &pwdInstance{Name: in.Name, Image: "sandlot/node", Hostname: in.Hostname, IP: in.IP, RoutableIP: in.IP,
		SessionID: p.pwdID(id), ProxyHost: in.Name + "-" + id, SessionHost: r.Host, Type: "linux"}
}
