package api

import (
	_ "embed"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/sandlot/sandlot/session"
)

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
		cr := session.CreateRequest{Template: req.Template, Client: a.clientIP(r), Origin: a.listedOrigin(r)}
		if req.Duration != "" {
			d, err := time.ParseDuration(req.Duration)
			if err != nil {
				fail(w, a.log, fmt.Errorf("%w: duration %q (like \"30m\" or \"2h\")", session.ErrInvalid, req.Duration))
				return
			}
			cr.Duration = d
		}
		if token := bearer(r); token != "" {
			switch {
			case a.svc.IsAdmin(token):
				cr.Client = "admin"
			default:
				claims, err := a.svc.VerifyLaunch(token)
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
		a.setSessionCookie(w, created)
		respond(w, http.StatusCreated, a.view(r.Context(), created.Session, created.Token, created.Usage))
	})
}

// setSessionCookie gives the page that made a session its token as a cookie.
func (a *api) setSessionCookie(w http.ResponseWriter, created session.Created) {
	http.SetCookie(w, &http.Cookie{Name: cookieName(created.Session.ID), Value: created.Token, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: a.cfg.SecureCookies,
		Expires: created.Session.MaxExpiresAt})
}

func (a *api) listSessions() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out, err := a.svc.List(r.Context())
		if err != nil {
			fail(w, a.log, err)
			return
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
		reason := session.EndDeleted
		if grantOf(r.Context()).Scope == session.ScopeAdmin {
			reason = session.EndAdmin
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
			fail(w, a.log, fmt.Errorf("%w: duration %q (like \"30m\")", session.ErrInvalid, req.Duration))
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
			fail(w, a.log, fmt.Errorf("%w: template is required", session.ErrInvalid))
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

func (a *api) act(action session.Action) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in, err := a.svc.Act(r.Context(), r.PathValue("id"), r.PathValue("name"), action)
		if err != nil {
			fail(w, a.log, err)
			return
		}
		respond(w, http.StatusOK, in)
	})
}

type viewerLink struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// viewerLink issues a read-only token for the session's terminals, valid as long as the session may live.
func (a *api) viewerLink() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g, token, err := a.svc.ViewerLink(r.Context(), r.PathValue("id"))
		if err != nil {
			fail(w, a.log, err)
			return
		}
		respond(w, http.StatusCreated, viewerLink{Token: token, ExpiresAt: g.Expires})
	})
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
			fail(w, a.log, fmt.Errorf("%w: port %q (1 to 65535)", session.ErrInvalid, r.PathValue("port")))
			return
		}
		var d time.Duration
		if req.Duration != "" {
			if d, err = time.ParseDuration(req.Duration); err != nil || d <= 0 {
				fail(w, a.log, fmt.Errorf("%w: duration %q (like \"1h\")", session.ErrInvalid, req.Duration))
				return
			}
		}
		g, token, err := a.svc.PortLink(r.Context(), r.PathValue("id"), r.PathValue("name"), port, d)
		if err != nil {
			fail(w, a.log, err)
			return
		}
		hostURL, pathURL := a.proxy.LinkURLs(r, g, token, a.cfg.SecureCookies)
		respond(w, http.StatusCreated, labLink{URL: hostURL, PathURL: pathURL, ExpiresAt: g.Expires.UTC().Truncate(time.Second)})
	})
}

func (a *api) listTemplates() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		respond(w, http.StatusOK, map[string]any{"templates": a.svc.Templates()})
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
