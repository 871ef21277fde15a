// Package session holds what a learner holds: a session with a token, a deadline and a few nodes. Its Service
// starts sessions (admitted by package quota), makes their nodes (through Nodes: package instance), sets up
// templates and forms their swarms, ends sessions on time (exactly once across several Sandlot processes), keeps
// their terminals and watches their ports, and mints and checks every token Sandlot issues (a Grant, with a typed
// Scope).
//
// The code that talks to a dependency lives beside it: session/redisstore keeps sessions in Redis (Store),
// session/api serves the HTTP API, session/labproxy proxies to ports of nodes, session/memnodes is an in-memory
// Nodes for tests. Those talk to the Service only through its exported methods.
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

// The states. A session is starting while its template is being set up, active until it ends, then ended. A
// session made ahead for the warm pool is pooled once set up: no client holds it and no deadline runs on it until
// it is claimed (then it is active).
const (
	StateStarting State = "starting"
	StateActive   State = "active"
	StateEnded    State = "ended"
	StatePooled   State = "pooled"
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
	// EndWorkshopEnded: the session belonged to a workshop that ended (its window closed, or its instructor ended
	// it).
	EndWorkshopEnded EndReason = "workshop_ended"
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
	Client       string     `json:"client,omitempty"`      // who holds it, for quotas: an address or launch:<subject>
	Workshop     string     `json:"workshop_id,omitempty"` // the workshop whose attendee holds it, if any
	// Images are pulled into each of its nodes' engines as the node is made (besides its template's), from the
	// image cache: a workshop's preloaded images.
	Images    []string   `json:"images,omitempty"`
	Instances []Instance `json:"instances"`
}

// Instance is one node of a session as the API shows it.
type Instance struct {
	Name      string     `json:"name"`
	Hostname  string     `json:"hostname"`
	IP        string     `json:"ip,omitempty"`
	Status    NodeStatus `json:"status"`
	Ports     []int      `json:"ports"`
	CreatedAt time.Time  `json:"created_at"`
}

// NodeStatus is where a node is: being made, then what its container's state is, and removed once its session
// ended.
type NodeStatus string

// The node statuses Sandlot sets itself; the others are the engine's container states (exited, restarting, ...).
const (
	NodeCreating NodeStatus = "creating"
	NodeRunning  NodeStatus = "running"
	NodeRemoved  NodeStatus = "removed"
)

// Action is what can be done to a node of a live session.
type Action string

// The node actions.
const (
	ActionStart   Action = "start"
	ActionStop    Action = "stop"
	ActionRestart Action = "restart"
)

// Errors the API maps to statuses. Quota refusals are *quota.Rejection.
var (
	ErrNotFound = errors.New("not found")
	ErrEnded    = errors.New("session ended")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid")
)

// SortInstances sorts nodes by the number in their names (node2 before node10).
func SortInstances(in []Instance) {
	sort.Slice(in, func(i, j int) bool { return nodeNumber(in[i].Name) < nodeNumber(in[j].Name) })
}

func nodeNumber(name string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(name, "node"))
	return n
}
