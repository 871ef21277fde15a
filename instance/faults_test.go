package instance

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFaultScriptAndNote(t *testing.T) {
	links := map[string]nodeLink{"node1": {pid: 10, port: "veth1"}, "node2": {pid: 20, port: "veth2"}}
	note := []byte(strings.Repeat(`{"links":[{"from":"node1","to":"node2","loss":"20%"}]}`, 20))
	s := faultScript("nfabc", "me", "sl-x", links, []LinkFault{
		{From: "node1", To: "node2", Loss: 0.2, Rate: 1e6},
		{From: "node2", To: "node1", Drop: true},
		{From: "node3", To: "node1", Drop: true}, // node3 not running: no rule
	}, note)
	for _, want := range []string{
		"-A " + faultChain("nfabc") + " -m physdev --physdev-in veth1 --physdev-out veth2 -m statistic --mode random --probability 0.200000 -j DROP",
		"-A " + faultChain("nfabc") + " -m physdev --physdev-in veth2 --physdev-out veth1 -j DROP",
		"--physdev-in veth1 --physdev-out veth2 -j CLASSIFY --set-class 5d:1",
		"qdisc add dev veth2 root handle 5d: htb",
		"class add dev veth2 parent 5d: classid 5d:1 htb rate 1000000bit ceil 1000000bit",
		`--comment "sandlot session=nfabc owner=me"`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "node3") || strings.Count(s, "-j DROP") != 2 {
		t.Errorf("script has rules for a node that is not running:\n%s", s)
	}
	// The note comes back from the chain's listing, whatever its length.
	var listing strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, "--comment \"note") {
			listing.WriteString(strings.ReplaceAll(line, `"`, "") + "\n") // iptables -S drops the quotes
		}
	}
	got, err := parseFaultNote(listing.String())
	if err != nil || string(got) != string(note) {
		t.Fatalf("note read back as %q, %v", got, err)
	}
	if o := commentOwner(`a"b c;$(x)`); o != "a_b_c___x_" {
		t.Fatalf("owner in a comment: %q", o)
	}
	if len(faultChain(strings.Repeat("a", 40))) > 28 {
		t.Fatal("chain name over iptables' limit")
	}
}

func TestParseNodeLinks(t *testing.T) {
	out := `bridge sl-1
24: veth1a@if23: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue master sl-1 state UP mode DEFAULT group default \    link/ether aa link-netnsid 1
26: veth2b@if25: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue master sl-1 state UP mode DEFAULT group default \    link/ether bb link-netnsid 2
pid 100
1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN
23: eth0@if24: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP \    link/ether cc link-netnsid 0
5: veth9@if26: <BROADCAST> mtu 1500 \    link/ether dd link-netnsid 1
pid 200
25: eth0@if26: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP \    link/ether ee link-netnsid 0
`
	links, err := parseNodeLinks(out)
	if err != nil || links[100] != "veth1a" || links[200] != "veth2b" || len(links) != 2 {
		t.Fatalf("links %v, %v", links, err)
	}
	// A node that makes an interface whose indices mirror another node's port claims it too: refused.
	odd := strings.Replace(out, "26: veth2b@if25", "26: v$(id)@if25", 1)
	if links, _ := parseNodeLinks(odd); links[200] != "" {
		t.Fatalf("a port with an odd name was taken: %v", links)
	}
	forged := out + "pid 300\n25: fake@if26: <BROADCAST> mtu 1500 \\    link/ether ff link-netnsid 0\n"
	if _, err := parseNodeLinks(forged); err == nil {
		t.Fatal("a port claimed by two nodes was accepted")
	}
}

// newFaultSession makes a session (id prefix "nf") with count nodes and removes it when the test ends.
func newFaultSession(t testing.TB, d *Driver, count int) (string, []Instance) {
	t.Helper()
	session, _ := newSessionNamed(t, d, "nf")
	return session, createNodes(t, d, session, count)
}

// inEchos is how many ICMP echo requests a node has received.
func inEchos(t *testing.T, d *Driver, session, node string) int {
	out := sh(t, d, session, node, `awk '/^Icmp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "InEchos") c = i; h = 1 } else print $c }' /proc/net/snmp`)
	n, err := strconv.Atoi(out)
	if err != nil {
		t.Fatalf("InEchos of %s: %q", node, out)
	}
	return n
}

