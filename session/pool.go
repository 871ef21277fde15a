package session

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sandlot/sandlot/quota"
)

// The warm pool keeps, per template, a few whole sessions made ahead: each made for its own session id from the
// start (so its nodes' hostnames, addresses, network, DNS names, ssh keys and limits are exactly a fresh
// session's), its nodes up and its swarm formed, then pooled: no client holds it and no deadline runs on it, but
// its nodes count against the host's capacity. Creating a session of that template claims one (Claim) instead of
// waiting for nodes; the pool then refills in the background.

// PoolStore is what the warm pool needs of the Store beside the Store itself (session/redisstore has both). Each
// method is atomic across every process on the store.
type PoolStore interface {
	// CreatePooled stores a session in setup for its template's pool (no deadline) unless that template has most
	// pooled sessions already, ready or in setup; it reports whether it did.
	CreatePooled(ctx context.Context, sess Session, most int, setupLease time.Duration) (bool, error)
	// PoolReady marks a pooled session whose setup is done ready to be claimed.
	PoolReady(ctx context.Context, id, template string) error
	// ClaimPooled gives the oldest ready pooled session of template to c.Client, active from now with c's
	// deadline. No session is ever given twice; ok is false when none is ready.
	ClaimPooled(ctx context.Context, template string, c PoolClaim) (Session, bool, error)
	// Unclaim puts a session just claimed for client back in its pool (before its token was given out).
	Unclaim(ctx context.Context, id, template, client string) (bool, error)
	// TakePooled takes a ready pooled session out of its pool to end it; only one caller gets true.
	TakePooled(ctx context.Context, template, id string) (bool, error)
	// Pooled lists a template's pooled sessions, ready (oldest first) and in setup, forgetting those that ended.
	Pooled(ctx context.Context, template string) (ready, setup []string, err error)
	// PoolTemplates lists the templates that have had pooled sessions.
	PoolTemplates(ctx context.Context) ([]string, error)
}

// PoolClaim is what a claimed session becomes: its client's (and its workshop's, for an attendee), with a fresh
// session's times.
type PoolClaim struct {
	Client, Workshop                   string
	CreatedAt, ExpiresAt, MaxExpiresAt time.Time
	MaxInstances                       int
}

// ParsePool reads a pool's sizes, "1-node=3,swarm-3m2w=1" (empty: no pool).
func ParsePool(spec string) (map[string]int, error) {
	out := map[string]int{}
	for _, part := range strings.Split(spec, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		name, count, ok := strings.Cut(part, "=")
		n, err := strconv.Atoi(strings.TrimSpace(count))
		name = strings.TrimSpace(name)
		if !ok || name == "" || err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not template=count (like 1-node=3)", part)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("template %s given twice", name)
		}
		out[name] = n
	}
	return out, nil
}

const (
	demandSettle       = 3 * time.Second  // how long after a claim what it lowered may not be raised again
	poolInterval       = time.Second      // how often the pool is looked at besides after claims
	poolHealthInterval = 30 * time.Second // how often ready sessions' nodes are checked
	poolBackoffFirst   = time.Second
	poolBackoffMost    = time.Minute
)

// pool is the warm pool's state in one process: what it should hold, its fills in flight and its metrics. What
// it holds is in the store, shared by every process.
type pool struct {
	store PoolStore
	base  map[string]int // the sizes asked for at start (--pool)
	fills chan struct{}  // a token per fill in flight
	wake  chan struct{}  // a session was claimed

	claims, misses, failures *prometheus.CounterVec

	mu       sync.Mutex
	demand   map[string]map[string]int // sizes asked for since, by who asked (SetPoolDemand), then template
	unheard  map[string]bool           // who will ask (PoolDemandFrom) and has not yet: no trim until all have
	trimmed  bool                      // pooled sessions of every template were trimmed once (runPool's only)
	sized    map[string]bool           // templates this process has had sizes for since its start (runPool's only)
	claimed  map[string]time.Time      // who's last claim (demand lowered here; see demandSettle)
	starting map[string]int            // fills launched whose session is not stored yet, by template
	filling  map[string]bool           // sessions this process is setting up for the pool (no shell prewarmed)
	retry    map[string]time.Time      // template -> not before (after a failed fill)
	delay    map[string]time.Duration
}

