package session

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Request bodies never panic the decoder, and every refusal is ErrInvalid.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{`{}`, ``, `{"template":"1-node","duration":"30m"}`, `{"cmd":["sh","-c","x"]}`,
		`{"hostname":"a"}`, `{`, `[]`, `{"cmd":null}`, `{"a":1}{}`, `"x"`, "\x00", `{"duration":1e999}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []any{&createSessionRequest{}, &execRequest{}, &addInstanceRequest{}, &extendRequest{},
			&setupRequest{}} {
			if err := decodeBytes(data, v); err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("%T: %v", v, err)
			}
		}
		var req execRequest
		if decodeBytes(data, &req) == nil {
			if err := checkCmd(req.Cmd); err == nil && (len(req.Cmd) == 0 || strings.ContainsRune(strings.Join(req.Cmd, ""), 0)) {
				t.Fatalf("accepted cmd %q", req.Cmd)
			}
		}
	})
}

// No string that was not signed with the key verifies, whatever its shape.
func FuzzVerifyToken(f *testing.F) {
	tokens, _ := NewTokens([]byte(strings.Repeat("s", 32)), map[string][]byte{"k": []byte(strings.Repeat("i", 32))}, "")
	good, _ := tokens.Issue("abc", "session", time.Now().Add(time.Hour))
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.eyJzaWQiOiJhYmMifQ.")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := tokens.Verify(token)
		if err == nil && token != good {
			// A different string may only verify if it decodes to the same signed content (base64 slack).
			if claims.Session != "abc" {
				t.Fatalf("verified a token for %q that was never issued", claims.Session)
			}
		}
		if _, err := tokens.VerifyLaunch(token); err == nil {
			t.Fatalf("a launch token verified that no integrator signed: %q", token)
		}
	})
}

// Template files never panic the parser, and what it accepts is a sane template.
func FuzzParseTemplate(f *testing.F) {
	f.Add([]byte(`{"title":"x","managers":1,"workers":1,"swarm":true}`))
	f.Add([]byte(`{"title":"x","managers":0,"workers":1}`))
	f.Add([]byte(`{"managers":-1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tmpl, err := parseTemplate("fuzz", data)
		if err != nil {
			return
		}
		if tmpl.Nodes() < 1 || tmpl.Nodes() > 50 || tmpl.Managers < 0 || tmpl.Workers < 0 || tmpl.Title == "" ||
			(tmpl.Swarm && tmpl.Managers == 0) {
			t.Fatalf("accepted %+v", tmpl)
		}
	})
}

// The embedded templates are the four the design promises, all valid.
func TestTemplates(t *testing.T) {
	ts, err := LoadTemplates()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]int{"1-node": {0, 1}, "swarm-1m1w": {1, 1}, "swarm-3m2w": {3, 2}, "swarm-5m": {5, 0}}
	for name, mw := range want {
		if tmpl, ok := ts[name]; !ok || tmpl.Managers != mw[0] || tmpl.Workers != mw[1] {
			t.Errorf("template %s: %+v", name, tmpl)
		}
	}
}
