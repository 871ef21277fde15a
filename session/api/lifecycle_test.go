package api

import (
	"context"
	"github.com/sandlot/sandlot/internal/testengine"
	"github.com/sandlot/sandlot/session"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/sandlot/sandlot/internal/redistest"
	"github.com/sandlot/sandlot/quota"
)

// The whole lifecycle over HTTP: create, add two nodes, exec; a swarm-3m2w session forms 5 Ready nodes, 3 of them
// managers; delete; nothing of either session is left running in Docker or held in Redis.
func TestLifecycle(t *testing.T) {
	rdb := redistest.New(t)
	s := newServer(t, rdb, serverOpts{})

	a := s.create(map[string]string{"duration": "30m"})
	if a.State != session.StateActive || len(a.Instances) != 0 || a.Limits.MaxInstances != 5 || a.Token == "" {
		t.Fatalf("created %+v", a)
	}
	if got := a.ExpiresAt.Sub(a.CreatedAt); got != 30*time.Minute {
		t.Fatalf("duration %s", got)
	}
	path := "/api/v1/sessions/" + a.ID
	for _, want := range []string{"node1", "node2"} {
		var in session.Instance
		s.mustCall(http.StatusCreated, "POST", path+"/instances", a.Token, nil, &in)
		if in.Name != want || in.Status != "running" || in.IP == "" {
			t.Fatalf("instance %+v", in)
		}
	}
	var res execResponse
	s.mustCall(http.StatusOK, "POST", path+"/instances/node2/exec", a.Token,
		map[string][]string{"cmd": {"sh", "-c", "ping -c1 -W2 node1 >/dev/null && hostname"}}, &res)
	if res.ExitCode != 0 || res.Stdout != "node2\n" {
		t.Fatalf("exec: %+v", res)
	}
	var got created
	s.mustCall(http.StatusOK, "GET", path, a.Token, nil, &got)
	if len(got.Instances) != 2 || got.Instances[1].Status != "running" || got.Limits.RemainingInstances != 3 {
		t.Fatalf("get: %+v", got)
	}

	b := s.create(map[string]string{"template": "swarm-3m2w"})
	if b.State != session.StateActive || len(b.Instances) != 5 || b.Template != "swarm-3m2w" {
		t.Fatalf("template session: %+v", b.Session)
	}
	s.mustCall(http.StatusOK, "POST", "/api/v1/sessions/"+b.ID+"/instances/node1/exec", b.Token,
		map[string][]string{"cmd": {"docker", "node", "ls", "--format", "{{.Status}} {{.ManagerStatus}}"}}, &res)
	lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	managers := 0
	for _, l := range lines {
		if !strings.HasPrefix(l, "Ready") {
			t.Errorf("node not Ready: %q", l)
		}
		if strings.Contains(l, "Leader") || strings.Contains(l, "Reachable") {
			managers++
		}
	}
	if len(lines) != 5 || managers != 3 {
		t.Fatalf("docker node ls: %q", res.Stdout)
	}

	for _, c := range []created{a, b} {
		var ended created
		s.mustCall(http.StatusOK, "DELETE", "/api/v1/sessions/"+c.ID, c.Token, nil, &ended)
		if ended.State != session.StateEnded || ended.EndReason != session.EndDeleted {
			t.Fatalf("after delete: %+v", ended.Session)
		}
		assertGone(t, s, c.ID)
	}
	if u, _ := s.quota.Usage(context.Background(), a.Client, ""); u.Running != 0 || u.ClientSessions != 0 || a.Client == "" {
		t.Fatalf("quota still holds %d nodes and %d sessions of client %q", u.Running, u.ClientSessions, a.Client)
	}
	// Ended sessions answer 410 to anything but reading.
	var e apiError
	s.mustCall(http.StatusGone, "POST", path+"/instances", a.Token, nil, &e)
	if e.Error.Code != "session_ended" {
		t.Fatalf("after end: %+v", e)
	}
}