// newPool returns the service's pool, or nil when none is configured (or the store cannot hold one).
func (s *Service) newPool(cfg Config) *pool {
	ps, ok := s.store.(PoolStore)
	if !ok {
		if len(cfg.Pool) > 0 {
			s.log.Error("pool: the store cannot keep a warm pool; running without one")
		}
		return nil
	}
	p := &pool{store: ps, base: s.poolable(cfg.Pool), fills: make(chan struct{}, max(1, cfg.PoolFills)),
		wake: make(chan struct{}, 1), demand: map[string]map[string]int{}, unheard: map[string]bool{}, sized: map[string]bool{}, claimed: map[string]time.Time{}, starting: map[string]int{}, filling: map[string]bool{},
		retry: map[string]time.Time{}, delay: map[string]time.Duration{},
		claims: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sandlot_pool_claims_total",
			Help: "Sessions created from the warm pool by this process, by template."}, []string{"template"}),
		misses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sandlot_pool_misses_total",
			Help: "Sessions of a pooled template created without the pool (none was ready), by template."}, []string{"template"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sandlot_pool_fill_failures_total",
			Help: "Pooled sessions this process could not make, by template and reason (a quota code, or error)."},
			[]string{"template", "reason"}),
	}
	if s.metrics != nil {
		s.metrics.Registry.MustRegister(p.claims, p.misses, p.failures, &poolCollector{p: p,
			ready: prometheus.NewDesc("sandlot_pool_ready", "Pooled sessions ready to be claimed, across all processes.",
				[]string{"template"}, nil),
			target: prometheus.NewDesc("sandlot_pool_target", "Pooled sessions this process keeps ready.",
				[]string{"template"}, nil)})
	}
	return p
}

// poolable keeps the sizes of templates that can be pooled, logging those that cannot.
func (s *Service) poolable(sizes map[string]int) map[string]int {
	out := map[string]int{}
	for name, n := range sizes {
		t, ok := s.templates[name]
		switch {
		case !ok:
			s.log.Error("pool: no such template; not pooled", "template", name)
		case t.Nodes() > s.quota.Limits().InstancesPerSession:
			s.log.Error("pool: template has more nodes than a session may; not pooled", "template", name)
		case n > 0:
			out[name] = n
		}
	}
	return out
}

// SetPoolDemand asks the warm pool to hold sizes (template -> ready sessions) for who, on top of --pool and of
// what others ask for, until who asks again (an empty map withdraws). Workshops ask for their free seats before
// their start. Sessions beyond the new sizes are ended; every process on the store should ask the same, since
// each keeps the pool (across processes) at its own sizes. It does nothing without a pool.
func (s *Service) SetPoolDemand(who string, sizes map[string]int) {
	p := s.pool
	if p == nil {
		return
	}
	sizes = s.poolable(sizes)
	p.mu.Lock()
	if time.Since(p.claimed[who]) < demandSettle {
		// Claimed from a moment ago: what who read may not show the claims yet, so it may ask for less, not more.
		for name, n := range sizes {
			sizes[name] = min(n, p.demand[who][name])
		}
	} else {
		delete(p.claimed, who)
	}
	changed := !maps.Equal(p.demand[who], sizes)
	if len(sizes) == 0 {
		delete(p.demand, who)
	} else {
		p.demand[who] = sizes
	}
	p.mu.Unlock()
	if changed {
		p.woken()
	}
}

// lower takes one session of template off who's demand, and returns what gives it back unless *claimed.
func (p *pool) lower(who, template string, claimed *bool) func() {
	p.mu.Lock()
	defer p.mu.Unlock()
	sizes := p.demand[who]
	if sizes[template] == 0 {
		return func() {}
	}
	sizes[template]--
	p.claimed[who] = time.Now()
	return func() {
		if *claimed {
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.demand[who] != nil {
			p.demand[who][template]++
		}
	}
}

// WorkshopDemand names a workshop's demand on the pool (SetPoolDemand): its claims lower it at once.
func WorkshopDemand(workshop string) string { return "workshop:" + workshop }

// PoolDemandFrom says that source will ask the pool for sizes (SetPoolDemand) after a restart too: until it calls
// the function returned, once it has asked for all it needs, the pool ends none of its sessions as beyond its
// sizes (they may be that source's). Call it before RunReaper.
func (s *Service) PoolDemandFrom(source string) (heard func()) {
	p := s.pool
	if p == nil {
		return func() {}
	}
	p.mu.Lock()
	p.unheard[source] = true
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		delete(p.unheard, source)
		p.mu.Unlock()
	}
}

