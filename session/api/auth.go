package api

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/sandlot/sandlot/session"
)

// session lets a request through only with a token that grants p on the session in its path (from the
// Authorization header, or the cookie the web page got), or the admin token. The id alone grants nothing. The
// grant goes with the request (grantOf).
func (a *api) session(p session.Permission, next http.Handler) http.Handler {
	return a.sessionAuth(p, next, false)
}

// sessionOrLink is session for WebSocket routes, which browsers cannot give headers: the token may also come as
// ?token= (a viewer link carries its token so).
func (a *api) sessionOrLink(p session.Permission, next http.Handler) http.Handler {
	return a.sessionAuth(p, next, true)
}

func (a *api) sessionAuth(p session.Permission, next http.Handler, queryToken bool) http.Handler {
	return a.withGrant(next, queryToken, "the session's token", func(r *http.Request, g session.Grant) error {
		return a.svc.Check(r.Context(), g, r.PathValue("id"), p)
	})
}

// instructor lets a request through only with the token of the workshop in its path, or the admin token;
// queryToken as for sessionOrLink (the events stream, which EventSource opens without headers).
func (a *api) instructor(next http.Handler, queryToken bool) http.Handler {
	return a.withGrant(next, queryToken, "the workshop's instructor token", func(r *http.Request, g session.Grant) error {
		return g.AllowsWorkshop(r.PathValue("id"))
	})
}

// attendee lets a request through only with an attendee's token: the routes act on that attendee.
func (a *api) attendee(next http.Handler, queryToken bool) http.Handler {
	return a.withGrant(next, queryToken, "an attendee's token", func(r *http.Request, g session.Grant) error {
		return g.AllowsAttendee()
	})
}

// withGrant lets a request through only with a valid token (the Authorization header; ?token= when queryToken;
// the session's cookie on a session's routes) that check allows. The grant goes with the request (grantOf).
func (a *api) withGrant(next http.Handler, queryToken bool, needs string, check func(*http.Request, session.Grant) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := bearer(r)
		if token == "" && queryToken {
			token = r.URL.Query().Get("token")
		}
		if id := r.PathValue("id"); token == "" && id != "" {
			if c, err := r.Cookie(cookieName(id)); err == nil {
				token = c.Value
			}
		}
		if token == "" {
			failWith(w, http.StatusUnauthorized, "no_token", "this call needs "+needs+" (Authorization: Bearer <token>)")
			return
		}
		g, err := a.svc.Authorize(token)
		if err != nil {
			failWith(w, http.StatusUnauthorized, "bad_token", "the token is not valid: "+err.Error())
			return
		}
		if err := check(r, g); err != nil {
			fail(w, a.log, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), grantKey{}, g)))
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
		if !a.svc.IsAdmin(token) {
			failWith(w, http.StatusForbidden, "not_admin", "this call needs the admin token")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), grantKey{}, session.Grant{Scope: session.ScopeAdmin})))
	})
}

type grantKey struct{}

// grantOf is the grant the request was let through with.
func grantOf(ctx context.Context) session.Grant {
	g, _ := ctx.Value(grantKey{}).(session.Grant)
	return g
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func cookieName(id string) string { return "sandlot_" + id }

// Body kinds of state-changing routes: what Content-Type each accepts.
type bodyKind int

const (
	jsonBody      bodyKind = iota // application/json, or no body at all
	multipartBody                 // multipart/form-data (uploads)
	rawBody                       // any (a file's content, by PUT: browsers never send that cross-site unasked)
)

// errBadOrigin refuses a browser request from a page Sandlot does not know.
var errBadOrigin = &session.Denied{Status: http.StatusForbidden, Code: "bad_origin",
	Message: "requests that change something are accepted from Sandlot's own pages and --public-origins only"}

// stateChanging guards a route that changes something against cross-site requests: a browser's request must come
// from Sandlot's own origin or one of --public-origins (Origin), and its body must be of the route's kind (a form
// cannot send JSON without the preflight a foreign origin does not pass). Requests without Origin (not from a
// browser page: curl, SDKs on servers) are let through on their token alone.
func (a *api) stateChanging(kind bodyKind, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.originAllowed(r) {
			fail(w, a.log, errBadOrigin)
			return
		}
		if err := checkContentType(r, kind); err != nil {
			fail(w, a.log, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// originAllowed says whether a request's Origin, if any, is Sandlot's own (the host it was sent to) or listed.
func (a *api) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if a.origins[origin] {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && strings.EqualFold(u.Host, r.Host)
}

var errUnsupportedType = errors.New("unsupported content type")

func checkContentType(r *http.Request, kind bodyKind) error {
	ct := r.Header.Get("Content-Type")
	media, _, err := mime.ParseMediaType(ct)
	hasBody := r.ContentLength > 0 || (r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody)
	switch kind {
	case jsonBody:
		if ct == "" && !hasBody || err == nil && media == "application/json" {
			return nil
		}
		return unsupported("application/json", ct)
	case multipartBody:
		if err == nil && media == "multipart/form-data" {
			return nil
		}
		return unsupported("multipart/form-data", ct)
	}
	return nil
}

func unsupported(want, got string) error {
	if got == "" {
		got = "none"
	}
	return &unsupportedType{want: want, got: got}
}

type unsupportedType struct{ want, got string }

func (e *unsupportedType) Error() string {
	return "this call takes Content-Type: " + e.want + " (the request had " + e.got + ")"
}

func (e *unsupportedType) Unwrap() error { return errUnsupportedType }
