package api

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sandlot/sandlot/internal/redistest"
)

// The partition on real nodes: {node1,node2,node3} | {node4,node5} on a swarm-3m2w session, through the
// API. Pings across the cut fail both ways and pass within each side; node1's `docker node ls` shows node4 and
// node5 Down within 30 s; healing brings them back Ready; a fault with a 10 s duration heals by itself; once the
// session has ended, nothing of its faults is left in the engine's namespace.
func TestNetworkFaultsSwarm(t *testing.T) {
	s := newServer(t, redistest.New(t), serverOpts{})
	c := s.create(map[string]string{"template": "swarm-3m2w"})
	path := "/api/v1/sessions/" + c.ID
	run := func(node, script string) (int, string) {
		t.Helper()
		var res execResponse
		s.mustCall(http.StatusOK, "POST", path+"/instances/"+node+"/exec", c.Token,
			map[string][]string{"cmd": {"sh", "-c", script}}, &res)
		return res.ExitCode, res.Stdout + res.Stderr
	}
	ips := map[string]string{} // by address, not by name: the faults are the question here, not the engine's DNS
	for _, in := range c.Instances {
		ips[in.Name] = in.IP
	}
	reach := func(from, to string) bool {
		code, out := run(from, "ping -c 3 -i 0.2 -W 1 "+ips[to])
		t.Logf("%s -> %s: %s", from, to, lastLine(out))
		return code == 0
	}
	nodeStatus := func() string {
		_, out := run("node1", "docker node ls --format '{{.Hostname}}={{.Status}}' | sort | tr '\\n' ' '")
		return strings.TrimSpace(out)
	}
	waitStatus := func(want string, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			got := nodeStatus()
			if got == want {
				return time.Since(start)
			}
			if time.Since(start) > within {
				t.Fatalf("docker node ls after %s: %q, want %q", within, got, want)
			}
			time.Sleep(time.Second)
		}
	}
	ready := "node1=Ready node2=Ready node3=Ready node4=Ready node5=Ready"
	waitStatus(ready, 30*time.Second)

	var put networkResponse
	s.mustCall(http.StatusOK, "PUT", path+"/network", c.Token,
		`{"partitions":[["node1","node2","node3"],["node4","node5"]]}`, &put)
	for _, p := range [][2]string{{"node1", "node4"}, {"node5", "node2"}, {"node3", "node5"}, {"node4", "node1"}} {
		if reach(p[0], p[1]) {
			t.Errorf("%s reaches %s across the partition", p[0], p[1])
		}
	}
	for _, p := range [][2]string{{"node1", "node3"}, {"node2", "node1"}, {"node4", "node5"}, {"node5", "node4"}} {
		if !reach(p[0], p[1]) {
			rules, _ := driver(t).FaultRules(t.Context())
			t.Errorf("%s does not reach %s on its side of the partition; the rules:\n%s", p[0], p[1], rules)
		}
	}
	took := waitStatus("node1=Ready node2=Ready node3=Ready node4=Down node5=Down", 30*time.Second)
	t.Logf("node4 and node5 Down %.1f s after the partition", took.Seconds())

	s.mustCall(http.StatusNoContent, "DELETE", path+"/network", c.Token, nil, nil)
	took = waitStatus(ready, 60*time.Second)
	t.Logf("Ready again %.1f s after healing", took.Seconds())

	// A fault with a duration heals by itself.
	s.mustCall(http.StatusOK, "PUT", path+"/network", c.Token,
		`{"links":[{"from":"node1","to":"node2","loss":"100%","duration":"10s"}]}`, &put)
	if reach("node1", "node2") || !reach("node2", "node3") {
		t.Error("a 100% loss from node1 to node2 lets node1 reach node2, or stops node2 reaching node3")
	}
	time.Sleep(time.Until(*put.Links[0].ExpiresAt) + time.Second)
	if !reach("node1", "node2") {
		t.Error("the 10 s fault did not heal")
	}
	var got networkResponse
	s.mustCall(http.StatusOK, "GET", path+"/network", c.Token, nil, &got)
	if len(got.Links) != 0 {
		t.Errorf("after its duration the fault is still listed: %+v", got.Links)
	}

	// A node restarted through the API keeps its faults: its new link gets them.
	s.mustCall(http.StatusOK, "PUT", path+"/network", c.Token, `{"links":[{"from":"node4","to":"node5","loss":"100%"}]}`, &put)
	s.mustCall(http.StatusOK, "POST", path+"/instances/node5/restart", c.Token, nil, nil)
	if reach("node4", "node5") || !reach("node3", "node5") {
		t.Error("after node5 restarted, node4 reaches it through a 100% loss, or node3 does not")
	}

	// Faults in place when the session ends go with it.
	s.mustCall(http.StatusOK, "PUT", path+"/network", c.Token,
		`{"links":[{"from":"node1","to":"*","rate":"1mbit","loss":"10%"}],"partitions":[["node5"]]}`, &put)
	s.mustCall(http.StatusOK, "DELETE", path, c.Token, nil, nil)
	rules, err := driver(t).FaultRules(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(rules, "SLNF-") || strings.Contains(rules, "htb") || strings.Contains(rules, "SANDLOT-FAULTS") {
		t.Errorf("after the session ended, the engine's namespace has:\n%s", rules)
	}
}

// lastLine is the last non-empty line of out: ping's summary.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}