// targets is how many ready sessions the pool should hold now, by template.
func (p *pool) targets() map[string]int {
	out := maps.Clone(p.base)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, sizes := range p.demand {
		for name, n := range sizes {
			out[name] += n
		}
	}
	return out
}

// Claim gives client a ready pooled session of template for d (0: the default duration), as Create would make
// one: its client's (per-client quotas count it), with a fresh session's start and deadline, and a token. It
// reports false, with no error, when the pool has none ready; then the caller makes one the usual way. A client
// refused by quota gets the refusal, and the session goes back to the pool.
func (s *Service) Claim(ctx context.Context, template, client string, d time.Duration) (Created, bool, error) {
	if d == 0 {
		d = s.cfg.DefaultDuration
	}
	if d < time.Second || d > s.cfg.MaxDuration {
		return Created{}, false, fmt.Errorf("%w: duration %s (from 1s to %s)", ErrInvalid, d, s.cfg.MaxDuration)
	}
	return s.claim(ctx, CreateRequest{Template: template, Client: client, Duration: d},
		s.quota.Limits().InstancesPerSession)
}

// claim is Claim of req's template for req's client (or, admitted by seat, req's workshop), with a duration
// checked already and the most nodes the session may have.
func (s *Service) claim(ctx context.Context, req CreateRequest, maxInstances int) (Created, bool, error) {
	p, template, client, d := s.pool, req.Template, req.Client, req.Duration
	t, ok := s.templates[template]
	if p == nil || p.targets()[template] == 0 || !ok || t.Nodes() > maxInstances {
		return Created{}, false, nil
	}
	admit := s.admission(req)
	if req.Workshop != "" {
		client, admit = "workshop:"+req.Workshop, s.quota.AdmitSeat
	}
	start, claimed := time.Now(), false
	if req.Workshop != "" {
		// One seat fewer to keep ready (in this process, until the workshop asks again), from before the claim:
		// a fill between the two would make a session the pool need not hold.
		defer p.lower(WorkshopDemand(req.Workshop), template, &claimed)()
	}
	for range 3 { // a pooled session whose nodes are gone is dropped; try the next
		now := time.Now().UTC()
		sess, ok, err := p.store.ClaimPooled(ctx, template, PoolClaim{Client: client, Workshop: req.Workshop, CreatedAt: now,
			ExpiresAt: now.Add(d), MaxExpiresAt: now.Add(s.cfg.MaxDuration), MaxInstances: maxInstances})
		if err != nil || !ok {
			p.misses.WithLabelValues(template).Inc()
			return Created{}, false, err
		}
		out, err := s.Get(ctx, sess.ID)
		if err != nil {
			s.End(context.WithoutCancel(ctx), sess.ID, EndError, "claimed from the pool: "+err.Error())
			return Created{}, false, err
		}
		if !s.nodesUp(ctx, sess.ID, t.Nodes()) {
			s.log.Warn("pool: a pooled session's nodes are gone; dropped", "session", sess.ID, "template", template)
			s.End(context.WithoutCancel(ctx), sess.ID, EndError, "its pooled nodes were gone when it was claimed")
			continue
		}
		usage, err := admit(ctx, client, sess.ID, 0) // its nodes are counted since the pool made them
		if err != nil {
			if back, uerr := p.store.Unclaim(context.WithoutCancel(ctx), sess.ID, template, client); uerr != nil || !back {
				s.End(context.WithoutCancel(ctx), sess.ID, EndError, "could not go back to the pool")
			}
			s.metrics.rejected(err)
			return Created{}, false, err
		}
		usage.Instances = t.Nodes()
		token, err := s.tokens.Issue(Grant{Scope: ScopeSession, Session: sess.ID, Expires: out.MaxExpiresAt})
		if err != nil {
			s.End(context.WithoutCancel(ctx), sess.ID, EndError, "could not issue a token")
			return Created{}, false, err
		}
		// The first node's shell was opened as the session was pooled (see fill), in this process or, held in the
		// node, for any; this opens it where it is not (another process's, or closed by the idle sweep meanwhile).
		// Only the first node's, which the page opens first: five shells starting at once would hold up the first
		// command.
		if len(out.Instances) > 0 {
			s.prewarm(sess.ID, out.Instances[0].Name)
		}
		claimed = true
		p.woken() // to refill
		p.claims.WithLabelValues(template).Inc()
		s.metrics.sessionsCreated.Inc()
		s.metrics.createSeconds.WithLabelValues(template).Observe(time.Since(start).Seconds())
		s.log.Info("session created from the pool", "session", sess.ID, "client", client, "template", template,
			"workshop", req.Workshop, "expires_at", out.ExpiresAt)
		return Created{Session: out, Token: token, Usage: usage}, true, nil
	}
	p.misses.WithLabelValues(template).Inc()
	return Created{}, false, nil
}

