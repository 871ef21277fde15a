package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sandlot/sandlot/internal/redistest"
	"github.com/sandlot/sandlot/quota"
	"github.com/sandlot/sandlot/session"
)

// A pooled swarm-1m1w on the real engine, claimed: its nodes are what a fresh session's are (hostname, address
// on the session network, ssh between nodes, a formed swarm, the node limits), and their engines show nothing
// that a fresh node's does not.
func TestPoolClaimOnEngine(t *testing.T) {
	driver(t)
	rdb := redistest.New(t)
	l := quota.Limits{Capacity: 10}
	pooled := newServer(t, rdb, serverOpts{limits: l, cfg: session.Config{Pool: map[string]int{"swarm-1m1w": 1}}})
	plain := newServer(t, rdb, serverOpts{limits: l}) // no pool: makes sessions the usual way
	want := waitPool(t, pooled, "swarm-1m1w", 1)

	c := pooled.create(map[string]string{"template": "swarm-1m1w"})
	if c.ID != want[0] {
		t.Fatalf("created %s, not the pooled %s", c.ID, want[0])
	}
	if c.State != session.StateActive || len(c.Instances) != 2 {
		t.Fatalf("claimed: %+v", c.Session)
	}
	fresh := plain.create(map[string]string{"template": "swarm-1m1w"})
	run := func(s *server, sess created, node, script string) string {
		t.Helper()
		var res execResponse
		s.mustCall(http.StatusOK, "POST", "/api/v1/sessions/"+sess.ID+"/instances/"+node+"/exec", sess.Token,
			map[string][]string{"cmd": {"sh", "-c", script}}, &res)
		if res.ExitCode != 0 {
			t.Fatalf("%s in %s: exit %d: %s %s", script, node, res.ExitCode, res.Stdout, res.Stderr)
		}
		return strings.TrimSpace(res.Stdout)
	}
	if got := run(pooled, c, "node1", "hostname"); got != "node1" {
		t.Errorf("node1's hostname: %q", got)
	}
	if got := run(pooled, c, "node1", "ip -4 -o addr show eth0"); !strings.Contains(got, " "+c.Instances[0].IP+"/") {
		t.Errorf("node1's address is %s, eth0 says %q", c.Instances[0].IP, got)
	}
	if got := run(pooled, c, "node1", "ssh -o BatchMode=yes node2 hostname"); got != "node2" {
		t.Errorf("ssh node2 hostname: %q", got)
	}
	if got := run(pooled, c, "node1", "docker node ls --format '{{.Status}}' | grep -c '^Ready$'"); got != "2" {
		t.Errorf("%s nodes Ready, want 2", got)
	}
	if got := run(pooled, c, "node2", "cat /root/.bash_history /root/.ash_history 2>/dev/null | wc -c"); got != "0" {
		t.Errorf("node2 has a shell history of %s bytes", got)
	}
	for _, script := range []string{
		"cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null; nproc",
		"docker ps -a --format '{{.Image}} {{.Command}}'",
		"docker images --format '{{.Repository}}:{{.Tag}}'",
		"docker volume ls -q; docker network ls --format '{{.Name}} {{.Driver}}' | sort",
		"ls -A /root /tmp",
	} {
		for _, node := range []string{"node1", "node2"} {
			if got, fresh := run(pooled, c, node, script), run(plain, fresh, node, script); got != fresh {
				t.Errorf("%s in the claimed %s:\n%s\nin a fresh one:\n%s", script, node, got, fresh)
			}
		}
	}
	limits := run(pooled, c, "node1", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
	if m := driver(t).Limits().Memory; m > 0 && limits != fmt.Sprint(m) {
		t.Errorf("node1's memory limit %s, want %d", limits, m)
	}
	refilled := waitPool(t, pooled, "swarm-1m1w", 1)
	for _, s := range []*server{pooled, plain} {
		if n := counter(t, s, "sandlot_pool_fill_failures_total", "error"); n != 0 {
			t.Errorf("%v pooled sessions failed to be made", n)
		}
	}

	// A restart keeps the pooled session and its nodes (nothing made again), and gives it once.
	pooled.stop()
	again := newServer(t, rdb, serverOpts{limits: l, cfg: session.Config{Pool: map[string]int{"swarm-1m1w": 1}}})
	time.Sleep(3 * session.ReaperInterval)
	if got := waitPool(t, again, "swarm-1m1w", 1); got[0] != refilled[0] {
		t.Fatalf("after a restart the pool holds %v, want %v", got, refilled)
	}
	first, second := again.create(map[string]string{"template": "swarm-1m1w"}), again.create(map[string]string{"template": "swarm-1m1w"})
	if first.ID != refilled[0] || second.ID == first.ID {
		t.Errorf("after the restart: claimed %s then %s; pooled was %s", first.ID, second.ID, refilled[0])
	}
	if got := run(again, first, "node1", "docker node ls --format '{{.Status}}' | grep -c '^Ready$'"); got != "2" {
		t.Errorf("the pooled swarm after the restart: %s Ready", got)
	}
}

// BenchmarkPoolClaim: a session from the pool to a usable node, against the same made the usual way, alternating
// in one run, each with the engine otherwise idle; medians and ratios. Usable is: for 1-node, its first exec (of
// `true`) answering, and ("1-node-shell") its terminal running a first command typed into it, the way a person
// starts (the claim opens the first node's shell ahead); for swarm-3m2w, `docker node ls` showing 5 Ready.
func BenchmarkPoolClaim(b *testing.B) {
	rdb := redistest.New(b)
	l := quota.Limits{Capacity: 30, SessionsPerClient: 50, CreationsPerClient: 1000}
	pooled := newServer(b, rdb, serverOpts{limits: l,
		cfg: session.Config{Pool: map[string]int{"1-node": 1, "swarm-3m2w": 1}}})
	plain := newServer(b, rdb, serverOpts{limits: l})
	type kind struct{ name, template, script, want string }
	answered := map[string][]time.Duration{} // to the answer of the creation (of which the claim)
	usable := func(s *server, k kind) time.Duration {
		start := time.Now()
		c := s.create(map[string]string{"template": k.template})
		answered[s.URL+k.name] = append(answered[s.URL+k.name], time.Since(start))
		for k.script != "" {
			var res execResponse
			s.mustCall(http.StatusOK, "POST", "/api/v1/sessions/"+c.ID+"/instances/node1/exec", c.Token,
				map[string][]string{"cmd": {"sh", "-c", k.script}}, &res)
			if res.ExitCode == 0 && strings.TrimSpace(res.Stdout) == k.want {
				break
			}
			if time.Since(start) > time.Minute {
				b.Fatalf("%s never answered %q: %+v", k.template, k.want, res)
			}
		}
		if k.script == "" {
			wsTerminal(b, s, c, 1, "echo READY-$((6*7))").Close()
		}
		took := time.Since(start)
		s.mustCall(http.StatusOK, "DELETE", "/api/v1/sessions/"+c.ID, c.Token, nil, nil)
		return took
	}
	kinds := []kind{
		{"1-node", "1-node", "true", ""},
		{"1-node-shell", "1-node", "", ""},
		{"swarm-3m2w", "swarm-3m2w", "docker node ls --format '{{.Status}}' | grep -c '^Ready$'", "5"},
	}
	got := map[string][]time.Duration{}
	measure := func(name string, s *server, k kind) {
		// Each measurement alone: the pool full and the engine settled after the refill (nodes just made keep it
		// busy for a moment), as it is when a pooled session has waited for its person.
		waitPool(b, pooled, "1-node", 1)
		waitPool(b, pooled, "swarm-3m2w", 1)
		time.Sleep(3 * time.Second)
		got[name+k.name] = append(got[name+k.name], usable(s, k))
	}
	for i := 0; i < b.N; i++ {
		for _, k := range kinds {
			if i%2 == 0 {
				measure("pool ", pooled, k)
				measure("plain ", plain, k)
			} else {
				measure("plain ", plain, k)
				measure("pool ", pooled, k)
			}
		}
	}
	for _, k := range kinds {
		p, n := percentile(got["pool "+k.name], 50), percentile(got["plain "+k.name], 50)
		b.ReportMetric(ms(p), "ms-pool-"+k.name)
		b.ReportMetric(ms(n), "ms-plain-"+k.name)
		b.ReportMetric(float64(p)/float64(n), "ratio-"+k.name)
		b.ReportMetric(ms(percentile(answered[pooled.URL+k.name], 50)), "ms-pool-answer-"+k.name)
	}
	if claims := counter(b, pooled, "sandlot_pool_claims_total", "1-node") + counter(b, pooled, "sandlot_pool_claims_total", "swarm-3m2w"); int(claims) != len(kinds)*b.N {
		b.Errorf("%v claims, want %d", claims, len(kinds)*b.N)
	}
}
