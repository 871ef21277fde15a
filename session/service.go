package session

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sandlot/sandlot/images"
	"github.com/sandlot/sandlot/instance"
	"github.com/sandlot/sandlot/quota"
	"github.com/sandlot/sandlot/session/templates"
	"github.com/sandlot/sandlot/terminal"
)

// Config tunes sessions. Zero values mean the defaults.
type Config struct {
	DefaultDuration time.Duration // default 4 h
	MaxDuration     time.Duration // the longest a session may live, extensions included; default 8 h
	ExecTimeout     time.Duration // default 2 min
	ExecsPerSession int           // commands (exec) one session may run at once; default 4

	Pool      map[string]int // warm pool: ready sessions kept per template (see Claim, pool.go); none by default
	PoolFills int            // pooled sessions set up at once; default 2

	// Held shells (nodes that can hold them, see ShellHolder): the output a shell's holder keeps for a server
	// that comes back (default 1 MiB; the terminals' scrollback), and how long a shell may go without a server.
	ShellKeep   int
	ShellOrphan time.Duration // default 30 min
}

func (c Config) withDefaults() Config {
	if c.DefaultDuration == 0 {
		c.DefaultDuration = 4 * time.Hour
	}
	if c.MaxDuration == 0 {
		c.MaxDuration = 8 * time.Hour
	}
	if c.DefaultDuration > c.MaxDuration {
		c.DefaultDuration = c.MaxDuration
	}
	if c.ExecTimeout == 0 {
		c.ExecTimeout = 2 * time.Minute
	}
	if c.ExecsPerSession == 0 {
		c.ExecsPerSession = 4
	}
	if c.PoolFills == 0 {
		c.PoolFills = 2
	}
	return c
}

const (
	setupLease    = 6 * time.Second // a setup whose process stops renewing this is abandoned
	teardownLease = 2 * time.Minute // a teardown not finished by then is taken over
)

// Deps are what a Service works with.
type Deps struct {
	Store     Store
	Quota     *quota.Quota
	Nodes     Nodes
	Templates templates.Set
	Tokens    *Tokens
	Terminals *terminal.Manager
	Metrics   *Metrics
	Log       *slog.Logger
}

// Service runs sessions.
type Service struct {
	cfg       Config
	store     Store
	quota     *quota.Quota
	nodes     Nodes
	templates templates.Set
	tokens    *Tokens
	terminals *terminal.Manager
	ports     *portWatch
	metrics   *Metrics
	log       *slog.Logger

	execMu sync.Mutex
	execs  map[string]int // commands running now, by session

	endedMu sync.Mutex
	ended   []func(Session)

	input inputs // typing, reported to OnInput's hooks

	pool *pool // nil: no warm pool

	faults faultState // network faults this process set: their healing
}

// OnEnd calls f with every session this process ends (by End, the reaper included), after its teardown. f must
// not block for long; it runs in the ending caller's goroutine.
func (s *Service) OnEnd(f func(Session)) {
	s.endedMu.Lock()
	defer s.endedMu.Unlock()
	s.ended = append(s.ended, f)
}

// NewService wires a Service.
func NewService(cfg Config, d Deps) *Service {
	s := &Service{cfg: cfg.withDefaults(), store: d.Store, quota: d.Quota, nodes: d.Nodes, templates: d.Templates,
		tokens: d.Tokens, terminals: d.Terminals, metrics: d.Metrics, log: d.Log,
		ports: newPortWatch(d.Nodes.WatchPorts), execs: map[string]int{}}
	s.pool = s.newPool(s.cfg)
	return s
}

// CreateRequest is what a client asks for. Launch, when set, comes from a verified launch token and wins.
// Workshop, when set, makes the session an attendee's: it counts against the workshop's seats (its caller's
// business) and the host's capacity, not against any client's sessions or rate.
type CreateRequest struct {
	Template string
	Duration time.Duration // 0: the default
	Client   string
	Launch   *LaunchClaims
	Workshop string
	// Images are pulled into each node's engine as it is made, besides the template's (a workshop's preloaded
	// images). Such a session is never taken from the warm pool, whose nodes were made without them.
	Images []string
	// Origin, when set, is the listed origin (--public-origins) whose page asks for the session anonymously: the
	// origin's readers together are bounded too (quota.Limits.SessionsPerOrigin).
	Origin string
}

// Created is a new session, its token, and what its client holds.
type Created struct {
	Session Session
	Token   string
	Usage   quota.Usage
}