// nodesUp reports whether the engine runs want nodes of a session (it may have lost them since they were made).
func (s *Service) nodesUp(ctx context.Context, id string, want int) bool {
	running, err := s.nodes.List(ctx, id)
	if err != nil {
		return false
	}
	n := 0
	for _, in := range running {
		if NodeStatus(in.Status) == NodeRunning {
			n++
		}
	}
	return n == want
}

// woken asks the pool to look at its sizes now.
func (p *pool) woken() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// isFilling reports whether a session is being set up for the pool by this process.
func (s *Service) isFilling(id string) bool {
	if s.pool == nil {
		return false
	}
	s.pool.mu.Lock()
	defer s.pool.mu.Unlock()
	return s.pool.filling[id]
}

// runPool keeps the pool at its sizes until ctx is done: it refills after claims (a few fills at once, backing
// off from a template that cannot be filled), ends pooled sessions beyond the sizes (after a restart with a
// smaller --pool), and drops ready sessions whose nodes are gone. It waits for its fills before it returns.
func (s *Service) runPool(ctx context.Context) {
	p := s.pool
	if p == nil {
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	s.checkPool(ctx)
	tick := time.NewTicker(poolInterval)
	defer tick.Stop()
	health := time.NewTicker(poolHealthInterval)
	defer health.Stop()
	for {
		s.fillPool(ctx, &wg)
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-tick.C:
		case <-health.C:
			s.checkPool(ctx)
		}
	}
}

// trimPool ends ready pooled sessions beyond the sizes, the newest first: the first time (after a start) of every
// template that has had any, then of those this process has had sizes for (another process on the store may pool
// others). It waits until every source of demand has asked.
func (s *Service) trimPool(ctx context.Context) {
	p := s.pool
	p.mu.Lock()
	unheard := len(p.unheard)
	p.mu.Unlock()
	if unheard > 0 {
		return
	}
	targets := p.targets()
	for name := range targets {
		p.sized[name] = true
	}
	names := slices.Sorted(maps.Keys(p.sized))
	if !p.trimmed {
		known, err := p.store.PoolTemplates(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("pool: list pooled templates", "err", err)
			}
			return
		}
		p.trimmed, names = true, known
	}
	for _, name := range names {
		ready, _, err := p.store.Pooled(ctx, name)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("pool: list pooled sessions", "template", name, "err", err)
			}
			continue
		}
		// Only ready sessions beyond the size: counting those in setup too would end a ready one that a claim is
		// about to need (a rush of claims outruns the wake-ups of refills) and keep one not ready in its place.
		// Those in setup are ended once ready, if still beyond it.
		for extra := len(ready) - targets[name]; extra > 0; extra-- {
			id := ready[len(ready)-1]
			ready = ready[:len(ready)-1]
			if s.dropPooled(ctx, name, id, EndAdmin, "the pool is smaller now") {
				s.log.Info("pool: ended a pooled session beyond the pool's size", "template", name, "session", id)
			}
		}
	}
}

// dropPooled takes a ready pooled session out of its pool and ends it, unless it was claimed meanwhile.
func (s *Service) dropPooled(ctx context.Context, template, id string, reason EndReason, why string) bool {
	ok, err := s.pool.store.TakePooled(ctx, template, id)
	if err != nil || !ok {
		return false
	}
	if _, err := s.End(context.WithoutCancel(ctx), id, reason, why); err != nil {
		s.log.Warn("pool: end a pooled session", "session", id, "err", err)
	}
	return true
}

// checkPool drops ready pooled sessions whose nodes are not all running (the engine restarted, say); the pool
// then makes others.
func (s *Service) checkPool(ctx context.Context) {
	for name := range s.pool.targets() {
		ready, _, err := s.pool.store.Pooled(ctx, name)
		if err != nil {
			continue
		}
		for _, id := range ready {
			if ctx.Err() != nil || s.nodesUp(ctx, id, s.templates[name].Nodes()) {
				continue
			}
			if s.dropPooled(ctx, name, id, EndError, "its nodes were gone while it waited in the pool") {
				s.log.Warn("pool: a pooled session's nodes are gone; dropped, to be made again", "template", name,
					"session", id)
			}
		}
	}
}

