// Package workshop runs workshops: an instructor's room of attendees, each with a session of one template,
// counted against the workshop's seats (not against anyone's per-address quota). Attendees join with a short code
// and a name; they wait for the start of a timed training, queue when seats or the host's capacity run out, and
// are let in, in order, when a place frees up. The instructor watches, broadcasts, extends, ends, locks and adds
// seats; every change is fanned out at once to those who watch (Events), across every Sandlot process of a
// deployment.
//
// Workshops live in the Store (session/redisstore: Redis), where seats and queue order change only atomically, so
// that a restart loses nothing and two processes never give one seat twice. Sessions are made and ended through
// session.Service, like any other.
package workshop

import (
	"context"
	"errors"
	"time"
)

// State is where a workshop is: open (people may join, unless it is locked) until it ends.
type State string

// The workshop states.
const (
	StateOpen  State = "open"
	StateEnded State = "ended"
)

// AttendeeState is where an attendee is.
type AttendeeState string

// The attendee states. A waiting attendee holds a seat and gets a session at the start (or as soon as it is
// made); a queued one waits for a seat, or for the host to have room.
const (
	Waiting AttendeeState = "waiting"
	Queued  AttendeeState = "queued"
	Active  AttendeeState = "active"
	Ended   AttendeeState = "ended"
)

