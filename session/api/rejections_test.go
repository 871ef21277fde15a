package api

import (
	"github.com/sandlot/sandlot/session"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/sandlot/sandlot/internal/redistest"
	"github.com/sandlot/sandlot/quota"
)

// Every kind of bad request is refused with the right status and code, and changes nothing.
func TestRejections(t *testing.T) {
	rdb := redistest.New(t)
	s := newServer(t, rdb, serverOpts{limits: quota.Limits{Capacity: 3, SessionsPerClient: 3,
		CreationsPerClient: 100, InstancesPerSession: 2}, cfg: session.Config{MaxDuration: time.Hour}})
	a := s.create(map[string]string{"duration": "30m"})
	b := s.create(nil)
	pa := "/api/v1/sessions/" + a.ID

	otherKey, _ := session.NewTokens([]byte(strings.Repeat("k", 32)), nil, "")
	forged, _ := otherKey.Issue(session.Grant{Scope: session.ScopeSession, Session: a.ID, Expires: time.Now().Add(time.Hour)})
	expired, _ := s.tokens.Issue(session.Grant{Scope: session.ScopeSession, Session: a.ID, Expires: time.Now().Add(-time.Minute)})
	viewer, _ := s.tokens.Issue(session.Grant{Scope: session.ScopeViewer, Session: a.ID, Expires: time.Now().Add(time.Hour)})
	none := unsignedToken(t, a.ID)
	rs256Header := "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9." + strings.SplitN(forged, ".", 2)[1]

	tests := []struct {
		name         string
		method, path string
		token        string
		body         any
		status       int
		code         string
	}{
		{"malformed JSON", "POST", "/api/v1/sessions", "", "{", 400, "invalid_request"},
		{"unknown field", "POST", "/api/v1/sessions", "", `{"templat":"1-node"}`, 400, "invalid_request"},
		{"two objects", "POST", "/api/v1/sessions", "", `{}{}`, 400, "invalid_request"},
		{"not an object", "POST", "/api/v1/sessions", "", `[1]`, 400, "invalid_request"},
		{"unknown template", "POST", "/api/v1/sessions", "", `{"template":"k8s"}`, 400, "invalid_request"},
		{"bad duration", "POST", "/api/v1/sessions", "", `{"duration":"soon"}`, 400, "invalid_request"},
		{"duration over the maximum", "POST", "/api/v1/sessions", "", `{"duration":"2h"}`, 400, "invalid_request"},
		{"template over the node quota", "POST", "/api/v1/sessions", "", `{"template":"swarm-3m2w"}`, 400, "invalid_request"},
		{"oversized body", "POST", "/api/v1/sessions", "", `{"template":"` + strings.Repeat("x", maxBody) + `"}`, 413, "too_large"},
		{"garbage launch token", "POST", "/api/v1/sessions", "garbage", nil, 401, "bad_token"},
		{"no token", "GET", pa, "", nil, 401, "no_token"},
		{"forged token", "GET", pa, forged, nil, 401, "bad_token"},
		{"expired token", "GET", pa, expired, nil, 401, "bad_token"},
		{"alg none token", "GET", pa, none, nil, 401, "bad_token"},
		{"RS256 header on an HMAC token", "GET", pa, rs256Header, nil, 401, "bad_token"},
		{"other session's token", "GET", pa, b.Token, nil, 403, "wrong_session"},
		{"viewer token writes", "POST", pa + "/instances", viewer, nil, 403, "read_only"},
		{"viewer token reads the session", "GET", pa, viewer, nil, 403, "read_only"},
		{"unknown session with a token for it", "GET", "/api/v1/sessions/nosuch", testAdmin, nil, 404, "not_found"},
		{"unknown node", "POST", pa + "/instances/node9/exec", a.Token, `{"cmd":["true"]}`, 404, "not_found"},
		{"bad node name", "POST", pa + "/instances/node1%2F..%2Fx/stop", a.Token, nil, 404, "not_found"},
		{"bad hostname", "POST", pa + "/instances", a.Token, `{"hostname":"Not_Valid"}`, 400, "invalid_request"},
		{"empty command", "POST", pa + "/instances/node1/exec", a.Token, `{"cmd":[]}`, 400, "invalid_request"},
		{"NUL in command", "POST", pa + "/instances/node1/exec", a.Token, `{"cmd":["a\u0000b"]}`, 400, "invalid_request"},
		{"extend without duration", "POST", pa + "/extend", a.Token, `{}`, 400, "invalid_request"},
		{"setup unknown template", "POST", pa + "/setup", a.Token, `{"template":"k8s"}`, 400, "invalid_request"},
		{"list sessions without admin", "GET", "/api/v1/sessions", a.Token, nil, 403, "not_admin"},
		{"list sessions as admin", "GET", "/api/v1/sessions", testAdmin, nil, 200, ""},
		{"wrong method", "PUT", pa, a.Token, nil, 405, "method_not_allowed"},
		{"unknown path", "GET", "/api/v2/sessions", "", nil, 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.code == "" {
				s.mustCall(tt.status, tt.method, tt.path, tt.token, tt.body, nil)
				return
			}
			var e apiError
			s.mustCall(tt.status, tt.method, tt.path, tt.token, tt.body, &e)
			if e.Error.Code != tt.code || e.Error.Message == "" {
				t.Fatalf("error %+v, want code %s", e, tt.code)
			}
		})
	}

	// Quotas: nodes per session, capacity (503 with Retry-After), sessions per client, and nothing changed.
	s.mustCall(201, "POST", pa+"/instances", a.Token, nil, nil)
	s.mustCall(201, "POST", pa+"/instances", a.Token, nil, nil)
	expectRejection(t, s.call("POST", pa+"/instances", a.Token, nil, nil), 429, quota.CodeInstanceQuota, false)
	s.mustCall(201, "POST", "/api/v1/sessions/"+b.ID+"/instances", b.Token, nil, nil)
	expectRejection(t, s.call("POST", "/api/v1/sessions/"+b.ID+"/instances", b.Token, nil, nil), 503, quota.CodeOutOfCapacity, true)
	s.create(nil)
	expectRejection(t, s.call("POST", "/api/v1/sessions", "", nil, nil), 429, quota.CodeTooManySessions, false)
	var got created
	s.mustCall(200, "GET", pa, a.Token, nil, &got)
	if len(got.Instances) != 2 || got.Limits.RemainingInstances != 0 || got.Limits.CapacityFree != 0 {
		t.Fatalf("after refusals: %d nodes, limits %+v", len(got.Instances), got.Limits)
	}

	// Extending stops at the maximum; then it is a conflict.
	s.mustCall(200, "POST", pa+"/extend", a.Token, `{"duration":"5h"}`, &got)
	if !got.ExpiresAt.Equal(got.MaxExpiresAt) {
		t.Fatalf("extended to %s, max %s", got.ExpiresAt, got.MaxExpiresAt)
	}
	expectRejection(t, s.call("POST", pa+"/extend", a.Token, `{"duration":"1m"}`, nil), 409, "conflict", false)
}