// fillPool starts fills for templates below their sizes, as many as the fill slots allow.
func (s *Service) fillPool(ctx context.Context, wg *sync.WaitGroup) {
	p := s.pool
	s.trimPool(ctx)
	for name, want := range p.targets() {
		p.mu.Lock()
		wait := time.Now().Before(p.retry[name])
		starting := p.starting[name]
		p.mu.Unlock()
		if wait {
			continue
		}
		ready, setup, err := p.store.Pooled(ctx, name)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("pool: list pooled sessions", "template", name, "err", err)
			}
			continue
		}
		for need := want - len(ready) - len(setup) - starting; need > 0; need-- {
			select {
			case p.fills <- struct{}{}:
			default:
				return // every fill slot is busy
			}
			p.mu.Lock()
			p.starting[name]++
			p.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-p.fills; p.woken() }()
				s.fill(ctx, name, want)
			}()
		}
	}
}

// fill makes one pooled session of template, if the pool (across processes) still has fewer than most.
func (s *Service) fill(ctx context.Context, template string, most int) {
	p := s.pool
	t := s.templates[template]
	id := NewID()
	stored := false
	defer func() {
		p.mu.Lock()
		if !stored {
			p.starting[template]--
		}
		delete(p.filling, id)
		p.mu.Unlock()
	}()
	if err := s.quota.ReservePooled(ctx, id, t.Nodes()); err != nil {
		s.metrics.rejected(err)
		p.failed(s, template, err)
		return
	}
	now := time.Now().UTC()
	sess := Session{ID: id, State: StateStarting, Template: template, CreatedAt: now,
		MaxInstances: s.quota.Limits().InstancesPerSession}
	p.mu.Lock()
	p.filling[id] = true
	p.mu.Unlock()
	ok, err := p.store.CreatePooled(ctx, sess, most, setupLease)
	p.mu.Lock()
	p.starting[template]--
	stored = true
	p.mu.Unlock()
	if err != nil || !ok {
		_ = s.quota.EndSession(context.WithoutCancel(ctx), "", id)
		if err != nil {
			p.failed(s, template, err)
		}
		return
	}
	if err := s.setup(ctx, id, t, false); err != nil {
		s.End(context.WithoutCancel(ctx), id, EndError, "pooled session setup failed: "+err.Error())
		if ctx.Err() == nil {
			p.failed(s, template, err)
		}
		return
	}
	// The first node's shell (the one the page opens first) is started now rather than at the claim: a room
	// claiming at once then finds twenty prompts waiting, where twenty login shells starting together took seconds.
	// Nobody can type into it before the claim (a pooled session has no token but the admin's).
	if sess, err := s.store.Get(ctx, id); err == nil && len(sess.Instances) > 0 {
		name := sess.Instances[0].Name
		if _, err := s.terminals.Get(terminalKey(id, name, 1), 80, 24, s.shell(context.Background(), id, name, 1)); err != nil {
			s.log.Debug("pool: open the first shell", "session", id, "node", name, "err", err)
		}
	}
	if err := p.store.PoolReady(ctx, id, template); err != nil {
		s.End(context.WithoutCancel(ctx), id, EndError, "pooled session: "+err.Error())
		return
	}
	p.mu.Lock()
	delete(p.retry, template)
	delete(p.delay, template)
	p.mu.Unlock()
	s.log.Info("pool: session ready", "template", template, "session", id)
}

// failed counts and logs a fill that failed and holds the template's fills back, longer each time in a row.
func (p *pool) failed(s *Service, template string, err error) {
	reason := "error"
	var r *quota.Rejection
	if errors.As(err, &r) {
		reason = r.Code
	}
	p.failures.WithLabelValues(template, reason).Inc()
	p.mu.Lock()
	d := min(max(2*p.delay[template], poolBackoffFirst), poolBackoffMost)
	p.delay[template] = d
	p.retry[template] = time.Now().Add(d)
	p.mu.Unlock()
	s.log.Warn("pool: cannot fill", "template", template, "reason", reason, "err", err, "retry_in", d)
}

// poolCollector reads the pool's sizes from the store when /metrics is scraped.
type poolCollector struct {
	p             *pool
	ready, target *prometheus.Desc
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.ready
	ch <- c.target
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for name, n := range c.p.targets() {
		ch <- prometheus.MustNewConstMetric(c.target, prometheus.GaugeValue, float64(n), name)
		if ready, _, err := c.p.store.Pooled(ctx, name); err == nil {
			ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, float64(len(ready)), name)
		}
	}
}