// assertGone checks that nothing of a session runs in Docker and that Redis keeps only what expires by itself
// (the ended record, readable for 24 h): the session is not live, not due, not being set up or torn down.
func assertGone(t *testing.T, s *server, id string) {
	t.Helper()
	ctx := context.Background()
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer docker.Close()
	left, err := testengine.Labelled(ctx, docker, id)
	if err != nil {
		t.Fatal(err) // an engine that does not answer must not read as "nothing left behind"
	}
	if len(left) != 0 {
		t.Errorf("session %s left %v", id, left)
	}
	if live, err := s.store.IsLive(ctx, id); err != nil || live {
		t.Errorf("session %s: live %v, %v", id, live, err)
	}
	for name, list := range map[string]func() ([]string, error){
		"due":      func() ([]string, error) { return s.store.Due(ctx, time.Now().Add(24*time.Hour), 1000) },
		"starting": func() ([]string, error) { return s.store.AbandonedSetups(ctx) },
		"ending":   func() ([]string, error) { return s.store.StaleEndings(ctx, time.Now().Add(24*time.Hour)) },
	} {
		ids, err := list()
		if err != nil {
			t.Fatalf("list %s sessions: %v", name, err)
		}
		if slices.Contains(ids, id) {
			t.Errorf("session %s is still %s", id, name)
		}
	}
	keys, err := s.rdb.Keys(ctx, "*"+id+"*").Result()
	if err != nil {
		t.Fatalf("list keys: %v", err)
	}
	for _, k := range keys {
		if ttl := s.rdb.PTTL(ctx, k).Val(); ttl <= 0 || ttl > 24*time.Hour {
			t.Errorf("key %s stays (ttl %s)", k, ttl)
		}
	}
}

// A session of 3 s is ended, its nodes gone, within 5 s of its start: with the server running, and when the
// server was stopped over the deadline and started again.
func TestExpiry(t *testing.T) {
	t.Run("running", func(t *testing.T) {
		s := newServer(t, redistest.New(t), serverOpts{})
		c := s.create(map[string]string{"duration": "3s"})
		s.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+c.ID+"/instances", c.Token, nil, nil)
		waitEnded(t, s, c, c.ExpiresAt.Add(2*time.Second))
	})
	t.Run("across a restart", func(t *testing.T) {
		rdb := redistest.New(t)
		first := newServer(t, rdb, serverOpts{})
		c := first.create(map[string]string{"duration": "3s"})
		first.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+c.ID+"/instances", c.Token, nil, nil)
		first.stop()
		time.Sleep(time.Until(c.ExpiresAt) + 500*time.Millisecond) // the deadline passes with no server
		second := newServer(t, rdb, serverOpts{})
		waitEnded(t, second, c, c.ExpiresAt.Add(2*time.Second))
	})
}

