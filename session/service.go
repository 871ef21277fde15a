package session

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/sandlot/sandlot/instance"
	"github.com/sandlot/sandlot/quota"
	"github.com/sandlot/sandlot/terminal"
)

// Nodes is what the service needs of the instance driver.
type Nodes interface {
	CreateNetwork(ctx context.Context, session string) (instance.Network, error)
	Create(ctx context.Context, session string, spec instance.Spec) (instance.Instance, error)
	Delete(ctx context.Context, session, name string) error
	Start(ctx context.Context, session, name string) error
	Stop(ctx context.Context, session, name string) error
	Restart(ctx context.Context, session, name string) error
	List(ctx context.Context, session string) ([]instance.Instance, error)
	Exec(ctx context.Context, session, name string, cmd []string, opts instance.ExecOptions) (instance.ExecResult, error)
	DeleteSession(ctx context.Context, session string) error
	GC(ctx context.Context, live instance.LiveFunc) (instance.GCReport, error)
	OpenTTY(ctx context.Context, session, name string, opts instance.TTYOptions) (*instance.TTY, error)
	WatchPorts(ctx context.Context, session, name string, report func([]int)) error
	WriteFile(ctx context.Context, session, name, path string, mode fs.FileMode, size int64, r io.Reader) error
	ReadFile(ctx context.Context, session, name, path string) (io.ReadCloser, instance.FileInfo, error)
	ListDir(ctx context.Context, session, name, path string, depth, limit int) ([]instance.FileEntry, bool, error)
}

// Config tunes sessions. Zero values mean the defaults.
type Config struct {
	DefaultDuration time.Duration // default 4 h
	MaxDuration     time.Duration // the longest a session may live, extensions included; default 8 h
	Retention       time.Duration // how long an ended session stays readable; default 24 h
	ExecTimeout     time.Duration // default 2 min
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
	if c.Retention == 0 {
		c.Retention = 24 * time.Hour
	}
	if c.ExecTimeout == 0 {
		c.ExecTimeout = 2 * time.Minute
	}
	return c
}

const (
	setupLease    = 6 * time.Second // a setup whose process stops renewing this is abandoned
	teardownLease = 2 * time.Minute // a teardown not finished by then is taken over
)

// Service runs sessions.
type Service struct {
	cfg       Config
	store     *Store
	quota     *quota.Quota
	nodes     Nodes
	templates Templates
	tokens    *Tokens
	terminals *terminal.Manager
	ports     *portWatch
	metrics   *Metrics
	log       *slog.Logger
}

// NewService wires a Service.
func NewService(cfg Config, store *Store, q *quota.Quota, nodes Nodes, templates Templates, tokens *Tokens,
	terminals *terminal.Manager, metrics *Metrics, log *slog.Logger) *Service {
	return &Service{cfg: cfg.withDefaults(), store: store, quota: q, nodes: nodes, templates: templates,
		tokens: tokens, terminals: terminals, metrics: metrics, log: log, ports: newPortWatch(nodes.WatchPorts)}
}

// CreateRequest is what a client asks for. Launch, when set, comes from a verified launch token and wins.
type CreateRequest struct {
	Template string
	Duration time.Duration // 0: the default
	Client   string
	Launch   *LaunchClaims
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
	var tmpl *Template
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
	}

	id := newID()
	nodes := 0
	if tmpl != nil {
		nodes = tmpl.Nodes()
	}
	admitStart := time.Now()
	usage, err := s.quota.AdmitSession(ctx, req.Client, id, nodes)
	s.metrics.quotaSeconds.Observe(time.Since(admitStart).Seconds())
	if err != nil {
		s.metrics.rejected(err)
		return Created{}, err
	}
	now := time.Now().UTC()
	sess := Session{ID: id, State: StateActive, CreatedAt: now, ExpiresAt: now.Add(req.Duration),
		MaxExpiresAt: now.Add(s.cfg.MaxDuration), MaxInstances: maxInstances, Client: req.Client}
	if tmpl != nil {
		sess.Template, sess.State = tmpl.Name, StateStarting
	}
	if err := s.store.Create(ctx, sess, setupLease); err != nil {
		_ = s.quota.EndSession(context.WithoutCancel(ctx), req.Client, id)
		return Created{}, err
	}
	token, err := s.tokens.Issue(id, "session", sess.MaxExpiresAt)
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

