// Package session holds what a learner holds: a session with a token, a deadline and a few nodes. It keeps every
// session's state in Redis, ends sessions on time (exactly once across several Sandlot processes), admits them
// through package quota, makes their nodes through package instance, and serves the HTTP API.
package session

import (
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"
)

// State is where a session is in its life.
type State string

// The states. A session is starting while its template is being set up, active until it ends, then ended.
const (
	StateStarting State = "starting"
	StateActive   State = "active"
	StateEnded    State = "ended"
)

// EndReason says why a session ended.
type EndReason string

// The end reasons.
const (
	EndExpired EndReason = "expired"
	EndDeleted EndReason = "deleted"
	EndIdle    EndReason = "idle"
	EndError   EndReason = "error"
	EndAdmin   EndReason = "admin"
)

// Session is one learner's lab.
type Session struct {
	ID           string     `json:"id"`
	Template     string     `json:"template,omitempty"`
	State        State      `json:"state"`
	CreatedAt    time.Time  `json:"created_at"`
	ExpiresAt    time.Time  `json:"expires_at"`
	MaxExpiresAt time.Time  `json:"max_expires_at"`
	EndReason    EndReason  `json:"end_reason,omitempty"`
	EndMessage   string     `json:"end_message,omitempty"`
	EndedAt      *time.Time `json:"ended_at,omitempty"`
	MaxInstances int        `json:"max_instances"`
	Client       string     `json:"client,omitempty"` // who holds it, for quotas: an address or launch:<subject>
	Instances    []Instance `json:"instances"`
}

// Instance is one node of a session as the API shows it.
type Instance struct {
	Name      string    `json:"name"`
	Hostname  string    `json:"hostname"`
	IP        string    `json:"ip,omitempty"`
	Status    string    `json:"status"`
	Ports     []int     `json:"ports"`
	CreatedAt time.Time `json:"created_at"`
}

// Errors the API maps to statuses. Quota refusals are *quota.Rejection.
var (
	ErrNotFound = errors.New("not found")
	ErrEnded    = errors.New("session ended")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid")
)

func sortInstances(in []Instance) {
	sort.Slice(in, func(i, j int) bool { return nodeNumber(in[i].Name) < nodeNumber(in[j].Name) })
}

func nodeNumber(name string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(name, "node"))
	return n
}
