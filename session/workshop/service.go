package workshop

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sandlot/sandlot/quota"
	"github.com/sandlot/sandlot/session"
)

// Limits of what a workshop is made with.
const (
	MaxSeats     = 500
	MaxTitle     = 200
	MaxName      = 40
	MaxBroadcast = 500
)

// endGrace is how much longer than its workshop's window an attendee's session may live, so that the workshop's
// end (reason workshop_ended), not the session's own deadline, is what ends it.
const endGrace = 30 * time.Second

// startLease is how long a process has to make an attendee's session before another may try.
const startLease = 2 * time.Minute

// tokenLife is how long an instructor's and an attendee's tokens work after the workshop's window (or its
// creation, without a window): long enough to download the attendance afterwards.
const tokenLife = 7 * 24 * time.Hour

// Service runs workshops over the session service.
type Service struct {
	store    Store
	sessions *session.Service
	quota    *quota.Quota
	log      *slog.Logger
	hub      *hub
	wake     chan struct{} // the reaper looks again now: a seat freed
	starting sync.Map      // attendees whose sessions this process's reaper is making
	full     sync.Map      // workshop -> time.Time: the host was full; its queue waits until then or a seat frees
	asked    sync.Map      // workshops that asked the warm pool for seats (pool.go)
	heard    func()        // tells the pool that the workshops have asked for what they need
}

// fullBackoff is how long a workshop's queue waits after the host was full, unless a session ends sooner.
const fullBackoff = 5 * time.Second

// New returns a Service; Run must run for workshops to start, end and fan out their events.
func New(store Store, sessions *session.Service, q *quota.Quota, log *slog.Logger) *Service {
	s := &Service{store: store, sessions: sessions, quota: q, log: log, hub: newHub(), wake: make(chan struct{}, 1),
		heard: sessions.PoolDemandFrom("workshops")}
	sessions.OnEnd(s.sessionEnded)
	sessions.OnInput(s.typed)
	return s
}

// Ready is closed once Run listens for events: what happens from then on reaches every watcher.
func (s *Service) Ready() <-chan struct{} { return s.hub.ready }

// CreateRequest is what an admin asks for.
type CreateRequest struct {
	Title    string
	Template string
	Seats    int
	Duration time.Duration // each attendee's session; 0: the default (or the window)
	StartsAt *time.Time
	EndsAt   *time.Time
	Images   []string // pulled into every attendee's nodes (from the image cache) as they are made
}

// Created is a new workshop with its instructor's token and the paths of its pages.
type Created struct {
	Workshop
	JoinPath        string
	InstructorPath  string
	InstructorToken string
}