// Create starts a session: admitted by quota and stored with its deadline; its template (if any) is set up
// before it returns. A session whose setup fails is ended with reason error.
func (s *Service) Create(ctx context.Context, req CreateRequest) (Created, error) {
	start := time.Now()
	maxInstances := s.quota.Limits().InstancesPerSession
	if l := req.Launch; l != nil {
		req.Client = "launch:" + l.Subject
		if l.Template != "" {
			req.Template = l.Template
		}
		if l.Duration != "" {
			d, err := time.ParseDuration(l.Duration)
			if err != nil {
				return Created{}, fmt.Errorf("%w: launch token duration %q", ErrInvalid, l.Duration)
			}
			req.Duration = d
		}
		if l.MaxInstances > 0 && l.MaxInstances < maxInstances {
			maxInstances = l.MaxInstances
		}
	}
	if req.Duration == 0 {
		req.Duration = s.cfg.DefaultDuration
	}
	if req.Duration < time.Second || req.Duration > s.cfg.MaxDuration {
		return Created{}, fmt.Errorf("%w: duration %s (from 1s to %s)", ErrInvalid, req.Duration, s.cfg.MaxDuration)
	}
	var tmpl *templates.Template
	if req.Template != "" {
		t, ok := s.templates[req.Template]
		if !ok {
			return Created{}, fmt.Errorf("%w: unknown template %q (see GET /api/v1/templates)", ErrInvalid, req.Template)
		}
		if t.Nodes() > maxInstances {
			return Created{}, fmt.Errorf("%w: template %s has %d nodes, more than the %d a session may have",
				ErrInvalid, t.Name, t.Nodes(), maxInstances)
		}
		tmpl = &t
		if len(req.Images) > 0 {
			t.Images, t.PreloadIntoNodes = slices.Concat(t.NodeImages(), req.Images), true
		} else if c, ok, err := s.claim(ctx, req, maxInstances); ok || err != nil { // from the warm pool (pool.go), or refused
			return c, err
		}
	}
	if err := CheckImages(req.Images); err != nil {
		return Created{}, err
	}

	id := NewID()
	nodes := 0
	if tmpl != nil {
		nodes = tmpl.Nodes()
	}
	admitStart := time.Now()
	admit := s.admission(req)
	if req.Workshop != "" {
		req.Client, admit = "workshop:"+req.Workshop, s.quota.AdmitSeat
	}
	usage, err := admit(ctx, req.Client, id, nodes)
	s.metrics.quotaSeconds.Observe(time.Since(admitStart).Seconds())
	if err != nil {
		s.metrics.rejected(err)
		return Created{}, err
	}
	now := time.Now().UTC()
	sess := Session{ID: id, State: StateActive, CreatedAt: now, ExpiresAt: now.Add(req.Duration),
		MaxExpiresAt: now.Add(s.cfg.MaxDuration), MaxInstances: maxInstances, Client: req.Client,
		Workshop: req.Workshop, Images: req.Images}
	if tmpl != nil {
		sess.Template, sess.State = tmpl.Name, StateStarting
	}
	if err := s.store.Create(ctx, sess, setupLease); err != nil {
		_ = s.quota.EndSession(context.WithoutCancel(ctx), req.Client, id)
		return Created{}, err
	}
	token, err := s.tokens.Issue(Grant{Scope: ScopeSession, Session: id, Expires: sess.MaxExpiresAt})
	if err != nil {
		s.End(context.WithoutCancel(ctx), id, EndError, "could not issue a token")
		return Created{}, err
	}
	s.metrics.sessionsCreated.Inc()
	s.log.Info("session created", "session", id, "client", req.Client, "template", sess.Template,
		"expires_at", sess.ExpiresAt)
	if tmpl != nil {
		if err := s.setup(ctx, id, *tmpl, false); err != nil {
			s.End(context.WithoutCancel(ctx), id, EndError, "template setup failed: "+err.Error())
			return Created{}, err
		}
		if err := s.store.Activate(ctx, id); err != nil {
			return Created{}, err
		}
	}
	s.metrics.createSeconds.WithLabelValues(templateLabel(sess.Template)).Observe(time.Since(start).Seconds())
	if tmpl == nil {
		sess.Instances = []Instance{}
		return Created{Session: sess, Token: token, Usage: usage}, nil
	}
	out, err := s.Get(ctx, id)
	return Created{Session: out, Token: token, Usage: usage}, err
}

// MaxImages is how many images a session (a workshop) may have pulled into each of its nodes.
const MaxImages = 20

