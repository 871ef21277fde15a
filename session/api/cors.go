package api

import (
	"net/http"
	"strings"
)

// CORS: pages of the origins listed in --public-origins (documentation sites) may call the API from their own
// origin and read its answers; no other foreign origin gets a single CORS header, so a browser shows it nothing,
// and what it sends that changes something is refused anyway (stateChanging, bad_origin).
//
// Credentials are allowed (Allow-Credentials) for the listed origins only, with their exact origin, never "*".
// A listed site on another site than Sandlot's cannot count on the session cookie (SameSite=Lax: browsers leave it
// out of cross-site requests): the API answers the session's token, and the page keeps it and sends it as
// Authorization, which is why that header is allowed.

const (
	corsMethods = "GET, POST, PUT, DELETE"
	corsHeaders = "Authorization, Content-Type, X-Requested-With"
	corsMaxAge  = "600" // seconds a browser may keep a preflight's answer
	corsExposed = "Retry-After, Content-Disposition"
)

// cors answers preflights and adds CORS headers for the listed origins, on every path but the lab proxy's (a lab
// is the learner's own web server: its answers are its own business).
func (a *api) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/lab/") {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Add("Vary", "Origin")
		origin := r.Header.Get("Origin")
		preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
		if origin == "" || !a.origins[origin] {
			if preflight {
				fail(w, a.log, errBadOrigin)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
		if preflight {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			h.Set("Access-Control-Allow-Methods", corsMethods)
			h.Set("Access-Control-Allow-Headers", corsHeaders)
			h.Set("Access-Control-Max-Age", corsMaxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Expose-Headers", corsExposed)
		next.ServeHTTP(w, r)
	})
}

// listedOrigin is the request's Origin when it is one of --public-origins (not Sandlot's own host): the origin
// whose quota an anonymous session counts against.
func (a *api) listedOrigin(r *http.Request) string {
	if o := r.Header.Get("Origin"); a.origins[o] {
		return o
	}
	return ""
}
