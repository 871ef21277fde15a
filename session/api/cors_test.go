package api

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sandlot/sandlot/quota"
)

const (
	docsOrigin  = "http://docs.example.test:8081"
	otherDocs   = "https://other-docs.example.test"
	evilOrigin  = "https://evil.example.test"
	docsHeaders = "authorization,content-type"
)

// fromOrigin sends a request as a page of origin would (the browser adds Origin), with token if any.
func (s *server) fromOrigin(origin, method, path, token, contentType, body string) (*http.Response, string) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp, string(b)
}

func decodeCreated(t *testing.T, body string) created {
	t.Helper()
	var c created
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return c
}

// preflight is the OPTIONS request a browser sends before a cross-origin call with method and headers.
func (s *server) preflight(origin, method, path, headers string) *http.Response {
	s.t.Helper()
	req, _ := http.NewRequest("OPTIONS", s.URL+path, nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", method)
	if headers != "" {
		req.Header.Set("Access-Control-Request-Headers", headers)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func noCORS(t *testing.T, what string, resp *http.Response) {
	t.Helper()
	for k := range resp.Header {
		if strings.HasPrefix(strings.ToLower(k), "access-control-") {
			t.Errorf("%s: a CORS header for a foreign origin: %s: %s", what, k, resp.Header.Get(k))
		}
	}
}

func corsFor(t *testing.T, what, origin string, resp *http.Response) {
	t.Helper()
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != origin {
		t.Errorf("%s: Access-Control-Allow-Origin %q, want exactly %q", what, got, origin)
	}
	if resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("%s: no Access-Control-Allow-Credentials", what)
	}
	if !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
		t.Errorf("%s: no Vary: Origin (a cache would serve one origin's answer to another)", what)
	}
}

// A listed documentation site may call the API from its pages and read the answers; any other origin gets no CORS
// header at all, and what it sends that changes something is refused.
func TestCORSForListedOriginsOnly(t *testing.T) {
	s, _ := memServer(t, serverOpts{api: Config{Origins: []string{docsOrigin, otherDocs}}})

	t.Run("preflight from a listed origin", func(t *testing.T) {
		resp := s.preflight(docsOrigin, "POST", "/api/v1/sessions", docsHeaders)
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("status %d", resp.StatusCode)
		}
		corsFor(t, "preflight", docsOrigin, resp)
		methods := resp.Header.Get("Access-Control-Allow-Methods")
		for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
			if !strings.Contains(methods, m) {
				t.Errorf("Allow-Methods %q lacks %s", methods, m)
			}
		}
		headers := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
		for _, h := range []string{"authorization", "content-type", "x-requested-with"} {
			if !strings.Contains(headers, h) {
				t.Errorf("Allow-Headers %q lacks %s", headers, h)
			}
		}
		if resp.Header.Get("Access-Control-Max-Age") == "" {
			t.Error("no Access-Control-Max-Age: every call would cost a preflight")
		}
	})
	t.Run("preflight from a foreign origin", func(t *testing.T) {
		for _, path := range []string{"/api/v1/sessions", "/api/v1/sessions/x/instances", "/api/v1/templates"} {
			resp := s.preflight(evilOrigin, "POST", path, docsHeaders)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s: status %d, want 403", path, resp.StatusCode)
			}
			noCORS(t, "preflight "+path, resp)
		}
		// An origin that only looks like a listed one.
		for _, o := range []string{"http://docs.example.test:8082", "http://docs.example.test:8081.evil.test", "null", "HTTP://DOCS.EXAMPLE.TEST:8081"} {
			noCORS(t, "preflight from "+o, s.preflight(o, "POST", "/api/v1/sessions", docsHeaders))
		}
	})

	var mine created
	t.Run("a listed origin creates a session and reads the answer", func(t *testing.T) {
		resp, body := s.fromOrigin(docsOrigin, "POST", "/api/v1/sessions", "", "application/json", `{}`)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		corsFor(t, "create", docsOrigin, resp)
		mine = decodeCreated(t, body)
		if mine.Token == "" {
			t.Fatal("no token in the answer: a cross-site page cannot rely on the SameSite=Lax cookie")
		}
		resp, body = s.fromOrigin(docsOrigin, "POST", "/api/v1/sessions/"+mine.ID+"/instances", mine.Token, "application/json", `{}`)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("add a node: %d %s", resp.StatusCode, body)
		}
		corsFor(t, "add a node", docsOrigin, resp)
	})

	other := s.create(nil)
	t.Run("a listed origin cannot act on a session it did not create", func(t *testing.T) {
		for _, tc := range []struct {
			token string
			want  int
		}{{"", 401}, {mine.Token, 403}} {
			resp, body := s.fromOrigin(docsOrigin, "DELETE", "/api/v1/sessions/"+other.ID, tc.token, "application/json", "")
			if resp.StatusCode != tc.want {
				t.Errorf("with token %q: %d %s, want %d", tc.token, resp.StatusCode, body, tc.want)
			}
		}
		if got := s.call("GET", "/api/v1/sessions/"+other.ID, other.Token, nil, nil); got.StatusCode != 200 {
			t.Fatalf("the other session: %d", got.StatusCode)
		}
	})

	t.Run("a foreign origin", func(t *testing.T) {
		resp, body := s.fromOrigin(evilOrigin, "POST", "/api/v1/sessions", "", "application/json", `{}`)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "bad_origin") {
			t.Errorf("create: %d %s, want 403 bad_origin", resp.StatusCode, body)
		}
		noCORS(t, "create", resp)
		// A form post needs no preflight: it is refused all the same.
		resp, body = s.fromOrigin(evilOrigin, "POST", "/api/v1/sessions/"+mine.ID+"/instances", mine.Token, "text/plain", `{}`)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("add a node: %d %s, want 403", resp.StatusCode, body)
		}
		noCORS(t, "add a node", resp)
		// Even with a stolen token, a read from a foreign page carries no CORS header: the browser shows it nothing.
		resp, _ = s.fromOrigin(evilOrigin, "GET", "/api/v1/sessions/"+mine.ID, mine.Token, "", "")
		noCORS(t, "read", resp)
		resp, _ = s.fromOrigin(evilOrigin, "GET", "/api/v1/templates", "", "", "")
		noCORS(t, "templates", resp)
	})

	t.Run("the lab proxy is left to the lab", func(t *testing.T) {
		resp, _ := s.fromOrigin(docsOrigin, "GET", "/lab/"+mine.ID+"/node1/8080/", "", "", "")
		if resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Error("the API's CORS headers on a lab's answer")
		}
	})
}