// CheckImages says what is wrong with a list of images to pull into a session's nodes, if anything.
func CheckImages(refs []string) error {
	if len(refs) > MaxImages {
		return fmt.Errorf("%w: images: %d of them, at most %d", ErrInvalid, len(refs), MaxImages)
	}
	for _, ref := range refs {
		if err := images.CheckRef(ref); err != nil {
			return fmt.Errorf("%w: images: %v", ErrInvalid, err)
		}
	}
	return nil
}

// admission is how req's session is admitted: against its client's limits, and its origin's when it has one.
func (s *Service) admission(req CreateRequest) func(ctx context.Context, client, session string, nodes int) (quota.Usage, error) {
	if req.Origin == "" || req.Launch != nil {
		return s.quota.AdmitSession
	}
	return func(ctx context.Context, client, session string, nodes int) (quota.Usage, error) {
		return s.quota.AdmitSessionFrom(ctx, client, req.Origin, session, nodes)
	}
}

// Get returns a session with its nodes' current status (from the engine, for live sessions) and the ports they
// listen on (watched from now on for a while).
func (s *Service) Get(ctx context.Context, id string) (Session, error) {
	sess, err := s.store.Get(ctx, id)
	if err != nil {
		return sess, err
	}
	if sess.State == StateEnded {
		for i := range sess.Instances {
			sess.Instances[i].Status = NodeRemoved
		}
		return sess, nil
	}
	if len(sess.Instances) == 0 {
		return sess, nil // nothing to ask the engine about
	}
	running, err := s.nodes.List(ctx, id)
	if err != nil {
		return sess, err
	}
	status := map[string]NodeStatus{}
	for _, in := range running {
		status[in.Name] = NodeStatus(in.Status)
	}
	for i, in := range sess.Instances {
		if st, ok := status[in.Name]; ok && in.Status != NodeCreating {
			sess.Instances[i].Status = st
		}
		if sess.Instances[i].Status == NodeRunning {
			sess.Instances[i].Ports = s.ports.Ports(id, in.Name)
		}
	}
	return sess, nil
}

// List returns every session not ended, as stored (without asking the engine).
func (s *Service) List(ctx context.Context) ([]Session, error) {
	ids, err := s.store.Live(ctx)
	if err != nil {
		return nil, err
	}
	out := []Session{}
	for _, id := range ids {
		if sess, err := s.store.Get(ctx, id); err == nil {
			out = append(out, sess)
		}
	}
	return out, nil
}

// End ends a session now for reason, unless it has ended already, and tears it down. It reports whether this call
// ended it.
func (s *Service) End(ctx context.Context, id string, reason EndReason, message string) (bool, error) {
	sess, ok, err := s.store.ClaimEnd(ctx, id, reason, message, time.Now().Add(teardownLease))
	if err != nil || !ok {
		return false, err
	}
	s.metrics.sessionsEnded.WithLabelValues(string(reason)).Inc()
	if reason == EndExpired {
		s.metrics.reaperLag.Observe(time.Since(sess.ExpiresAt).Seconds())
	}
	s.log.Info("session ended", "session", id, "reason", reason, "message", message)
	s.terminals.CloseMatching(id + "/")
	s.ports.Forget(id, "")
	s.input.forget(id)
	// The end is claimed: finish it even if the caller leaves (a client that drops its DELETE must not leave the
	// nodes to the reaper's takeover), but within the lease, after which another replica may take it over.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownLease)
	defer cancel()
	s.forgetFaults(id)
	err = s.teardown(ctx, sess)
	s.endedMu.Lock()
	hooks := s.ended
	s.endedMu.Unlock()
	sess.State, sess.EndReason = StateEnded, reason
	for _, f := range hooks {
		f(sess)
	}
	return true, err
}

// teardown removes everything of an ended session and gives its quota back. It may run again for the same
// session (after a crash); every step is idempotent.
func (s *Service) teardown(ctx context.Context, sess Session) error {
	if err := s.nodes.DeleteSession(ctx, sess.ID); err != nil {
		return fmt.Errorf("tear down session %s: %w", sess.ID, err)
	}
	if err := s.quota.EndSession(ctx, sess.Client, sess.ID); err != nil {
		return err
	}
	return s.store.FinishEnd(ctx, sess.ID)
}