// Create makes a workshop with a fresh access code.
func (s *Service) Create(ctx context.Context, req CreateRequest) (Created, error) {
	now := time.Now().UTC()
	req.Title = strings.TrimSpace(req.Title)
	switch {
	case req.Title == "" || utf8.RuneCountInString(req.Title) > MaxTitle:
		return Created{}, fmt.Errorf("%w: title: 1 to %d characters", session.ErrInvalid, MaxTitle)
	case !s.knownTemplate(req.Template):
		return Created{}, fmt.Errorf("%w: unknown template %q (see GET /api/v1/templates)", session.ErrInvalid, req.Template)
	case req.Seats < 1 || req.Seats > MaxSeats:
		return Created{}, fmt.Errorf("%w: seats %d (1 to %d)", session.ErrInvalid, req.Seats, MaxSeats)
	case req.Duration < 0 || req.Duration > s.sessions.MaxDuration():
		return Created{}, fmt.Errorf("%w: duration %s (at most %s, the server's --max-duration)", session.ErrInvalid,
			req.Duration, s.sessions.MaxDuration())
	case req.Duration > 0 && req.Duration < time.Minute:
		return Created{}, fmt.Errorf("%w: duration %s (at least 1m)", session.ErrInvalid, req.Duration)
	case req.StartsAt != nil && req.EndsAt == nil:
		return Created{}, fmt.Errorf("%w: starts_at needs ends_at", session.ErrInvalid)
	}
	if err := session.CheckImages(req.Images); err != nil {
		return Created{}, err
	}
	if req.EndsAt != nil {
		start := now
		if req.StartsAt != nil {
			start = req.StartsAt.UTC()
		}
		switch {
		case !req.EndsAt.After(now):
			return Created{}, fmt.Errorf("%w: ends_at %s is not in the future", session.ErrInvalid, req.EndsAt.Format(time.RFC3339))
		case !req.EndsAt.After(start):
			return Created{}, fmt.Errorf("%w: ends_at must be after starts_at", session.ErrInvalid)
		case req.EndsAt.Sub(start) > s.sessions.MaxDuration():
			return Created{}, fmt.Errorf("%w: the window (%s) is longer than a session may live (%s, the server's --max-duration)",
				session.ErrInvalid, req.EndsAt.Sub(start).Round(time.Second), s.sessions.MaxDuration())
		}
	}
	w := Workshop{ID: session.NewID(), Title: req.Title, Template: req.Template, Seats: req.Seats, State: StateOpen,
		CreatedAt: now, Images: req.Images}
	if req.Duration > 0 {
		w.Duration = req.Duration.String()
	}
	if req.StartsAt != nil {
		t := req.StartsAt.UTC()
		w.StartsAt = &t
	}
	if req.EndsAt != nil {
		t := req.EndsAt.UTC()
		w.EndsAt = &t
	}
	var err error
	for range 5 { // a taken code is unlikely (31^6 of them); try another
		w.Code = NewCode()
		if err = s.store.CreateWorkshop(ctx, w); !errors.Is(err, session.ErrConflict) {
			break
		}
	}
	if err != nil {
		return Created{}, err
	}
	token, err := s.sessions.Issue(session.Grant{Scope: session.ScopeInstructor, Workshop: w.ID, Expires: w.tokenExpiry()})
	if err != nil {
		return Created{}, err
	}
	s.log.Info("workshop created", "workshop", w.ID, "title", w.Title, "seats", w.Seats, "template", w.Template)
	return Created{Workshop: w, JoinPath: "/w/" + w.Code, InstructorPath: "/w/" + w.ID + "/instructor#token=" + token,
		InstructorToken: token}, nil
}

func (w Workshop) tokenExpiry() time.Time {
	if w.EndsAt != nil {
		return w.EndsAt.Add(tokenLife)
	}
	return w.CreatedAt.Add(tokenLife)
}

func (s *Service) knownTemplate(name string) bool {
	for _, t := range s.sessions.Templates() {
		if t.Name == name {
			return true
		}
	}
	return false
}

// Get reads a workshop.
func (s *Service) Get(ctx context.Context, id string) (Workshop, error) {
	return s.store.Workshop(ctx, id)
}

// List lists every workshop, newest first.
func (s *Service) List(ctx context.Context) ([]Workshop, error) { return s.store.Workshops(ctx) }

// Detail is a workshop as its instructor sees it.
type Detail struct {
	Workshop
	Attendees []Attendee `json:"attendees"`
	Messages  []Message  `json:"messages"`
}

// Detail reads a workshop with its attendees (their nodes and time left as stored) and broadcasts.
func (s *Service) Detail(ctx context.Context, id string) (Detail, error) {
	w, err := s.store.Workshop(ctx, id)
	if err != nil {
		return Detail{}, err
	}
	as, err := s.store.Attendees(ctx, id)
	if err != nil {
		return Detail{}, err
	}
	for i := range as {
		as[i] = s.withSession(ctx, w, as[i])
	}
	msgs, err := s.store.Messages(ctx, id)
	return Detail{Workshop: w, Attendees: as, Messages: msgs}, err
}

// withSession adds what an active attendee's session shows: its nodes and when it ends.
func (s *Service) withSession(ctx context.Context, w Workshop, a Attendee) Attendee {
	if a.State != Active || a.SessionID == "" {
		return a
	}
	sess, err := s.sessions.Stored(ctx, a.SessionID)
	if err != nil {
		return a
	}
	a.Nodes = []Node{}
	for _, in := range sess.Instances {
		a.Nodes = append(a.Nodes, Node{Name: in.Name, Status: string(in.Status)})
	}
	expires := sess.ExpiresAt
	if w.EndsAt != nil && w.EndsAt.Before(expires) {
		expires = *w.EndsAt
	}
	a.ExpiresAt = &expires
	return a
}

