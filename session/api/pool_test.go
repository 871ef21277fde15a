package api

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sandlot/sandlot/instance"
	"github.com/sandlot/sandlot/internal/redistest"
	"github.com/sandlot/sandlot/quota"
	"github.com/sandlot/sandlot/session"
	"github.com/sandlot/sandlot/session/memnodes"
)

// The warm pool without an engine: nodes in memory, a real redis-server, real servers.

// swarmNodes are nodes in memory whose swarm is Ready as soon as its nodes are up.
func swarmNodes() *memnodes.Nodes {
	nodes := memnodes.New(netip.MustParseAddr("127.0.0.1"))
	nodes.Answer = func(ctx context.Context, id, _ string, cmd []string) (instance.ExecResult, error) {
		if len(cmd) == 3 && strings.HasPrefix(cmd[2], "docker node ls") {
			in, err := nodes.List(ctx, id)
			return instance.ExecResult{Stdout: []byte(fmt.Sprintln(len(in)))}, err
		}
		return instance.ExecResult{}, nil
	}
	return nodes
}

func poolServer(t *testing.T, rdb *redis.Client, nodes *memnodes.Nodes, pool map[string]int, l quota.Limits) *server {
	t.Helper()
	if l.Capacity == 0 {
		l.Capacity = 100
	}
	if l.SessionsPerClient == 0 {
		l.SessionsPerClient = 50
	}
	if l.CreationsPerClient == 0 {
		l.CreationsPerClient = 1000
	}
	return newServer(t, rdb, serverOpts{nodes: nodes, limits: l, cfg: session.Config{Pool: pool}})
}

// waitPool waits until template has n ready pooled sessions and none in setup, and returns them.
func waitPool(t testing.TB, s *server, template string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ready, setup, err := s.store.Pooled(context.Background(), template)
		if err != nil {
			t.Fatal(err)
		}
		if len(ready) == n && len(setup) == 0 {
			slices.Sort(ready)
			return ready
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool of %s: %d ready, %d in setup; want %d ready", template, len(ready), len(setup), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func counter(t testing.TB, s *server, name, label string) float64 {
	t.Helper()
	return metric(t, s.metrics, name, label).GetCounter().GetValue()
}

// 20 creations at once, over two servers on one Redis, with a pool of 5: every pooled session is given once, and
// none of the 20 twice; the rest are made the usual way; each is its client's (per-client quota counts 20).
func TestPoolClaimsAreDistinct(t *testing.T) {
	rdb := redistest.New(t)
	nodes := memnodes.New(netip.MustParseAddr("127.0.0.1"))
	a := poolServer(t, rdb, nodes, map[string]int{"1-node": 5}, quota.Limits{})
	b := poolServer(t, rdb, nodes, map[string]int{"1-node": 5}, quota.Limits{})
	pooled := waitPool(t, a, "1-node", 5)

	ids := make([]string, 20)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			var c created
			resp := s.call("POST", "/api/v1/sessions", "", map[string]string{"template": "1-node"}, &c)
			if resp.StatusCode != http.StatusCreated || c.Token == "" || len(c.Instances) != 1 {
				t.Errorf("create %d: %d %+v", i, resp.StatusCode, c)
			}
			ids[i] = c.ID
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("session %s given twice", id)
		}
		seen[id] = true
	}
	for _, id := range pooled {
		if !seen[id] {
			t.Errorf("pooled session %s was not given while creations waited", id)
		}
	}
	claims := counter(t, a, "sandlot_pool_claims_total", "1-node") + counter(t, b, "sandlot_pool_claims_total", "1-node")
	misses := counter(t, a, "sandlot_pool_misses_total", "1-node") + counter(t, b, "sandlot_pool_misses_total", "1-node")
	// The pool refills while creations run: a refilled session may be claimed too.
	if claims < 5 || claims+misses != 20 {
		t.Errorf("claims %v, misses %v; want at least 5 claims, 20 in all", claims, misses)
	}
	t.Logf("claims %v, made the usual way %v", claims, misses)
	u, err := a.quota.Usage(context.Background(), "127.0.0.1", "")
	if err != nil || u.ClientSessions != 20 {
		t.Errorf("client holds %d sessions (%v), want 20", u.ClientSessions, err)
	}
	waitPool(t, a, "1-node", 5) // refilled
}