// The per-client creation rate: refused with 429 and a Retry-After.
func TestRateLimit(t *testing.T) {
	s := newServer(t, redistest.New(t), serverOpts{limits: quota.Limits{CreationsPerClient: 2, SessionsPerClient: 10}})
	for range 2 {
		c := s.create(nil)
		s.mustCall(200, "DELETE", "/api/v1/sessions/"+c.ID, c.Token, nil, nil)
	}
	resp := s.call("POST", "/api/v1/sessions", "", nil, nil)
	expectRejection(t, resp, 429, quota.CodeRateLimited, true)
	if secs, _ := strconv.Atoi(resp.Header.Get("Retry-After")); secs < 3500 || secs > 3600 {
		t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
}

// Launch tokens signed by an integrator fix template, duration and node quota, and name the client; the admin
// token may end any session (reason admin).
func TestLaunchAndAdminTokens(t *testing.T) {
	s := newServer(t, redistest.New(t), serverOpts{})
	launch := func(kid string, secret []byte, exp time.Time, claims session.LaunchClaims) string {
		claims.ExpiresAt = jwt.NewNumericDate(exp)
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
		tok.Header["kid"] = kid
		signed, err := tok.SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return signed
	}
	good := launch(testIntegratorKid, testIntegratorSecret, time.Now().Add(time.Minute), session.LaunchClaims{
		Template: "1-node", Duration: "10m", MaxInstances: 2, RegisteredClaims: jwt.RegisteredClaims{Subject: "reader-42"}})
	var c created
	s.mustCall(201, "POST", "/api/v1/sessions", good, `{"duration":"1h"}`, &c)
	if c.Template != "1-node" || len(c.Instances) != 1 || c.MaxInstances != 2 || c.ExpiresAt.Sub(c.CreatedAt) != 10*time.Minute {
		t.Fatalf("launched %+v", c.Session)
	}
	sess, _ := s.store.Get(t.Context(), c.ID)
	if sess.Client != "launch:reader-42" {
		t.Fatalf("client %q", sess.Client)
	}
	for name, tok := range map[string]string{
		"wrong key":       launch(testIntegratorKid, []byte(strings.Repeat("w", 40)), time.Now().Add(time.Minute), session.LaunchClaims{RegisteredClaims: jwt.RegisteredClaims{Subject: "x"}}),
		"unknown kid":     launch("other", testIntegratorSecret, time.Now().Add(time.Minute), session.LaunchClaims{RegisteredClaims: jwt.RegisteredClaims{Subject: "x"}}),
		"expired":         launch(testIntegratorKid, testIntegratorSecret, time.Now().Add(-time.Minute), session.LaunchClaims{RegisteredClaims: jwt.RegisteredClaims{Subject: "x"}}),
		"no subject":      launch(testIntegratorKid, testIntegratorSecret, time.Now().Add(time.Minute), session.LaunchClaims{}),
		"a session token": c.Token,
	} {
		var e apiError
		s.mustCall(401, "POST", "/api/v1/sessions", tok, nil, &e)
		if e.Error.Code != "bad_token" {
			t.Errorf("%s: %+v", name, e)
		}
	}
	var ended created
	s.mustCall(200, "DELETE", "/api/v1/sessions/"+c.ID, testAdmin, nil, &ended)
	if ended.EndReason != session.EndAdmin {
		t.Fatalf("ended by admin: %s", ended.EndReason)
	}
}

func expectRejection(t *testing.T, resp *http.Response, status int, code string, retry bool) {
	t.Helper()
	var e apiError
	data := make([]byte, 4096)
	n, _ := resp.Body.Read(data)
	if resp.StatusCode != status || !strings.Contains(string(data[:n]), `"code":"`+code+`"`) {
		t.Fatalf("status %d %s, want %d %s", resp.StatusCode, data[:n], status, code)
	}
	if got := resp.Header.Get("Retry-After") != ""; got != retry {
		t.Fatalf("Retry-After present %v, want %v", got, retry)
	}
	_ = e
}

// unsignedToken is a session token with alg none.
func unsignedToken(t *testing.T, id string) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sid": id, "scope": "session", "iss": "sandlot",
		"exp": jwt.NewNumericDate(time.Now().Add(time.Hour))})
	s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