// Extend moves a live session's deadline by d, up to its maximum.
func (s *Service) Extend(ctx context.Context, id string, d time.Duration) (Session, error) {
	sess, err := s.live(ctx, id)
	if err != nil {
		return sess, err
	}
	if d <= 0 {
		return sess, fmt.Errorf("%w: extend by %s", ErrInvalid, d)
	}
	to := sess.ExpiresAt.Add(d)
	if to.After(sess.MaxExpiresAt) {
		if !sess.ExpiresAt.Before(sess.MaxExpiresAt) {
			return sess, fmt.Errorf("%w: session %s is at its longest (%s)", ErrConflict, id, s.cfg.MaxDuration)
		}
		to = sess.MaxExpiresAt
	}
	if err := s.store.Extend(ctx, id, to); err != nil {
		return sess, err
	}
	return s.Get(ctx, id)
}

// AddInstance makes a node in a live session and returns it once its engine answers. The session's own maximum
// (from a launch token, say) holds as well as the deployment's.
func (s *Service) AddInstance(ctx context.Context, id, hostname string) (Instance, error) {
	sess, err := s.live(ctx, id)
	if err != nil {
		return Instance{}, err
	}
	if err := s.quota.ReserveInstance(ctx, id, sess.MaxInstances); err != nil {
		s.metrics.rejected(err)
		return Instance{}, err
	}
	if _, err := s.nodes.CreateNetwork(ctx, id); err != nil {
		_ = s.quota.ReleaseInstance(context.WithoutCancel(ctx), id)
		return Instance{}, fmt.Errorf("session network: %w", err)
	}
	in, err := s.createInstance(ctx, id, hostname)
	if err != nil {
		_ = s.quota.ReleaseInstance(context.WithoutCancel(ctx), id)
		return in, err
	}
	s.refault(ctx, id, "")
	return in, nil
}

// createInstance names, makes and records one node; its quota is already reserved.
func (s *Service) createInstance(ctx context.Context, id, hostname string) (Instance, error) {
	name, err := s.store.AllocateName(ctx, id, hostname)
	if err != nil {
		return Instance{}, err
	}
	var preload []string
	if sess, err := s.store.Get(ctx, id); err == nil { // a node added to a lab gets what the lab's nodes have
		preload = slices.Concat(s.templates[sess.Template].NodeImages(), sess.Images)
	}
	return s.makeInstance(ctx, id, name, hostname, preload)
}

