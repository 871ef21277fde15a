package session

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The one table of what each kind of token may do.
func TestGrants(t *testing.T) {
	admin := Grant{Scope: ScopeAdmin}
	own := Grant{Scope: ScopeSession, Session: "a"}
	viewer := Grant{Scope: ScopeViewer, Session: "a"}
	link := Grant{Scope: ScopePort, Session: "a", Node: "node1", Port: 8080}
	instructor := Grant{Scope: ScopeInstructor, Workshop: "w"}
	attendee := Grant{Scope: ScopeAttendee, Workshop: "w", Attendee: "x"}
	for _, tt := range []struct {
		name  string
		g     Grant
		perm  Permission
		code  string // "" allowed; Allows of session a, a session of workshop w
		port  string // AllowsPort("a", "node1", 8080)
		other string // AllowsPort("b", "node1", 8080)
	}{
		{"admin drives", admin, PermDrive, "", "", ""},
		{"the session's own token drives", own, PermDrive, "", "", "wrong_session"},
		{"a viewer watches", viewer, PermWatch, "", "wrong_scope", "wrong_session"},
		{"a viewer does not drive", viewer, PermDrive, "read_only", "wrong_scope", "wrong_session"},
		{"a lab link is not for the API", link, PermWatch, "wrong_scope", "", "wrong_session"},
		{"an instructor watches its attendees", instructor, PermWatch, "", "wrong_session", "wrong_session"},
		{"an instructor does not drive them", instructor, PermDrive, "read_only", "wrong_session", "wrong_session"},
		{"an attendee token is not a session's", attendee, PermWatch, "wrong_scope", "wrong_session", "wrong_session"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			check := func(what string, err error, want string) {
				var d *Denied
				switch {
				case want == "" && err != nil:
					t.Errorf("%s: refused: %v", what, err)
				case want != "" && (!errors.As(err, &d) || d.Code != want):
					t.Errorf("%s: %v, want %s", what, err, want)
				}
			}
			check("session a", tt.g.Allows(Target{Session: "a", Workshop: "w"}, tt.perm), tt.code)
			switch tt.g.Scope {
			case ScopeAdmin:
			case ScopeAttendee:
				check("session b", tt.g.Allows(Target{Session: "b"}, tt.perm), "wrong_scope")
			default:
				check("session b", tt.g.Allows(Target{Session: "b", Workshop: "v"}, tt.perm), "wrong_session")
			}
			check("port of a", tt.g.AllowsPort("a", "node1", 8080), tt.port)
			check("port of b", tt.g.AllowsPort("b", "node1", 8080), tt.other)
		})
	}
	for _, g := range []Grant{own, viewer, link, attendee, {Scope: ScopeInstructor, Workshop: "v"}} {
		if err := g.AllowsWorkshop("w"); err == nil {
			t.Errorf("%+v runs workshop w", g)
		}
	}
	if admin.AllowsWorkshop("w") != nil || instructor.AllowsWorkshop("w") != nil {
		t.Error("the admin or the workshop's instructor may not run it")
	}
	for _, g := range []Grant{admin, own, viewer, instructor} {
		if err := g.AllowsAttendee(); err == nil {
			t.Errorf("%+v passes as an attendee", g)
		}
	}
	if attendee.AllowsAttendee() != nil {
		t.Error("an attendee's token does not pass as an attendee's")
	}
	if err := link.AllowsPort("a", "node1", 8081); err == nil {
		t.Error("a lab link opens another port")
	}
	if err := link.AllowsPort("a", "node2", 8080); err == nil {
		t.Error("a lab link opens another node")
	}
}

// Every grant signed comes back as it was; what Sandlot never issues does not verify.
func TestTokensRoundTrip(t *testing.T) {
	tokens, err := NewTokens([]byte(strings.Repeat("k", 32)), nil, "admin-token-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	for _, g := range []Grant{
		{Scope: ScopeSession, Session: "a", Expires: exp},
		{Scope: ScopeViewer, Session: "a", Expires: exp},
		{Scope: ScopePort, Session: "a", Node: "node1", Port: 8080, Expires: exp},
		{Scope: ScopeInstructor, Workshop: "w", Expires: exp},
		{Scope: ScopeAttendee, Workshop: "w", Attendee: "x", Expires: exp},
	} {
		token, err := tokens.Issue(g)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tokens.Verify(token)
		if err != nil || got != g {
			t.Errorf("%+v came back as %+v (%v)", g, got, err)
		}
	}
	if g, err := tokens.Verify("admin-token-0123456789"); err != nil || g.Scope != ScopeAdmin {
		t.Errorf("the admin token: %+v, %v", g, err)
	}
	if _, err := tokens.Issue(Grant{Scope: ScopeAdmin}); err == nil {
		t.Error("an admin grant was signed")
	}
	sign := func(c claims) string {
		c.RegisteredClaims = registered(exp)
		s, _ := tokens.sign(c)
		return s
	}
	for name, token := range map[string]string{
		"unknown scope":           sign(claims{Session: "a", Scope: "root"}),
		"no session":              sign(claims{Scope: ScopeSession}),
		"port link without port":  sign(claims{Session: "a", Scope: ScopePort, Node: "node1"}),
		"port link without node":  sign(claims{Session: "a", Scope: ScopePort, Port: 80}),
		"instructor of nothing":   sign(claims{Scope: ScopeInstructor}),
		"instructor of a session": sign(claims{Scope: ScopeInstructor, Workshop: "w", Session: "a"}),
		"attendee without id":     sign(claims{Scope: ScopeAttendee, Workshop: "w"}),
	} {
		if g, err := tokens.Verify(token); err == nil {
			t.Errorf("%s verified as %+v", name, g)
		}
	}
	expired, _ := tokens.Issue(Grant{Scope: ScopeSession, Session: "a", Expires: time.Now().Add(-time.Minute)})
	if _, err := tokens.Verify(expired); !errors.Is(err, jwt.ErrTokenExpired) {
		t.Errorf("an expired token: %v", err)
	}
}