// Anonymous sessions from one listed origin are bounded together, besides each reader's own bound; a launch
// token's sessions are the site backend's business and do not count.
func TestSessionsPerOriginOverHTTP(t *testing.T) {
	s, _ := memServer(t, serverOpts{api: Config{Origins: []string{docsOrigin, otherDocs}},
		limits: quota.Limits{SessionsPerClient: 10, SessionsPerOrigin: 2}})
	create := func(origin string, want int, code string) created {
		t.Helper()
		resp, body := s.fromOrigin(origin, "POST", "/api/v1/sessions", "", "application/json", `{}`)
		if resp.StatusCode != want || code != "" && !strings.Contains(body, `"`+code+`"`) {
			t.Fatalf("from %q: %d %s, want %d %s", origin, resp.StatusCode, body, want, code)
		}
		if want != http.StatusCreated {
			return created{}
		}
		return decodeCreated(t, body)
	}
	first := create(docsOrigin, 201, "")
	create(docsOrigin, 201, "")
	create(docsOrigin, 429, quota.CodeOriginQuota)
	create(otherDocs, 201, "")
	create("", 201, "") // not from a page: the reader's own bound only
	s.mustCall(200, "DELETE", "/api/v1/sessions/"+first.ID, first.Token, nil, nil)
	create(docsOrigin, 201, "")
	create(docsOrigin, 429, quota.CodeOriginQuota)
}