// A claimed session is a fresh one: its client's, with a deadline from the claim, a token that works and no
// other; out of the pool, on the reaper's list. A client over its quota is refused and the session goes back.
// The pool refills after a claim.
func TestPoolClaimIsFresh(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.New(t)
	nodes := swarmNodes()
	s := poolServer(t, rdb, nodes, map[string]int{"swarm-1m1w": 1}, quota.Limits{SessionsPerClient: 1})
	pooled := waitPool(t, s, "swarm-1m1w", 1)
	sess, err := s.store.Get(ctx, pooled[0])
	if err != nil || sess.State != session.StatePooled || sess.Client != "" || len(sess.Instances) != 2 {
		t.Fatalf("pooled: %+v, %v", sess, err)
	}
	if due, _ := s.store.Due(ctx, time.Now().Add(1000*time.Hour), 100); slices.Contains(due, pooled[0]) {
		t.Fatal("a pooled session has a deadline")
	}

	before := time.Now().UTC()
	c := s.create(map[string]string{"template": "swarm-1m1w", "duration": "30m"})
	if c.ID != pooled[0] {
		t.Fatalf("created %s, not the pooled %s", c.ID, pooled[0])
	}
	if c.State != session.StateActive || c.Template != "swarm-1m1w" || len(c.Instances) != 2 ||
		c.Instances[0].Status != session.NodeRunning || c.CreatedAt.Before(before.Add(-time.Second)) ||
		c.ExpiresAt.Sub(c.CreatedAt) != 30*time.Minute || c.Limits.Instances != 2 || c.Limits.ClientSessions != 1 {
		t.Fatalf("claimed: %+v", c)
	}
	path := "/api/v1/sessions/" + c.ID
	s.mustCall(http.StatusOK, "GET", path, c.Token, nil, nil)
	s.mustCall(http.StatusUnauthorized, "GET", path, "", nil, nil)
	got, err := s.store.Get(ctx, c.ID)
	if err != nil || got.State != session.StateActive || got.Client != "127.0.0.1" {
		t.Fatalf("stored: %+v, %v", got, err)
	}
	if due, _ := s.store.Due(ctx, c.ExpiresAt.Add(time.Second), 100); !slices.Contains(due, c.ID) {
		t.Error("the claimed session is not on the reaper's list")
	}
	if due, _ := s.store.Due(ctx, c.ExpiresAt.Add(-time.Second), 100); slices.Contains(due, c.ID) {
		t.Error("the claimed session is due before its deadline")
	}

	next := waitPool(t, s, "swarm-1m1w", 1)
	if next[0] == c.ID {
		t.Fatal("the claimed session is still pooled")
	}
	// Over its quota (one session a client), the client is refused and the pooled session stays pooled.
	s.mustCall(http.StatusTooManyRequests, "POST", "/api/v1/sessions", "", map[string]string{"template": "swarm-1m1w"}, nil)
	if again := waitPool(t, s, "swarm-1m1w", 1); again[0] != next[0] {
		t.Fatalf("after a refusal the pool holds %v, want %v", again, next)
	}
	if sess, _ := s.store.Get(ctx, next[0]); sess.State != session.StatePooled || sess.Client != "" {
		t.Fatalf("after a refusal: %+v", sess)
	}
	// Ending the claimed session gives its place back; the next creation claims the next pooled session.
	s.mustCall(http.StatusOK, "DELETE", path, c.Token, nil, nil)
	if d := s.create(map[string]string{"template": "swarm-1m1w"}); d.ID != next[0] {
		t.Fatalf("created %s, want the pooled %s", d.ID, next[0])
	}

	// Service.Claim, as a workshop calls it.
	waitPool(t, s, "swarm-1m1w", 1)
	w, ok, err := s.svc.Claim(ctx, "swarm-1m1w", "workshop:x", time.Hour)
	if err != nil || !ok || w.Token == "" || w.Session.Client != "workshop:x" || len(w.Session.Instances) != 2 {
		t.Fatalf("claim: %+v %v %v", w, ok, err)
	}
	if _, ok, err := s.svc.Claim(ctx, "1-node", "workshop:x", time.Hour); ok || err != nil {
		t.Fatalf("claim of a template without a pool: %v %v", ok, err)
	}
}