// makeInstance makes and records the node a name was allocated for, with images pulled into its engine.
func (s *Service) makeInstance(ctx context.Context, id, name, hostname string, preload []string) (Instance, error) {
	start := time.Now()
	made, err := s.nodes.Create(ctx, id, instance.Spec{Name: name, Hostname: hostname, Preload: preload,
		Started: func() { s.prewarm(id, name) }})
	if err != nil {
		_ = s.store.DeleteInstance(context.WithoutCancel(ctx), id, name)
		if errors.Is(err, instance.ErrInvalid) {
			return Instance{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		return Instance{}, fmt.Errorf("make %s: %w", name, err)
	}
	in := Instance{Name: name, Hostname: made.Hostname, IP: made.IP.String(), Status: NodeStatus(made.Status),
		Ports: []int{}, CreatedAt: time.Now().UTC()}
	if err := s.store.PutInstance(ctx, id, in); err != nil {
		return Instance{}, err
	}
	// The session may have ended while the node was being made; its teardown may have missed this node.
	if live, err := s.store.IsLive(ctx, id); err == nil && !live {
		_ = s.nodes.Delete(context.WithoutCancel(ctx), id, name)
		return Instance{}, fmt.Errorf("%w: session %s ended while %s was being made", ErrEnded, id, name)
	}
	s.metrics.instanceSeconds.Observe(time.Since(start).Seconds())
	return in, nil
}

// RemoveInstance removes a node of a live session.
func (s *Service) RemoveInstance(ctx context.Context, id, name string) error {
	if _, err := s.LiveInstance(ctx, id, name); err != nil {
		return err
	}
	s.terminals.CloseMatching(id + "/" + name + "/")
	s.ports.Forget(id, name)
	if err := s.nodes.Delete(ctx, id, name); err != nil && !errors.Is(err, instance.ErrNotFound) {
		return err
	}
	if err := s.store.DeleteInstance(ctx, id, name); err != nil {
		return err
	}
	s.refault(ctx, id, name)
	return s.quota.ReleaseInstance(ctx, id)
}

// Act stops, starts or restarts a node of a live session.
func (s *Service) Act(ctx context.Context, id, name string, action Action) (Instance, error) {
	if _, err := s.LiveInstance(ctx, id, name); err != nil {
		return Instance{}, err
	}
	var err error
	switch action {
	case ActionStart:
		err = s.nodes.Start(ctx, id, name)
	case ActionStop:
		err = s.nodes.Stop(ctx, id, name)
	case ActionRestart:
		err = s.nodes.Restart(ctx, id, name)
	default:
		return Instance{}, fmt.Errorf("%w: action %q", ErrInvalid, action)
	}
	if err != nil {
		return Instance{}, err
	}
	if action != ActionStop {
		s.refault(ctx, id, "") // a started node has a new link
	}
	sess, err := s.Get(ctx, id)
	if err != nil {
		return Instance{}, err
	}
	for _, in := range sess.Instances {
		if in.Name == name {
			return in, nil
		}
	}
	return Instance{}, fmt.Errorf("%w: %s", ErrNotFound, name)
}

// ErrTooManyExecs says a session runs as many commands as it may at once.
var ErrTooManyExecs = errors.New("too many commands at once")

// Exec runs a command in a node of a live session, without a terminal, keeping at most maxOutput bytes of each of
// its streams. A session runs at most Config.ExecsPerSession commands at once (more is ErrTooManyExecs); a command
// ends in the node when ctx does or after Config.ExecTimeout.
func (s *Service) Exec(ctx context.Context, id, name string, cmd []string, maxOutput int) (instance.ExecResult, error) {
	if _, err := s.LiveInstance(ctx, id, name); err != nil {
		return instance.ExecResult{}, err
	}
	s.execMu.Lock()
	if s.execs[id] >= s.cfg.ExecsPerSession {
		s.execMu.Unlock()
		return instance.ExecResult{}, fmt.Errorf("%w: session %s runs %d commands already (at most %d at once)",
			ErrTooManyExecs, id, s.cfg.ExecsPerSession, s.cfg.ExecsPerSession)
	}
	s.execs[id]++
	s.execMu.Unlock()
	defer func() {
		s.execMu.Lock()
		if s.execs[id]--; s.execs[id] == 0 {
			delete(s.execs, id)
		}
		s.execMu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ExecTimeout)
	defer cancel()
	return s.nodes.Exec(ctx, id, name, cmd, instance.ExecOptions{MaxOutput: maxOutput})
}

// Setup makes a template's nodes in a live session that has none yet, and forms its swarm.
func (s *Service) Setup(ctx context.Context, id, template string) (Session, error) {
	sess, err := s.live(ctx, id)
	if err != nil {
		return sess, err
	}
	t, ok := s.templates[template]
	if !ok {
		return sess, fmt.Errorf("%w: unknown template %q (see GET /api/v1/templates)", ErrInvalid, template)
	}
	if len(sess.Instances) > 0 {
		return sess, fmt.Errorf("%w: session %s has nodes already; a template sets up an empty session", ErrConflict, id)
	}
	if t.Nodes() > sess.MaxInstances {
		return sess, fmt.Errorf("%w: template %s has %d nodes, more than the %d this session may have",
			ErrInvalid, t.Name, t.Nodes(), sess.MaxInstances)
	}
	for i := 0; i < t.Nodes(); i++ {
		if err := s.quota.ReserveInstance(ctx, id, sess.MaxInstances); err != nil {
			for ; i > 0; i-- {
				_ = s.quota.ReleaseInstance(context.WithoutCancel(ctx), id)
			}
			s.metrics.rejected(err)
			return sess, err
		}
	}
	if err := s.setup(ctx, id, t, true); err != nil {
		return sess, err
	}
	return s.Get(ctx, id)
}

// Authorize checks a token (any Sandlot signs, or the admin token) and says what it grants.
func (s *Service) Authorize(token string) (Grant, error) { return s.tokens.Verify(token) }

// VerifyLaunch checks an integrator's launch token.
func (s *Service) VerifyLaunch(token string) (*LaunchClaims, error) {
	return s.tokens.VerifyLaunch(token)
}

// IsAdmin reports whether token is the admin token.
func (s *Service) IsAdmin(token string) bool { return s.tokens.IsAdmin(token) }

// ViewerLink issues a token that may watch a live session's terminals, valid as long as the session may live.
func (s *Service) ViewerLink(ctx context.Context, id string) (Grant, string, error) {
	sess, err := s.live(ctx, id)
	if err != nil {
		return Grant{}, "", err
	}
	g := Grant{Scope: ScopeViewer, Session: id, Expires: sess.MaxExpiresAt}
	token, err := s.tokens.Issue(g)
	return g, token, err
}

// PortLink issues a lab link's token for a port of a node of a live session: valid as long as the session may
// live, or for d if that is shorter (a share link).
func (s *Service) PortLink(ctx context.Context, id, name string, port int, d time.Duration) (Grant, string, error) {
	if port < 1 || port > 65535 {
		return Grant{}, "", fmt.Errorf("%w: port %d (1 to 65535)", ErrInvalid, port)
	}
	sess, err := s.LiveInstance(ctx, id, name)
	if err != nil {
		return Grant{}, "", err
	}
	g := Grant{Scope: ScopePort, Session: id, Node: name, Port: port, Expires: sess.MaxExpiresAt}
	if d > 0 && time.Now().Add(d).Before(g.Expires) {
		g.Expires = time.Now().Add(d)
	}
	token, err := s.tokens.Issue(g)
	return g, token, err
}

// NodeAddress is the session address of a node of a live session.
func (s *Service) NodeAddress(ctx context.Context, id, name string) (string, error) {
	sess, err := s.LiveInstance(ctx, id, name)
	if err != nil {
		return "", err
	}
	for _, in := range sess.Instances {
		if in.Name == name {
			return in.IP, nil
		}
	}
	return "", fmt.Errorf("%w: no node %s in session %s", ErrNotFound, name, id)
}

// Usage is what the client of a session holds now, by quota.
func (s *Service) Usage(ctx context.Context, sess Session) (quota.Usage, error) {
	return s.quota.Usage(ctx, sess.Client, sess.ID)
}

// Templates are the templates a session may be set up with, by name.
func (s *Service) Templates() []templates.Template { return s.templates.List() }

// NodeLimits are the resources of one node.
func (s *Service) NodeLimits() instance.Limits { return s.nodes.Limits() }

// Metrics are the service's metrics.
func (s *Service) Metrics() *Metrics { return s.metrics }

// Ready says whether what the service depends on answers: the store and the engine.
func (s *Service) Ready(ctx context.Context) error {
	if err := s.store.Ping(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return s.nodes.Ping(ctx)
}

// live returns a session that has not ended.
func (s *Service) live(ctx context.Context, id string) (Session, error) {
	sess, err := s.store.Get(ctx, id)
	if err != nil {
		return sess, err
	}
	if sess.State == StateEnded {
		return sess, fmt.Errorf("%w: session %s ended (%s)", ErrEnded, id, sess.EndReason)
	}
	return sess, nil
}

// LiveInstance returns a live session that has a node by that name, made already.
func (s *Service) LiveInstance(ctx context.Context, id, name string) (Session, error) {
	sess, err := s.live(ctx, id)
	if err != nil {
		return sess, err
	}
	for _, in := range sess.Instances {
		if in.Name == name {
			if in.Status == NodeCreating {
				return sess, fmt.Errorf("%w: %s is still being made", ErrConflict, name)
			}
			return sess, nil
		}
	}
	return sess, fmt.Errorf("%w: no node %s in session %s", ErrNotFound, name, id)
}

// NewID is a fresh id (of a session, a workshop, an attendee): 128 random bits, lowercase base32 without
// padding (26 characters).
func NewID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

func templateLabel(t string) string {
	if t == "" {
		return "none"
	}
	return t
}

// Check says whether grant g may do p with session id (nil), or why not (see Grant.Allows). The session's workshop
// is read only for the grants whose rule needs it.
func (s *Service) Check(ctx context.Context, g Grant, id string, p Permission) error {
	t := Target{Session: id}
	if g.NeedsWorkshop() {
		sess, err := s.store.Get(ctx, id)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		t.Workshop = sess.Workshop
	}
	return g.Allows(t, p)
}

// Subkey is a key for purpose derived from the signing key (see Tokens.Subkey): the same in every process.
func (s *Service) Subkey(purpose string) []byte { return s.tokens.Subkey(purpose) }

// Issue signs a token for g (see Tokens.Issue): the workshops' instructor and attendee tokens.
func (s *Service) Issue(g Grant) (string, error) { return s.tokens.Issue(g) }

// MaxDuration is the longest a session may live.
func (s *Service) MaxDuration() time.Duration { return s.cfg.MaxDuration }

// Stored reads a session as stored, without asking the engine about its nodes (for listings of many).
func (s *Service) Stored(ctx context.Context, id string) (Session, error) {
	return s.store.Get(ctx, id)
}
