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
)

// Permission is what a request asks to do with a session.
type Permission int

// The permissions.
const (
	PermWatch Permission = iota // open its terminals read-only
	PermDrive                   // anything else: read it, change it, type, files, links
)

// Grant is a verified token: which session it is for (none for the admin) and what it allows. It is made only by
// Tokens.Verify and Service.Authorize, and checked only by Allows and AllowsPort: the one place for the rules.
type Grant struct {
	Scope   Scope
	Session string
	Node    string // ScopePort: the node and port of the link
	Port    int
	Expires time.Time
}

// Denied is a refused request: the HTTP status and code that say why.
type Denied struct {
	Status  int
	Code    string
	Message string
}

func (d *Denied) Error() string { return d.Message }

// Allows says whether the grant may do p with session (nil), or why not.
func (g Grant) Allows(session string, p Permission) error {
	switch {
	case g.Scope == ScopeAdmin:
		return nil
	case g.Session != session:
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