// A restart keeps the pool: no session lost, none made again, none given twice; the reaper and the collector
// leave pooled sessions and their nodes alone. A pooled session whose nodes went is dropped and made again; a
// smaller pool at a restart ends the extra ones.
func TestPoolSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.New(t)
	nodes := memnodes.New(netip.MustParseAddr("127.0.0.1"))
	a := poolServer(t, rdb, nodes, map[string]int{"1-node": 3}, quota.Limits{})
	pooled := waitPool(t, a, "1-node", 3)
	a.stop()

	b := poolServer(t, rdb, nodes, map[string]int{"1-node": 3}, quota.Limits{})
	time.Sleep(3 * session.ReaperInterval) // the reaper runs, the collector has run at start
	if got := waitPool(t, b, "1-node", 3); !slices.Equal(got, pooled) {
		t.Fatalf("after a restart the pool holds %v, want %v", got, pooled)
	}
	for _, id := range pooled {
		if in, err := nodes.List(ctx, id); err != nil || len(in) != 1 || in[0].Status != "running" {
			t.Fatalf("pooled %s's nodes: %+v %v", id, in, err)
		}
	}
	if n := counter(t, b, "sandlot_sessions_ended_total", "error") + counter(t, b, "sandlot_sessions_ended_total", "expired"); n != 0 {
		t.Fatalf("the restarted server ended %v sessions", n)
	}
	b.stop()

	// The engine lost one pooled session's nodes while no server ran.
	if err := nodes.DeleteSession(ctx, pooled[1]); err != nil {
		t.Fatal(err)
	}
	c := poolServer(t, rdb, nodes, map[string]int{"1-node": 3}, quota.Limits{})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if sess, _ := c.store.Get(ctx, pooled[1]); sess.State == session.StateEnded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a pooled session without nodes was not dropped")
		}
	}
	got := waitPool(t, c, "1-node", 3)
	if slices.Contains(got, pooled[1]) || !slices.Contains(got, pooled[0]) || !slices.Contains(got, pooled[2]) {
		t.Fatalf("after the nodes went the pool holds %v (had %v)", got, pooled)
	}
	if gone, _ := c.store.Get(ctx, pooled[1]); gone.State != session.StateEnded || gone.EndReason != session.EndError {
		t.Fatalf("the session without nodes: %+v", gone)
	}
	claimed := map[string]bool{}
	for range 3 {
		claimed[c.create(map[string]string{"template": "1-node"}).ID] = true
	}
	for _, id := range got {
		if !claimed[id] {
			t.Errorf("pooled %s not claimed after the restart (claimed %v)", id, claimed)
		}
	}
	refilled := waitPool(t, c, "1-node", 3)
	c.stop()

	d := poolServer(t, rdb, nodes, map[string]int{"1-node": 1}, quota.Limits{})
	kept := waitPool(t, d, "1-node", 1)
	if !slices.Contains(refilled, kept[0]) {
		t.Fatalf("the smaller pool keeps %v, not one of %v", kept, refilled)
	}
	for _, id := range refilled {
		sess, _ := d.store.Get(ctx, id)
		if id != kept[0] && (sess.State != session.StateEnded || sess.EndReason != session.EndAdmin) {
			t.Errorf("extra pooled session %s: %+v", id, sess)
		}
		if in, _ := nodes.List(ctx, id); id != kept[0] && len(in) != 0 {
			t.Errorf("extra pooled session %s keeps its nodes", id)
		}
	}
	d.stop()
	e := poolServer(t, rdb, nodes, nil, quota.Limits{}) // no pool at all: the last pooled session ends too
	waitPool(t, e, "1-node", 0)
	if sess, _ := e.store.Get(ctx, kept[0]); sess.State != session.StateEnded {
		t.Errorf("pooled session without a pool: %+v", sess)
	}
}

// A pool the host cannot hold fills what capacity allows and says why the rest is missing, backing off rather
// than retrying in a loop; creations still work.
func TestPoolOutOfCapacity(t *testing.T) {
	rdb := redistest.New(t)
	nodes := memnodes.New(netip.MustParseAddr("127.0.0.1"))
	s := poolServer(t, rdb, nodes, map[string]int{"1-node": 5}, quota.Limits{Capacity: 2})
	waitPool(t, s, "1-node", 2)
	time.Sleep(2500 * time.Millisecond)
	n := counter(t, s, "sandlot_pool_fill_failures_total", "out_of_capacity")
	if n < 1 || n > 8 { // two fills a round, rounds 1 s then 2 s apart
		t.Fatalf("%v fills refused for capacity in 2.5 s; want a few (backing off)", n)
	}
	if g := metric(t, s.metrics, "sandlot_pool_ready", "1-node").GetGauge().GetValue(); g != 2 {
		t.Errorf("sandlot_pool_ready %v, want 2", g)
	}
	if g := metric(t, s.metrics, "sandlot_pool_target", "1-node").GetGauge().GetValue(); g != 5 {
		t.Errorf("sandlot_pool_target %v, want 5", g)
	}
	s.create(map[string]string{})
	c := s.create(map[string]string{"template": "1-node"})
	if len(c.Instances) != 1 {
		t.Fatalf("claimed %+v", c)
	}
	if u, _ := s.quota.Usage(context.Background(), "", ""); u.Running != 2 {
		t.Errorf("%d nodes reserved, want 2 (one claimed, one pooled)", u.Running)
	}
}