// reaches says whether node can ping addr (3 tries, 1 s each at most).
func reaches(t *testing.T, d *Driver, session, node, addr string) bool {
	code, _ := exitCode(t, d, session, node, "ping -c 2 -i 0.2 -W 1 "+addr)
	return code == 0
}

func setFaults(t *testing.T, d *Driver, session string, faults ...LinkFault) {
	t.Helper()
	if err := d.SetFaults(testContext(t), session, faults, []byte(fmt.Sprint(len(faults)))); err != nil {
		t.Fatal(err)
	}
}

// TestFaultsOnNodes is the acceptance of faults on real nodes, one session for all of it: a loss in one direction
// (1,000 pings at 10 ms), a rate (1 MB at 1 Mbit/s), a partition that root in the nodes cannot lift, another
// session untouched, latency as the kernel allows, and nothing left in the engine's namespace afterwards.
func TestFaultsOnNodes(t *testing.T) {
	d := newDriver(t, NetworkBridge, nil)
	support := d.FaultSupport()
	if !support.Filter || !support.Shape {
		t.Fatalf("the kernel lacks what faults need: %+v (features %v)", support, d.Features())
	}
	session, nodes := newFaultSession(t, d, 3)
	other, otherNodes := newFaultSession(t, d, 2)
	ip := func(i int) string { return nodes[i].IP.String() }

	t.Run("loss", func(t *testing.T) {
		setFaults(t, d, session, LinkFault{From: "node1", To: "node2", Loss: 0.2})
		before1, before2 := inEchos(t, d, session, "node1"), inEchos(t, d, session, "node2")
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); exitCode(t, d, session, "node1", "ping -q -c 1000 -i 0.01 -W 1 "+ip(1)) }()
		go func() { defer wg.Done(); exitCode(t, d, session, "node2", "ping -q -c 1000 -i 0.01 -W 1 "+ip(0)) }()
		wg.Wait()
		got2 := inEchos(t, d, session, "node2") - before2 // sent by node1, through the loss
		got1 := inEchos(t, d, session, "node1") - before1 // sent by node2: the other direction
		t.Logf("node1 -> node2: %d of 1000 arrived; node2 -> node1: %d", got2, got1)
		if got2 < 750 || got2 > 850 {
			t.Errorf("node1 -> node2 lost %.1f%%, want 20%% +- 5%%", float64(1000-got2)/10)
		}
		if got1 < 995 {
			t.Errorf("node2 -> node1 lost %d of 1000 with no fault that way", 1000-got1)
		}
		setFaults(t, d, session)
		out := sh(t, d, session, "node1", "ping -q -c 100 -i 0.01 -W 1 "+ip(1)+" | grep -o '[0-9.]*% packet loss'")
		if out != "0% packet loss" {
			t.Errorf("after clearing: %s", out)
		}
	})

	t.Run("rate", func(t *testing.T) {
		sh(t, d, session, "node1", "head -c 1000000 /dev/urandom >/tmp/mb && cd /tmp && (python3 -m http.server 8000 >/dev/null 2>&1 &) && sleep 0.5")
		setFaults(t, d, session, LinkFault{From: "node1", To: "node2", Rate: 1_000_000})
		timed := func(from string) float64 {
			out := sh(t, d, session, from, "curl -s -o /dev/null -w '%{time_total}' http://"+ip(0)+":8000/mb")
			s, err := strconv.ParseFloat(out, 64)
			if err != nil {
				t.Fatalf("curl said %q", out)
			}
			return s
		}
		shaped, plain := timed("node2"), timed("node3")
		t.Logf("1 MB node1 -> node2 at 1 Mbit/s: %.2f s; node1 -> node3 (no fault): %.3f s", shaped, plain)
		if shaped < 6.4 || shaped > 9.6 {
			t.Errorf("1 MB at 1 Mbit/s took %.2f s, want 8 s +- 20%%", shaped)
		}
		if plain > 1 {
			t.Errorf("node1 -> node3 has no fault and took %.2f s", plain)
		}
		setFaults(t, d, session)
		if s := timed("node2"); s > 1 {
			t.Errorf("after clearing, 1 MB took %.2f s", s)
		}
	})

	t.Run("partition", func(t *testing.T) {
		setFaults(t, d, session, LinkFault{From: "node1", To: "node2", Drop: true},
			LinkFault{From: "node2", To: "node1", Drop: true},
			LinkFault{From: "node1", To: "node3", Drop: true},
			LinkFault{From: "node3", To: "node1", Drop: true})
		check := func(when string) {
			t.Helper()
			if reaches(t, d, session, "node1", ip(1)) || reaches(t, d, session, "node3", ip(0)) {
				t.Errorf("%s: the partition lets node1 and the others reach each other", when)
			}
			if !reaches(t, d, session, "node2", ip(2)) {
				t.Errorf("%s: node2 and node3, on one side, do not reach each other", when)
			}
		}
		check("partitioned")
		if !reaches(t, d, other, "node1", otherNodes[1].IP.String()) {
			t.Error("another session's nodes do not reach each other")
		}
		// Root in the nodes does what Comcast and Blockade's man pages say undoes faults.
		for _, n := range []string{"node1", "node2"} {
			exitCode(t, d, session, n, "tc qdisc del dev eth0 root; iptables -F; iptables -t mangle -F; "+
				"ip link set eth0 down; ip link set eth0 up; ip link set eth0 promisc on; ip link set eth0 address 02:42:00:00:00:0"+n[4:])
		}
		time.Sleep(time.Second)
		check("after tc, iptables and ip link in the nodes")
		rules, err := d.FaultRules(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(rules, faultChain(session)) || strings.Contains(rules, faultChain(other)) {
			t.Errorf("fault rules, with session %s faulted and %s not:\n%s", session, other, rules)
		}
		note, err := d.Faults(testContext(t), session)
		if err != nil || string(note) != "4" {
			t.Errorf("note read back as %q, %v", note, err)
		}
		setFaults(t, d, session)
		if !reaches(t, d, session, "node1", ip(1)) {
			t.Error("healed, node1 does not reach node2")
		}
	})

	t.Run("latency", func(t *testing.T) {
		err := d.SetFaults(testContext(t), session, []LinkFault{{From: "node1", To: "node2", Latency: 100 * time.Millisecond}}, nil)
		if !support.Netem {
			if !errors.Is(err, ErrKernelFeature) || !strings.Contains(err.Error(), "sch_netem") {
				t.Fatalf("latency without netem: %v", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		out := sh(t, d, session, "node1", "ping -c 5 -i 0.2 "+ip(1)+" | tail -1")
		t.Log(out)
		// rtt min/avg/max/mdev = a/b/c/d ms
		fields := strings.Split(strings.Fields(out)[3], "/")
		if avg, _ := strconv.ParseFloat(fields[1], 64); avg < 95 || avg > 200 {
			t.Errorf("latency 100ms: average rtt %v ms", avg)
		}
		setFaults(t, d, session)
	})

	// What Comcast and Blockade do by hand, root in a node does to its own and its inner containers' interfaces
	// (docs/network-faults.md says which commands of the chapter work here).
	t.Run("tc and iptables inside a node", func(t *testing.T) {
		sh(t, d, session, "node3", `tc qdisc add dev eth0 root tbf rate 1mbit burst 32kbit latency 400ms && tc qdisc del dev eth0 root
tc qdisc add dev eth0 root handle 1: htb default 1 && tc class add dev eth0 parent 1: classid 1:1 htb rate 5mbit && tc qdisc del dev eth0 root
iptables -A OUTPUT -d 198.51.100.1 -m statistic --mode random --probability 0.2 -j DROP && iptables -D OUTPUT -d 198.51.100.1 -m statistic --mode random --probability 0.2 -j DROP
docker run -d --name nfinner busybox sleep 120 >/dev/null
pid=$(docker inspect -f '{{.State.Pid}}' nfinner)
v=$(ip -o link show master docker0 | sed -n 's/^[0-9]*: \([^@:]*\).*/\1/p' | head -1)
tc qdisc add dev "$v" root tbf rate 1mbit burst 32kbit latency 400ms && tc qdisc del dev "$v" root
nsenter -t "$pid" -n tc qdisc add dev eth0 root tbf rate 1mbit burst 32kbit latency 400ms
nsenter -t "$pid" -n tc qdisc del dev eth0 root
nsenter -t "$pid" -n iptables -A INPUT -p tcp --dport 80 -j DROP
docker rm -f nfinner >/dev/null`)
		code, out := exitCode(t, d, session, "node3", "tc qdisc add dev eth0 root netem delay 100ms")
		if (code == 0) != support.Netem {
			t.Errorf("netem inside a node: exit %d (%s), and the probe says netem is %v", code, out, support.Netem)
		}
		exitCode(t, d, session, "node3", "tc qdisc del dev eth0 root")
	})

	// A restarted node has a new link: the next picture finds it.
	t.Run("after a restart", func(t *testing.T) {
		setFaults(t, d, session, LinkFault{From: "node3", To: "node1", Drop: true})
		if err := d.Restart(testContext(t), session, "node3"); err != nil {
			t.Fatal(err)
		}
		setFaults(t, d, session, LinkFault{From: "node3", To: "node1", Drop: true})
		if reaches(t, d, session, "node3", ip(0)) || !reaches(t, d, session, "node3", ip(1)) {
			t.Error("after node3 restarted, its fault is not on its new link")
		}
		setFaults(t, d, session)
	})

	t.Run("bad input", func(t *testing.T) {
		for _, f := range []LinkFault{{From: "node1", To: "node9", Drop: true}, {From: "node1", To: "node1", Drop: true},
			{From: "node1", To: "node2", Loss: 1.5}, {From: "x", To: "node2"}} {
			if err := d.SetFaults(testContext(t), session, []LinkFault{f}, nil); err == nil {
				t.Errorf("%+v accepted", f)
			}
		}
	})

	// A process that dies with faults in place: another one's GC removes them once the session is dead.
	setFaults(t, d, other, LinkFault{From: "node1", To: "node2", Drop: true})
	d2 := newDriver(t, NetworkBridge, nil)
	report, err := d2.GC(testContext(t), func(_ context.Context, s string) (bool, error) { return s != other, nil })
	if err != nil || report.Faults != 1 {
		t.Errorf("GC of a dead session's faults: %+v, %v", report, err)
	}
	if rules, _ := d.FaultRules(testContext(t)); strings.Contains(rules, faultChain(other)) {
		t.Errorf("after GC, the dead session's chain is still there:\n%s", rules)
	}

	// Faults left in place go with the session.
	setFaults(t, d, session, LinkFault{From: "node1", To: "node2", Rate: 1e6, Loss: 0.5})
	if err := d.DeleteSession(testContext(t), session); err != nil {
		t.Fatal(err)
	}
	rules, err := d.FaultRules(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(rules, faultChain(session)) || strings.Contains(rules, "htb") || strings.Contains(rules, faultRoot) {
		t.Errorf("after the session ended, the engine's namespace still has:\n%s", rules)
	}
}

// The caps isolation on the local engine (SANDLOT_CAPS_ENGINE): faults land in the host's own namespace, where
// its session bridges are, and leave nothing there.
func TestFaultsCapsEngine(t *testing.T) {
	engine := os.Getenv("SANDLOT_CAPS_ENGINE")
	if engine == "" {
		t.Skip("SANDLOT_CAPS_ENGINE names no engine for the caps isolation")
	}
	d := newDriver(t, NetworkBridge, func(c *Config) {
		c.Engine, c.Isolation = engine, IsolationCaps
		c.SubnetPool = netip.MustParsePrefix("198.19.192.0/18")
	})
	t.Cleanup(func() { removeFirewall(t, d) })
	session, nodes := newFaultSession(t, d, 2)
	setFaults(t, d, session, LinkFault{From: "node1", To: "node2", Drop: true})
	if reaches(t, d, session, "node1", nodes[1].IP.String()) {
		t.Error("node1 reaches node2 through a partition")
	}
	if err := d.DeleteSession(testContext(t), session); err != nil {
		t.Fatal(err)
	}
	if rules, err := d.FaultRules(testContext(t)); err != nil || strings.Contains(rules, "SLNF-") || strings.Contains(rules, faultRoot) {
		t.Errorf("after the session, the host has: %s (%v)", rules, err)
	}
}
