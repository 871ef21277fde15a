package instance

import (
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
)

// The caps isolation, for trusted installs, on an engine without user namespaces (SANDLOT_CAPS_ENGINE, the local
// engine under `make test`): the driver says at start what it costs, and a lab works: two nodes reach each other
// by name, run inner containers, form a swarm and ssh to each other. (The whole suite runs in the userns isolation.)
func TestCapsIsolationSmoke(t *testing.T) {
	engine := os.Getenv("SANDLOT_CAPS_ENGINE")
	if engine == "" {
		if os.Getenv("SANDLOT_REQUIRE_DOCKER") == "1" {
			t.Fatal("SANDLOT_CAPS_ENGINE names no engine for the caps isolation (make test sets it)")
		}
		t.Skip("SANDLOT_CAPS_ENGINE names no engine for the caps isolation")
	}
	var logged strings.Builder
	d := newDriver(t, NetworkBridge, func(c *Config) {
		c.Engine, c.Isolation = engine, IsolationCaps
		// Apart from the node engine's pool, which the host routes into the node engine's namespace.
		c.SubnetPool = netip.MustParsePrefix("198.19.192.0/18")
		c.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(testWriter{t}, &logged), nil))
	})
	t.Cleanup(func() { removeFirewall(t, d) })
	if d.Isolation() != IsolationCaps {
		t.Fatalf("isolation %s, want caps", d.Isolation())
	}
	if w := IsolationWarning(IsolationCaps); !strings.Contains(w, "can become root on the host") ||
		!strings.Contains(logged.String(), w) {
		t.Errorf("the driver did not warn at start that learners can become root on the host: %q", logged.String())
	}
	session, _ := newSession(t, d)
	twoNodeSwarm(t, d, session)
	if got := sh(t, d, session, "node1", "ssh node2 hostname"); got != "node2" {
		t.Errorf("ssh node2 hostname: %q", got)
	}
	// Another engine's isolation is refused outright: caps on the node engine, userns on this one.
	if _, err := New(testContext(t), Config{Engine: engine, Isolation: IsolationUserns, Network: NetworkBridge,
		Owner: testOwner, SubnetPool: d.cfg.SubnetPool}); err == nil || !strings.Contains(err.Error(), "userns-remap") {
		t.Errorf("userns on an engine without user namespaces: %v", err)
	}
}

// removeFirewall takes Sandlot's chains off the engine's host again, so that a test leaves no rules behind.
func removeFirewall(t testing.TB, d *Driver) {
	script := pickBackend + `for t in "$ipt" "$ip6t"; do
	for hook in INPUT:SANDLOT-INPUT FORWARD:SANDLOT-FORWARD DOCKER-USER:SANDLOT-FORWARD; do
		while $t -D ${hook%%:*} -j ${hook#*:} 2>/dev/null; do :; done
	done
	for c in SANDLOT-INPUT SANDLOT-FORWARD; do $t -F $c 2>/dev/null; $t -X $c 2>/dev/null; done
done; true`
	if _, err := d.runFirewallHelper(testContext(t), "firewall-remove", script); err != nil {
		t.Errorf("remove the firewall: %v", err)
	}
}