// Info is what the page of an attendee's session shows of its workshop.
type Info struct {
	ID       string     `json:"id"`
	Title    string     `json:"title"`
	EndsAt   *time.Time `json:"ends_at,omitempty"`
	Messages []Message  `json:"messages"`
}

// Info reads what a session's page shows of workshop id.
func (s *Service) Info(ctx context.Context, id string) (Info, error) {
	w, err := s.store.Workshop(ctx, id)
	if err != nil {
		return Info{}, err
	}
	msgs, err := s.store.Messages(ctx, id)
	return Info{ID: w.ID, Title: w.Title, EndsAt: w.EndsAt, Messages: msgs}, err
}

// Public is what anyone with a workshop's code sees before joining.
type Public struct {
	Title     string     `json:"title"`
	StartsAt  *time.Time `json:"starts_at,omitempty"`
	EndsAt    *time.Time `json:"ends_at,omitempty"`
	State     string     `json:"state"` // open, locked, ended
	SeatsLeft int        `json:"seats_left"`
}

// Lookup reads the workshop with code as the public sees it. An unknown code costs the same reads as a known one,
// so that timing tells nothing the status does not.
func (s *Service) Lookup(ctx context.Context, code, client string) (Public, error) {
	w, err := s.byCode(ctx, code, client)
	if err != nil {
		_, _ = s.store.SeatsTaken(ctx, "unknown")
		return Public{}, err
	}
	taken, err := s.store.SeatsTaken(ctx, w.ID)
	if err != nil {
		return Public{}, err
	}
	p := Public{Title: w.Title, StartsAt: w.StartsAt, EndsAt: w.EndsAt, State: "open", SeatsLeft: max(w.Seats-taken, 0)}
	switch {
	case w.over(time.Now()):
		p.State, p.SeatsLeft = "ended", 0
	case w.Locked:
		p.State = "locked"
	}
	return p, nil
}

// byCode finds the workshop of an access code. An unknown code counts against the client's join rate, so that
// nobody can try codes faster than a room joins (the rate's refusal is the answer then).
func (s *Service) byCode(ctx context.Context, code, client string) (Workshop, error) {
	w, err := s.store.WorkshopByCode(ctx, normalizeCode(code))
	if errors.Is(err, session.ErrNotFound) {
		if qerr := s.quota.AllowJoin(ctx, client, "unknown-code/"+session.NewID()); qerr != nil {
			return Workshop{}, qerr
		}
	}
	return w, err
}

// CheckName trims a display name and says whether it may be shown: 1 to MaxName characters, none of them a
// control character.
func CheckName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if !utf8.ValidString(name) || name == "" || utf8.RuneCountInString(name) > MaxName {
		return "", fmt.Errorf("%w: name: 1 to %d characters", session.ErrInvalid, MaxName)
	}
	for _, r := range name {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Cf, r) {
			return "", fmt.Errorf("%w: name: no control or invisible formatting characters", session.ErrInvalid)
		}
	}
	return name, nil
}

// CodeAlphabet are the characters of access codes: digits and capitals a person cannot mistake for another
// (no 0, O, 1, I, L).
const CodeAlphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

// CodeLength is how many characters an access code has.
const CodeLength = 6

// NewCode is a fresh random access code.
func NewCode() string {
	b := make([]byte, CodeLength)
	out := make([]byte, CodeLength)
	for i := 0; i < CodeLength; {
		_, _ = rand.Read(b[:1])
		if int(b[0]) < 256-256%len(CodeAlphabet) { // no bias toward the first characters
			out[i] = CodeAlphabet[int(b[0])%len(CodeAlphabet)]
			i++
		}
	}
	return string(out)
}

// normalizeCode reads a code as a person may type it: any case, with spaces or dashes.
func normalizeCode(code string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return unicode.ToUpper(r)
	}, code)
}
