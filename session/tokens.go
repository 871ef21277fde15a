package session

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Tokens issues and checks the tokens of Sandlot: the tokens it signs (a session's own, viewer links, lab links:
// see Grant), launch tokens (signed by an integrator, fixing what a session may be) and the admin token.
type Tokens struct {
	key         []byte
	integrators map[string][]byte // key id -> secret
	admin       string
}

// claims are what every token Sandlot signs says: the session, the scope and, for a lab link, the node and port.
type claims struct {
	Session string `json:"sid"`
	Scope   Scope  `json:"scope"`
	Node    string `json:"node,omitempty"`
	Port    int    `json:"port,omitempty"`
	// ScopeInstructor and ScopeAttendee: the workshop, and the attendee.
	Workshop string `json:"wid,omitempty"`
	Attendee string `json:"aid,omitempty"`
	jwt.RegisteredClaims
}

// LaunchClaims are what an integrator's launch token fixes for the session it starts. Subject names the client
// for quotas.
type LaunchClaims struct {
	Template     string `json:"template,omitempty"`
	Duration     string `json:"duration,omitempty"`
	MaxInstances int    `json:"max_instances,omitempty"`
	jwt.RegisteredClaims
}

// NewTokens returns Tokens signing with key (at least 32 bytes), accepting launch tokens from integrators (key id
// to secret) and the admin token admin ("" for none).
func NewTokens(key []byte, integrators map[string][]byte, admin string) (*Tokens, error) {
	if len(key) < 32 {
		return nil, errors.New("the signing key must have at least 32 bytes")
	}
	for id, secret := range integrators {
		if len(secret) < 32 {
			return nil, fmt.Errorf("integrator key %q must have at least 32 bytes", id)
		}
	}
	if admin != "" && len(admin) < 16 {
		return nil, errors.New("the admin token must have at least 16 characters")
	}
	return &Tokens{key: key, integrators: integrators, admin: admin}, nil
}

var signingMethod = jwt.SigningMethodHS256

// Subkey returns a 32-byte key for purpose, derived from the signing key: every process that shares the signing key
// derives the same subkey, and a subkey tells nothing about the signing key or the subkeys of other purposes. (What
// HS256 signs never contains ':', so no subkey is ever the signature of a token.)
func (t *Tokens) Subkey(purpose string) []byte {
	mac := hmac.New(sha256.New, t.key)
	mac.Write([]byte("sandlot-subkey:" + purpose))
	return mac.Sum(nil)
}

// registered are the claims of every token Sandlot signs: its issuer, when, and until when.
func registered(expires time.Time) jwt.RegisteredClaims {
	return jwt.RegisteredClaims{Issuer: "sandlot", IssuedAt: jwt.NewNumericDate(time.Now()),
		ExpiresAt: jwt.NewNumericDate(expires)}
}

// sign signs claims with the deployment's key.
func (t *Tokens) sign(claims jwt.Claims) (string, error) {
	return jwt.NewWithClaims(signingMethod, claims).SignedString(t.key)
}

// parse checks a token Sandlot signed and fills claims. It refuses any algorithm but HS256 (alg none included),
// other keys, other issuers, expired tokens and tokens without an expiry.
func (t *Tokens) parse(token string, claims jwt.Claims) error {
	_, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return t.key, nil },
		jwt.WithValidMethods([]string{signingMethod.Alg()}), jwt.WithExpirationRequired(), jwt.WithIssuer("sandlot"))
	return err
}

// Issue signs a token that grants g until g.Expires: a session's grants name the session, a workshop's its
// workshop (and an attendee's, its attendee).
func (t *Tokens) Issue(g Grant) (string, error) {
	if err := g.complete(); err != nil {
		return "", err
	}
	return t.sign(claims{Session: g.Session, Scope: g.Scope, Node: g.Node, Port: g.Port, Workshop: g.Workshop,
		Attendee: g.Attendee, RegisteredClaims: registered(g.Expires)})
}

// complete says whether g names what its scope needs (nil), or what is missing: signed and verified alike.
func (g Grant) complete() error {
	switch g.Scope {
	case ScopeSession, ScopeViewer:
		if g.Session != "" {
			return nil
		}
	case ScopePort:
		if g.Session != "" && g.Node != "" && g.Port >= 1 && g.Port <= 65535 {
			return nil
		}
	case ScopeInstructor:
		if g.Workshop != "" && g.Session == "" {
			return nil
		}
	case ScopeAttendee:
		if g.Workshop != "" && g.Attendee != "" && g.Session == "" {
			return nil
		}
	default:
		return fmt.Errorf("the token's scope %q is not one Sandlot issues", g.Scope)
	}
	return fmt.Errorf("a %s token must name what it is for", g.Scope)
}

// Verify checks a token: the admin token, or one Sandlot signed (see parse) with a scope it knows and what that
// scope needs (a session; a lab link's node and port). An expired token's error is jwt.ErrTokenExpired.
func (t *Tokens) Verify(token string) (Grant, error) {
	if t.IsAdmin(token) {
		return Grant{Scope: ScopeAdmin, Expires: time.Now().Add(8 * time.Hour)}, nil
	}
	var c claims
	if err := t.parse(token, &c); err != nil {
		return Grant{}, err
	}
	g := Grant{Scope: c.Scope, Session: c.Session, Node: c.Node, Port: c.Port, Workshop: c.Workshop,
		Attendee: c.Attendee, Expires: c.ExpiresAt.Time}
	if err := g.complete(); err != nil {
		return Grant{}, err
	}
	return g, nil
}

// VerifyLaunch checks a launch token: HS256, signed by the integrator its "kid" header names, not expired.
func (t *Tokens) VerifyLaunch(token string) (*LaunchClaims, error) {
	claims := &LaunchClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		secret, ok := t.integrators[kid]
		if !ok {
			return nil, fmt.Errorf("unknown integrator key %q", kid)
		}
		return secret, nil
	}, jwt.WithValidMethods([]string{signingMethod.Alg()}), jwt.WithExpirationRequired())
	if err != nil {
		return nil, err
	}
	if claims.Subject == "" {
		return nil, errors.New("a launch token must name its client in sub")
	}
	return claims, nil
}

// IsAdmin reports whether token is the admin token.
func (t *Tokens) IsAdmin(token string) bool {
	return t.admin != "" && subtle.ConstantTimeCompare([]byte(token), []byte(t.admin)) == 1
}