// Seats claimed at once make no pooled session for nobody: each claim lowers what the pool holds for its
// workshop as soon as it has taken a session, not after its checks (the nodes on the engine, slow here), so the
// refills that the first claims to finish wake find nothing missing.
func TestPoolRushMakesNoSpares(t *testing.T) {
	ctx := context.Background()
	nodes := &heldNodes{Nodes: memnodes.New(netip.MustParseAddr("127.0.0.1")), listDelay: time.Second}
	s := newServer(t, redistest.New(t), serverOpts{nodes: nodes, limits: quota.Limits{Capacity: 20}})
	const seats = 3
	demand := session.WorkshopDemand("rush") // a workshop's demand, asked by hand: no reaper asks it again
	s.svc.SetPoolDemand(demand, map[string]int{"1-node": seats})
	waitPool(t, s, "1-node", seats)
	if n := nodes.made.Load(); n != seats {
		t.Fatalf("the pool made %d nodes for %d seats", n, seats)
	}
	var wg sync.WaitGroup
	errs := make([]error, seats)
	for i := range seats {
		wg.Add(1)
		go func() { // a claim each 200 ms: the first is through its checks while the others are in theirs
			defer wg.Done()
			time.Sleep(time.Duration(i) * 200 * time.Millisecond)
			_, errs[i] = s.svc.Create(ctx, session.CreateRequest{Template: "1-node", Workshop: "rush"})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2500 * time.Millisecond) // the pool's ticks and the claims' wake-ups would have started refills
	if claims := counter(t, s, "sandlot_pool_claims_total", "1-node"); claims != seats {
		t.Errorf("%v claims, want %d", claims, seats)
	}
	if n := nodes.made.Load(); n != seats {
		t.Errorf("%d nodes made for %d seats, all claimed: the pool refilled for nobody", n, seats)
	}
}

// A fill still in setup does not make the pool end a ready session in its place when the sizes shrink: a claim
// may be about to need the ready one. The one in setup is ended once it is ready, if still beyond the size.
func TestPoolTrimKeepsReadySessions(t *testing.T) {
	nodes := &heldNodes{Nodes: memnodes.New(netip.MustParseAddr("127.0.0.1"))}
	s := newServer(t, redistest.New(t), serverOpts{nodes: nodes, limits: quota.Limits{Capacity: 20}})
	t.Cleanup(nodes.release)
	s.svc.SetPoolDemand("test", map[string]int{"1-node": 2})
	ready := waitPool(t, s, "1-node", 2)
	nodes.hold()
	s.svc.SetPoolDemand("test", map[string]int{"1-node": 3})
	eventually(t, 5*time.Second, "a fill in setup", func() bool {
		_, setup, err := s.store.Pooled(context.Background(), "1-node")
		return err == nil && len(setup) == 1
	})
	s.svc.SetPoolDemand("test", map[string]int{"1-node": 2})
	time.Sleep(2500 * time.Millisecond) // the pool looks every second
	now, setup, err := s.store.Pooled(context.Background(), "1-node")
	slices.Sort(now)
	if err != nil || !slices.Equal(now, ready) || len(setup) != 1 {
		t.Fatalf("with a fill in setup beyond the size, the pool holds %v ready, %d in setup (%v); want %v ready",
			now, len(setup), err, ready)
	}
	nodes.release()
	waitPool(t, s, "1-node", 2)
}

// heldNodes is memnodes with knobs: Create waits while held (a fill stays in setup) and counts the nodes made;
// List takes listDelay (an engine under load).
type heldNodes struct {
	*memnodes.Nodes
	listDelay time.Duration
	made      atomic.Int32

	mu   sync.Mutex
	gate chan struct{} // while not nil, Create waits until it is closed
}

func (h *heldNodes) hold() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gate == nil {
		h.gate = make(chan struct{})
	}
}

func (h *heldNodes) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gate != nil {
		close(h.gate)
		h.gate = nil
	}
}

func (h *heldNodes) Create(ctx context.Context, id string, spec instance.Spec) (instance.Instance, error) {
	h.mu.Lock()
	gate := h.gate
	h.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return instance.Instance{}, ctx.Err()
		}
	}
	h.made.Add(1)
	return h.Nodes.Create(ctx, id, spec)
}

func (h *heldNodes) List(ctx context.Context, id string) ([]instance.Instance, error) {
	if h.listDelay > 0 {
		select {
		case <-time.After(h.listDelay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return h.Nodes.List(ctx, id)
}
