package session

import (
	"context"
	"time"
)

// Store keeps sessions where every Sandlot process of a deployment sees them (session/redisstore: Redis). Every
// change of a session's state is atomic, so that several processes never end a session twice or give a node name
// to two nodes.
type Store interface {
	Ping(ctx context.Context) error

	// Create stores a new session; a starting one gets a setup lease of setupLease.
	Create(ctx context.Context, sess Session, setupLease time.Duration) error
	// Get reads a session and its nodes: ErrNotFound if there is none.
	Get(ctx context.Context, id string) (Session, error)
	// Live lists the sessions not ended; IsLive says whether one is.
	Live(ctx context.Context) ([]string, error)
	IsLive(ctx context.Context, id string) (bool, error)
	// Activate marks a starting session active and drops its setup lease (ErrConflict unless it is starting).
	Activate(ctx context.Context, id string) error
	// Extend moves a live session's deadline.
	Extend(ctx context.Context, id string, to time.Time) error

	// ClaimEnd ends a session if no one has: only one caller ever gets ok, with the session as it was; it must
	// then tear the session down and call FinishEnd. The teardown lease runs until leaseUntil.
	ClaimEnd(ctx context.Context, id string, reason EndReason, message string, leaseUntil time.Time) (Session, bool, error)
	// TakeOverEnding claims a teardown whose lease ran out (its process died). Only one caller gets true.
	TakeOverEnding(ctx context.Context, id string, leaseUntil time.Time) (bool, error)
	FinishEnd(ctx context.Context, id string) error
	// Due lists sessions whose deadline has passed (at most limit); StaleEndings, teardowns whose lease ran out;
	// AbandonedSetups, starting sessions whose setup lease expired.
	Due(ctx context.Context, now time.Time, limit int64) ([]string, error)
	StaleEndings(ctx context.Context, now time.Time) ([]string, error)
	AbandonedSetups(ctx context.Context) ([]string, error)
	RenewSetup(ctx context.Context, id string, ttl time.Duration) error

	// AllocateName reserves the lowest free node name of a live session (or the hostname, if it is a free node
	// name) and records the node as being created.
	AllocateName(ctx context.Context, id, hostname string) (string, error)
	PutInstance(ctx context.Context, id string, in Instance) error
	DeleteInstance(ctx context.Context, id, name string) error
}