func waitEnded(t *testing.T, s *server, c created, by time.Time) {
	t.Helper()
	for {
		var got created
		s.mustCall(http.StatusOK, "GET", "/api/v1/sessions/"+c.ID, c.Token, nil, &got)
		if got.State == session.StateEnded {
			if got.EndReason != session.EndExpired {
				t.Fatalf("ended for %s", got.EndReason)
			}
			if got.EndedAt.After(by) {
				t.Errorf("ended at %s, %s after the deadline", got.EndedAt, got.EndedAt.Sub(c.ExpiresAt))
			}
			// The teardown follows the end at once; give it its moment before looking at Docker.
			deadline := time.Now().Add(3 * time.Second)
			for time.Now().Before(deadline) && stillEnding(t, s, c.ID) {
				time.Sleep(50 * time.Millisecond)
			}
			assertGone(t, s, c.ID)
			return
		}
		if time.Now().After(by.Add(5 * time.Second)) {
			t.Fatalf("session still %s at %s", got.State, time.Now())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Two servers on one Redis: each expiring session is ended exactly once; and 50 parallel creations of 1-node
// sessions against a capacity of 5 never run more than 5 nodes.
func TestTwoServersOneRedis(t *testing.T) {
	rdb := redistest.New(t)
	limits := quota.Limits{Capacity: 5, SessionsPerClient: 100, CreationsPerClient: 1000}
	servers := []*server{newServer(t, rdb, serverOpts{limits: limits}), newServer(t, rdb, serverOpts{limits: limits})}

	const sessions = 6
	var ids []created
	for i := range sessions {
		ids = append(ids, servers[i%2].create(map[string]string{"duration": "2s"}))
	}
	for _, c := range ids {
		waitEnded(t, servers[0], c, c.ExpiresAt.Add(2*time.Second))
	}
	total := 0.0
	for _, s := range servers {
		total += metric(t, s.metrics, "sandlot_sessions_ended_total", string(session.EndExpired)).GetCounter().GetValue()
	}
	if total != sessions {
		t.Fatalf("%v ends of %d sessions across both servers", total, sessions)
	}

	var mu sync.Mutex
	statuses := map[int]int{}
	var made []created
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c created
			resp := servers[i%2].call("POST", "/api/v1/sessions", "", map[string]string{"template": "1-node"}, &c)
			mu.Lock()
			defer mu.Unlock()
			statuses[resp.StatusCode]++
			if resp.StatusCode == http.StatusCreated {
				made = append(made, c)
			} else if resp.Header.Get("Retry-After") == "" {
				t.Errorf("a refusal without Retry-After: %d", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	if statuses[http.StatusCreated] != 5 || statuses[http.StatusServiceUnavailable] != 45 {
		t.Fatalf("statuses %v", statuses)
	}
	running := countNodes(t)
	if running > 5 {
		t.Fatalf("%d nodes running against a capacity of 5", running)
	}
	for _, c := range made {
		servers[0].mustCall(http.StatusOK, "DELETE", "/api/v1/sessions/"+c.ID, c.Token, nil, nil)
	}
}

// countNodes counts the nodes these tests run (their owner's), in all sessions.
func countNodes(t *testing.T) int {
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer docker.Close()
	cs, err := docker.ContainerList(context.Background(), container.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", "sandlot.owner="+testOwner), filters.Arg("label", "sandlot.instance=node1"))})
	if err != nil {
		t.Fatal(err)
	}
	return len(cs)
}

// Setting up a template in an existing session, stopping and starting a node, removing one; readiness and metrics.
func TestSetupActionsAndProbes(t *testing.T) {
	s := newServer(t, redistest.New(t), serverOpts{})
	c := s.create(nil)
	path := "/api/v1/sessions/" + c.ID
	var got created
	s.mustCall(http.StatusOK, "POST", path+"/setup", c.Token, `{"template":"swarm-1m1w"}`, &got)
	if len(got.Instances) != 2 {
		t.Fatalf("after setup: %+v", got.Instances)
	}
	var res execResponse
	s.mustCall(http.StatusOK, "POST", path+"/instances/node1/exec", c.Token,
		`{"cmd":["sh","-c","docker node ls --format '{{.Status}}' | grep -c Ready"]}`, &res)
	if strings.TrimSpace(res.Stdout) != "2" {
		t.Fatalf("swarm-1m1w: %q %q", res.Stdout, res.Stderr)
	}
	var e apiError
	s.mustCall(http.StatusConflict, "POST", path+"/setup", c.Token, `{"template":"1-node"}`, &e)

	var in session.Instance
	s.mustCall(http.StatusOK, "POST", path+"/instances/node2/stop", c.Token, nil, &in)
	if in.Status != "exited" {
		t.Fatalf("after stop: %+v", in)
	}
	s.mustCall(http.StatusOK, "POST", path+"/instances/node2/start", c.Token, nil, &in)
	s.mustCall(http.StatusOK, "POST", path+"/instances/node2/restart", c.Token, nil, &in)
	if in.Status != "running" {
		t.Fatalf("after start: %+v", in)
	}
	s.mustCall(http.StatusNoContent, "DELETE", path+"/instances/node2", c.Token, nil, nil)
	s.mustCall(http.StatusOK, "GET", path, c.Token, nil, &got)
	if len(got.Instances) != 1 || got.Limits.RemainingInstances != 4 {
		t.Fatalf("after removing node2: %+v, %+v", got.Instances, got.Limits)
	}
	// The freed name is taken again by the next node.
	s.mustCall(http.StatusCreated, "POST", path+"/instances", c.Token, nil, &in)
	if in.Name != "node2" {
		t.Fatalf("new node named %s", in.Name)
	}

	s.mustCall(http.StatusOK, "GET", "/readyz", "", nil, nil)
	s.mustCall(http.StatusOK, "GET", "/healthz", "", nil, nil)
	resp := s.mustCall(http.StatusOK, "GET", "/metrics", "", nil, nil)
	body := new(strings.Builder)
	_, _ = io.Copy(body, resp.Body)
	for _, m := range []string{"sandlot_sessions_created_total 1", "sandlot_sessions_live 1", "sandlot_instances_reserved 2",
		"sandlot_template_setup_seconds_count{template=\"swarm-1m1w\"} 1", "sandlot_quota_check_seconds_count 1"} {
		if !strings.Contains(body.String(), m) {
			t.Errorf("metrics lack %q", m)
		}
	}
}

// stillEnding says whether a session's teardown has not finished (it is on the list of teardowns in progress).
func stillEnding(t *testing.T, s *server, id string) bool {
	ids, err := s.store.StaleEndings(context.Background(), time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return slices.Contains(ids, id)
}
