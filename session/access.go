package session

import (
	"fmt"
	"net/http"
	"time"
)

// Scope is what a token is for. The values are what tokens carry in their "scope" claim.
type Scope string

// The scopes. Every token Sandlot signs has one; the admin token is not signed and has ScopeAdmin.
const (
	ScopeSession Scope = "session" // the session's own: read and drive everything of it
	ScopeViewer  Scope = "viewer"  // watch its terminals, nothing else
	ScopePort    Scope = "port"    // a lab link: open one port of one node through the lab proxy
	ScopeAdmin   Scope = "admin"   // the deployment's admin token: everything
	// ScopeInstructor runs one workshop (its routes) and watches its attendees' terminals, nothing else.
	ScopeInstructor Scope = "instructor"
	// ScopeAttendee is one attendee of a workshop: its own state and broadcasts (its session has its own token).
	ScopeAttendee Scope = "attendee"
)

// Permission is what a request asks to do with a session.
type Permission int

// The permissions.
const (
	PermWatch Permission = iota // open its terminals read-only
	PermDrive                   // anything else: read it, change it, type, files, links
)

// Grant is a verified token: which session it is for (none for the admin) and what it allows. It is made only by
// Tokens.Verify and Service.Authorize, and checked only by Allows, AllowsPort, AllowsWorkshop and AllowsAttendee:
// the one place for the rules.
type Grant struct {
	Scope    Scope
	Session  string
	Node     string // ScopePort: the node and port of the link
	Port     int
	Workshop string // ScopeInstructor, ScopeAttendee: the workshop
	Attendee string // ScopeAttendee: the attendee
	Expires  time.Time
}

// Target is what a request acts on: a session, and the workshop it belongs to ("" for none).
type Target struct {
	Session  string
	Workshop string
}

// NeedsWorkshop says whether Allows needs the target's workshop to decide (so that it is read only then).
func (g Grant) NeedsWorkshop() bool { return g.Scope == ScopeInstructor }

// Denied is a refused request: the HTTP status and code that say why.
type Denied struct {
	Status  int
	Code    string
	Message string
}

func (d *Denied) Error() string { return d.Message }

// Allows says whether the grant may do p with session t (nil), or why not. An instructor may watch the terminals
// of its workshop's sessions; it changes them only through the workshop's routes.
func (g Grant) Allows(t Target, p Permission) error {
	switch {
	case g.Scope == ScopeAdmin:
		return nil
	case g.Scope == ScopeInstructor && (t.Workshop == "" || t.Workshop != g.Workshop):
		return &Denied{http.StatusForbidden, "wrong_session", "the token is for another workshop's sessions"}
	case g.Scope == ScopeInstructor && p == PermWatch:
		return nil
	case g.Scope == ScopeInstructor:
		return &Denied{http.StatusForbidden, "read_only", "an instructor token may only watch attendees' terminals"}
	case g.Scope == ScopeAttendee:
		return &Denied{http.StatusForbidden, "wrong_scope", "an attendee token is not for sessions: use the session's token"}
	case g.Session != t.Session:
		return &Denied{http.StatusForbidden, "wrong_session", "the token is for another session"}
	case g.Scope == ScopeSession:
		return nil
	case g.Scope == ScopeViewer && p == PermWatch:
		return nil
	case g.Scope == ScopeViewer:
		return &Denied{http.StatusForbidden, "read_only", "a viewer token may only watch the session's terminals"}
	}
	return &Denied{http.StatusForbidden, "wrong_scope", fmt.Sprintf("a %s token is not for this API", g.Scope)}
}

// AllowsPort says whether the grant opens a port of a node of a session through the lab proxy (nil), or why not:
// the session's own token, the admin token, or a lab link for exactly that node and port.
func (g Grant) AllowsPort(session, node string, port int) error {
	switch {
	case g.Scope == ScopeAdmin:
		return nil
	case g.Session != session:
		return &Denied{http.StatusForbidden, "wrong_session", "This key is for another session."}
	case g.Scope == ScopeSession:
		return nil
	case g.Scope == ScopePort && g.Node == node && g.Port == port:
		return nil
	case g.Scope == ScopePort:
		return &Denied{http.StatusForbidden, "wrong_port", "This link is for another port, node or session."}
	}
	return &Denied{http.StatusForbidden, "wrong_scope", "A viewer link does not open ports."}
}

// AllowsWorkshop says whether the grant may run workshop (nil: the admin, or that workshop's instructor), or why
// not.
func (g Grant) AllowsWorkshop(workshop string) error {
	switch {
	case g.Scope == ScopeAdmin:
		return nil
	case g.Scope == ScopeInstructor && g.Workshop == workshop:
		return nil
	case g.Scope == ScopeInstructor:
		return &Denied{http.StatusForbidden, "wrong_workshop", "the token is for another workshop"}
	}
	return &Denied{http.StatusForbidden, "wrong_scope", fmt.Sprintf("a %s token does not run workshops", g.Scope)}
}

// AllowsAttendee says whether the grant is an attendee's (nil), or why not: the attendee routes act on the
// token's own attendee only, so no other grant opens them.
func (g Grant) AllowsAttendee() error {
	if g.Scope == ScopeAttendee && g.Workshop != "" && g.Attendee != "" {
		return nil
	}
	return &Denied{http.StatusForbidden, "wrong_scope", fmt.Sprintf("this call needs an attendee's token, not a %s token", g.Scope)}
}
