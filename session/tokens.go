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

// Tokens issues and checks the signed tokens of the API: session tokens (one per session, required by every call
// on it), launch tokens (signed by an integrator, fixing what a session may be) and the admin token.
type Tokens struct {
	key         []byte
	integrators map[string][]byte // key id -> secret
	admin       string
}

// SessionClaims are what a session token says.
type SessionClaims struct {
	Session string `json:"sid"`
	Scope   string `json:"scope"` // "session" (drive) or "viewer" (read-only terminals)
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

// Issue signs a token for session, valid until expires.
func (t *Tokens) Issue(session, scope string, expires time.Time) (string, error) {
	return t.sign(SessionClaims{Session: session, Scope: scope, RegisteredClaims: registered(expires)})
}

// Verify checks a session token (see parse) and returns its claims.
func (t *Tokens) Verify(token string) (*SessionClaims, error) {
	claims := &SessionClaims{}
	if err := t.parse(token, claims); err != nil {
		return nil, err
	}
	if claims.Session == "" || (claims.Scope != "session" && claims.Scope != "viewer") {
		return nil, errors.New("not a session token")
	}
	return claims, nil
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

// PortClaims are what a lab link says: its holder may open one port of one node of a session until it expires.
// The page gets one for each link it shows; a share link is one with a shorter life.
type PortClaims struct {
	Session string `json:"sid"`
	Node    string `json:"node"`
	Port    int    `json:"port"`
	Scope   string `json:"scope"` // always "port": no session token is a port token, and no port token a session's
	jwt.RegisteredClaims
}

// IssuePort signs a lab link's token for a port of a node of a session, valid until expires.
func (t *Tokens) IssuePort(session, node string, port int, expires time.Time) (string, error) {
	return t.sign(PortClaims{Session: session, Node: node, Port: port, Scope: "port", RegisteredClaims: registered(expires)})
}

// VerifyPort checks a lab link's token (see parse) and returns its claims.
func (t *Tokens) VerifyPort(token string) (*PortClaims, error) {
	claims := &PortClaims{}
	if err := t.parse(token, claims); err != nil {
		return nil, err
	}
	if claims.Scope != "port" || claims.Session == "" || claims.Node == "" || claims.Port < 1 || claims.Port > 65535 {
		return nil, errors.New("not a lab link token")
	}
	return claims, nil
}