// Get returns a session with its nodes' current status (from the engine, for live sessions).
func (s *Service) Get(ctx context.Context, id string) (Session, error) {
	sess, err := s.store.Get(ctx, id)
	if err != nil {
		return sess, err
	}
	if sess.State == StateEnded {
		for i := range sess.Instances {
			sess.Instances[i].Status = "removed"
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
	status := map[string]string{}
	for _, in := range running {
		status[in.Name] = in.Status
	}
	for i, in := range sess.Instances {
		if st, ok := status[in.Name]; ok && in.Status != "creating" {
			sess.Instances[i].Status = st
		}
		if sess.Instances[i].Status == "running" {
			sess.Instances[i].Ports = s.ports.Ports(id, in.Name)
		}
	}
	return sess, nil
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
	return true, s.teardown(ctx, sess)
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

// AddInstance makes a node in a live session and returns it once its engine answers.
func (s *Service) AddInstance(ctx context.Context, id, hostname string) (Instance, error) {
	if _, err := s.live(ctx, id); err != nil {
		return Instance{}, err
	}
	if err := s.quota.ReserveInstance(ctx, id); err != nil {
		s.metrics.rejected(err)
		return Instance{}, err
	}
	in, err := s.networkAndInstance(ctx, id, hostname)
	if err != nil {
		_ = s.quota.ReleaseInstance(context.WithoutCancel(ctx), id)
	}
	return in, err
}

// networkAndInstance makes the session's network if it has none yet (sessions get theirs with their first node,
// so that starting a session costs only Redis), then the node.
func (s *Service) networkAndInstance(ctx context.Context, id, hostname string) (Instance, error) {
	if _, err := s.nodes.CreateNetwork(ctx, id); err != nil {
		return Instance{}, fmt.Errorf("session network: %w", err)
	}
	return s.createInstance(ctx, id, hostname)
}

// createInstance names, makes and records one node; its quota is already reserved.
func (s *Service) createInstance(ctx context.Context, id, hostname string) (Instance, error) {
	name, err := s.store.AllocateName(ctx, id, hostname)
	if err != nil {
		return Instance{}, err
	}
	return s.makeInstance(ctx, id, name, hostname)
}

// makeInstance makes and records the node a name was allocated for.
func (s *Service) makeInstance(ctx context.Context, id, name, hostname string) (Instance, error) {
	start := time.Now()
	made, err := s.nodes.Create(ctx, id, instance.Spec{Name: name, Hostname: hostname,
		Started: func() { s.prewarm(id, name) }})
	if err != nil {
		_ = s.store.DeleteInstance(context.WithoutCancel(ctx), id, name)
		if errors.Is(err, instance.ErrInvalid) {
			return Instance{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		return Instance{}, fmt.Errorf("make %s: %w", name, err)
	}
	in := Instance{Name: name, Hostname: made.Hostname, IP: made.IP.String(), Status: made.Status, Ports: []int{},
		CreatedAt: time.Now().UTC()}
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
	if _, err := s.liveInstance(ctx, id, name); err != nil {
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
	return s.quota.ReleaseInstance(ctx, id)
}

// InstanceAction stops, starts or restarts a node of a live session.
func (s *Service) InstanceAction(ctx context.Context, id, name, action string) (Instance, error) {
	if _, err := s.liveInstance(ctx, id, name); err != nil {
		return Instance{}, err
	}
	var err error
	switch action {
	case "start":
		err = s.nodes.Start(ctx, id, name)
	case "stop":
		err = s.nodes.Stop(ctx, id, name)
	case "restart":
		err = s.nodes.Restart(ctx, id, name)
	default:
		return Instance{}, fmt.Errorf("%w: action %q", ErrInvalid, action)
	}
	if err != nil {
		return Instance{}, err
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

// Exec runs a command in a node of a live session, without a terminal.
func (s *Service) Exec(ctx context.Context, id, name string, cmd []string) (instance.ExecResult, error) {
	if _, err := s.liveInstance(ctx, id, name); err != nil {
		return instance.ExecResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ExecTimeout)
	defer cancel()
	return s.nodes.Exec(ctx, id, name, cmd, instance.ExecOptions{})
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
		if err := s.quota.ReserveInstance(ctx, id); err != nil {
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

// setup makes a template's nodes in parallel and forms its swarm; quota is reserved already. While it runs it
// keeps renewing the session's setup lease, so that if this process dies the session is ended (reason error)
// rather than left half made. When releaseOnFailure is set, nodes that were not made give their quota back.
func (s *Service) setup(ctx context.Context, id string, t Template, releaseOnFailure bool) error {
	start := time.Now()
	leaseCtx, stopLease := context.WithCancel(ctx)
	defer stopLease()
	go func() {
		tick := time.NewTicker(setupLease / 3)
		defer tick.Stop()
		for {
			select {
			case <-leaseCtx.Done():
				return
			case <-tick.C:
				_ = s.store.RenewSetup(leaseCtx, id, setupLease)
			}
		}
	}()
	release := func(n int) {
		if releaseOnFailure {
			for range n {
				_ = s.quota.ReleaseInstance(context.WithoutCancel(ctx), id)
			}
		}
	}
	if _, err := s.nodes.CreateNetwork(ctx, id); err != nil {
		release(t.Nodes())
		return fmt.Errorf("session network: %w", err)
	}
	// Names first (node1 is the first manager), then every node at once.
	names := make([]string, t.Nodes())
	for i := range names {
		name, err := s.store.AllocateName(ctx, id, "")
		if err != nil {
			for _, n := range names[:i] {
				_ = s.store.DeleteInstance(context.WithoutCancel(ctx), id, n)
			}
			release(t.Nodes())
			return err
		}
		names[i] = name
	}
	nodes := make([]*pendingNode, len(names))
	for i, name := range names {
		nodes[i] = &pendingNode{done: make(chan struct{})}
		go func() {
			defer close(nodes[i].done)
			if nodes[i].in, nodes[i].err = s.makeInstance(ctx, id, name, ""); nodes[i].err != nil {
				release(1)
			}
		}()
	}
	var swarmErr error
	if t.Swarm {
		swarmErr = s.formSwarm(ctx, id, nodes, t.Managers)
	}
	var nodeErrs []error
	for _, n := range nodes { // every node made or failed, whatever happened to the swarm
		<-n.done
		nodeErrs = append(nodeErrs, n.err)
	}
	if err := errors.Join(nodeErrs...); err != nil {
		return err // the cause: the swarm failed for it, if it did
	}
	if swarmErr != nil {
		return fmt.Errorf("form the swarm: %w", swarmErr)
	}
	s.metrics.setupSeconds.WithLabelValues(t.Name).Observe(time.Since(start).Seconds())
	return nil
}

// pendingNode is a node being made: done is closed once in or err is set.
type pendingNode struct {
	done chan struct{}
	in   Instance
	err  error
}

// formSwarm forms a swarm of the nodes (in name order) as they come up, without waiting for all of them: node1
// inits as soon as its engine answers; the other managers join one at a time (raft admits one member at a time),
// each as soon as it is up and the one before has joined; workers join as soon as they are up, beside the managers.
// Then it waits until node1 sees every node Ready. A node that fails to be made stops the swarm.
func (s *Service) formSwarm(ctx context.Context, id string, nodes []*pendingNode, managers int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	up := func(n *pendingNode) (Instance, error) {
		select {
		case <-n.done:
			if n.err != nil {
				cancel(n.err)
			}
			return n.in, n.err
		case <-ctx.Done():
			return Instance{}, context.Cause(ctx)
		}
	}
	first, err := up(nodes[0])
	if err != nil {
		return err
	}
	if _, err := s.sh(ctx, id, first.Name, "docker swarm init --advertise-addr "+first.IP); err != nil {
		return err
	}
	tokens := map[string]string{}
	for _, role := range []string{"manager", "worker"} {
		out, err := s.sh(ctx, id, first.Name, "docker swarm join-token -q "+role)
		if err != nil {
			return err
		}
		tokens[role] = strings.TrimSpace(out)
	}
	join := func(n *pendingNode, role string) error {
		in, err := up(n)
		if err == nil {
			_, err = s.sh(ctx, id, in.Name, fmt.Sprintf("docker swarm join --advertise-addr %s --token %s %s:2377",
				in.IP, tokens[role], first.IP))
		}
		if err != nil {
			cancel(err)
		}
		return err
	}
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i := managers; i < len(nodes); i++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = join(nodes[i], "worker") }()
	}
	for i := 1; i < managers && errs[i-1] == nil; i++ {
		errs[i] = join(nodes[i], "manager")
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for {
		out, err := s.sh(ctx, id, first.Name, "docker node ls --format '{{.Status}}' | grep -c '^Ready$' || true")
		if err == nil && strings.TrimSpace(out) == fmt.Sprint(len(nodes)) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not every node became Ready: %w", context.Cause(ctx))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sh runs a shell command in a node and fails unless it exits 0.
func (s *Service) sh(ctx context.Context, id, name, script string) (string, error) {
	r, err := s.nodes.Exec(ctx, id, name, []string{"sh", "-c", script}, instance.ExecOptions{})
	if err != nil {
		return "", err
	}
	if r.ExitCode != 0 {
		return "", fmt.Errorf("%s: %q exited %d: %s", name, script, r.ExitCode, strings.TrimSpace(string(r.Stderr)))
	}
	return string(r.Stdout), nil
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

func (s *Service) liveInstance(ctx context.Context, id, name string) (Session, error) {
	sess, err := s.live(ctx, id)
	if err != nil {
		return sess, err
	}
	for _, in := range sess.Instances {
		if in.Name == name {
			if in.Status == "creating" {
				return sess, fmt.Errorf("%w: %s is still being made", ErrConflict, name)
			}
			return sess, nil
		}
	}
	return sess, fmt.Errorf("%w: no node %s in session %s", ErrNotFound, name, id)
}

// newID is a session id: 128 random bits, lowercase base32 without padding (26 characters).
func newID() string {
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
