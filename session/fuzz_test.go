package session

import (
	"strings"
	"testing"
	"time"
)

// No string that was not signed with the key verifies, whatever its shape.
func FuzzVerifyToken(f *testing.F) {
	tokens, _ := NewTokens([]byte(strings.Repeat("s", 32)), map[string][]byte{"k": []byte(strings.Repeat("i", 32))}, "")
	good, _ := tokens.Issue(Grant{Scope: ScopeSession, Session: "abc", Expires: time.Now().Add(time.Hour)})
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.eyJzaWQiOiJhYmMifQ.")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		g, err := tokens.Verify(token)
		if err == nil && token != good {
			// A different string may only verify if it decodes to the same signed content (base64 slack).
			if g.Session != "abc" || g.Scope != ScopeSession {
				t.Fatalf("verified a token for %q (%s) that was never issued", g.Session, g.Scope)
			}
		}
		if _, err := tokens.VerifyLaunch(token); err == nil {
			t.Fatalf("a launch token verified that no integrator signed: %q", token)
		}
	})
}