// Workshop is one room: what its attendees get, how many, and when.
type Workshop struct {
	ID        string     `json:"id"`
	Code      string     `json:"code"`
	Title     string     `json:"title"`
	Template  string     `json:"template"`
	Images    []string   `json:"images,omitempty"` // pulled into every attendee's nodes as they are made
	Seats     int        `json:"seats"`
	Duration  string     `json:"duration,omitempty"` // each attendee's session, unless the window ends first
	StartsAt  *time.Time `json:"starts_at,omitempty"`
	EndsAt    *time.Time `json:"ends_at,omitempty"`
	Locked    bool       `json:"locked"`
	State     State      `json:"state"`
	CreatedAt time.Time  `json:"created_at"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	// DemoSession is the instructor's demo session (see StartDemo), if one was started.
	DemoSession string `json:"demo_session_id,omitempty"`
}

// started says whether attendees get their sessions now.
func (w Workshop) started(now time.Time) bool {
	return w.State == StateOpen && (w.StartsAt == nil || !now.Before(*w.StartsAt))
}

// over says whether the workshop has ended, or its window has.
func (w Workshop) over(now time.Time) bool {
	return w.State == StateEnded || w.EndsAt != nil && !now.Before(*w.EndsAt)
}

// Attendee is one person in a workshop. Position, Nodes and ExpiresAt are read from the queue and the session
// when shown, not stored.
type Attendee struct {
	ID           string        `json:"id"`
	Name         string        `json:"name"`
	State        AttendeeState `json:"state"`
	Position     int           `json:"position,omitempty"` // in the queue, from 1
	SessionID    string        `json:"session_id,omitempty"`
	Nodes        []Node        `json:"nodes,omitempty"`
	ExpiresAt    *time.Time    `json:"expires_at,omitempty"`
	LastActivity *time.Time    `json:"last_activity,omitempty"` // their last keystroke in their session, to within session.InputEvery
	LastSeen     *time.Time    `json:"last_seen,omitempty"`     // their page last asked for its state
	JoinedAt     time.Time     `json:"joined_at"`
	EndedAt      *time.Time    `json:"ended_at,omitempty"`
	EndReason    string        `json:"end_reason,omitempty"`
}

// Node is a node of an attendee's session, as the instructor sees it.
type Node struct {
	Name   string `json:"name"`
	Status string `json:"status"`
}

// Message is a broadcast of the instructor.
type Message struct {
	At   time.Time `json:"at"`
	Text string    `json:"text"`
}

// Event is a change that those who watch a workshop are told about: Kind is "attendee" (Attendee changed),
// "activity" (an attendee typed: only their last activity changed), "workshop" (the workshop did) or "message" (a
// broadcast). Data is the changed thing as JSON: the Attendee for both attendee kinds.
type Event struct {
	Workshop string `json:"workshop"`
	Attendee string `json:"attendee,omitempty"`
	Kind     string `json:"kind"`
	Data     []byte `json:"data"`
}

// The kinds of events.
const (
	KindAttendee = "attendee"
	KindActivity = "activity"
	KindWorkshop = "workshop"
	KindMessage  = "message"
)

// Store keeps workshops where every Sandlot process of a deployment sees them. Seats, the queue and each
// attendee's state change only atomically: a seat is never given twice, an attendee's session is made by one
// process only (ClaimStart), and a workshop is ended once.
type Store interface {
	// CreateWorkshop stores a new workshop under its code (session.ErrConflict if the code is taken).
	CreateWorkshop(ctx context.Context, w Workshop) error
	Workshop(ctx context.Context, id string) (Workshop, error)
	WorkshopByCode(ctx context.Context, code string) (Workshop, error)
	Workshops(ctx context.Context) ([]Workshop, error)
	// Live lists workshops not ended, and ended ones whose attendees are not all ended yet.
	Live(ctx context.Context) ([]string, error)
	// Update changes a live workshop (lock, seats, ends_at) and returns it.
	Update(ctx context.Context, id string, change Change) (Workshop, error)
	// SetDemo makes session the demo of an open workshop if its demo is still old; it reports whether it did.
	SetDemo(ctx context.Context, id, old, session string) (bool, error)
	// MarkEnded ends a workshop; only one caller gets true. Retire takes an ended one off the live list.
	MarkEnded(ctx context.Context, id string, at time.Time) (bool, error)
	Retire(ctx context.Context, id string) error

	// Join adds an attendee: seated (Waiting) if a seat is free, else Queued at the end of the queue. It refuses
	// a locked workshop (ErrLocked) or an ended one (ErrOver). A seated attendee's session is claimed for the
	// caller until claim (as ClaimStart), unless claim is zero.
	Join(ctx context.Context, id string, a Attendee, claim time.Time) (Attendee, error)
	Attendee(ctx context.Context, id, attendee string) (Attendee, error)
	// Attendees lists a workshop's attendees in the order they joined, with queue positions.
	Attendees(ctx context.Context, id string) ([]Attendee, error)
	// SeatsTaken counts the seats held (by waiting and active attendees).
	SeatsTaken(ctx context.Context, id string) (int, error)
	// Pending lists the seated attendees who have no session yet.
	Pending(ctx context.Context, id string) ([]string, error)
	// Promote seats queued attendees, in order, while seats are free; it returns those it seated.
	Promote(ctx context.Context, id string) ([]string, error)
	// ClaimStart gives one caller the making of a pending attendee's session, until lease; the claim ends with
	// Activate, Requeue or its lease.
	ClaimStart(ctx context.Context, id, attendee string, lease time.Time) (bool, error)
	// Activate records a claimed attendee's session (ErrEnded if the workshop or the attendee ended meanwhile).
	Activate(ctx context.Context, id, attendee, sessionID string) error
	// Requeue gives a claimed attendee's seat back and puts them first in the queue (the host was full).
	Requeue(ctx context.Context, id, attendee string) error
	// Finish ends an attendee (their seat freed) for reason: when sessionID is given, only if that is their
	// session. It reports whether this call ended them.
	Finish(ctx context.Context, id, attendee, sessionID, reason string, at time.Time) (bool, error)
	// AttendeeOf names the attendee whose session sessionID is.
	AttendeeOf(ctx context.Context, id, sessionID string) (string, error)
	// Touch records that an attendee's page was there at (LastSeen); Typed, that they typed at (LastActivity).
	Touch(ctx context.Context, id, attendee string, at time.Time) error
	Typed(ctx context.Context, id, attendee string, at time.Time) error

	AddMessage(ctx context.Context, id string, m Message) error
	Messages(ctx context.Context, id string) ([]Message, error)

	// Publish tells every process's Subscribe of an event; Subscribe delivers them until ctx is done, once it is
	// listening.
	Publish(ctx context.Context, e Event) error
	Subscribe(ctx context.Context) (<-chan Event, error)
}

// Change is what Update changes; nil fields stay as they are.
type Change struct {
	Locked *bool
	Seats  *int
	EndsAt *time.Time
}

// Errors of joining.
var (
	ErrLocked = errors.New("the workshop is locked: its instructor lets nobody join now")
	ErrOver   = errors.New("the workshop has ended")
)
