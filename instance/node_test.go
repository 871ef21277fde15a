package instance

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// Two nodes of a session reach each other by hostname, form a swarm, and run busybox offline.
func TestSwarmAcrossNodes(t *testing.T) {
	for _, kind := range kinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			d := newDriver(t, kind, nil)
			session, _ := newSession(t, d)
			nodes := twoNodeSwarm(t, d, session)
			if got := sh(t, d, session, "node1", "getent hosts node2 | cut -d' ' -f1"); got != nodes[1].IP.String() {
				t.Fatalf("node2 resolves to %q in node1, want %s", got, nodes[1].IP)
			}
		})
	}
}

// twoNodeSwarm makes node1 and node2 and checks what a lab does first: they ping each other by name, run busybox
// offline, and form a swarm that node1 sees Ready.
func twoNodeSwarm(t *testing.T, d *Driver, session string) []Instance {
	t.Helper()
	nodes := createNodes(t, d, session, 2)
	sh(t, d, session, "node1", "ping -c1 -W2 node2")
	sh(t, d, session, "node2", "ping -c1 -W2 node1")
	if got := sh(t, d, session, "node1", "docker run --rm busybox echo ok"); got != "ok" {
		t.Fatalf("inner busybox printed %q", got)
	}
	sh(t, d, session, "node1", "docker swarm init --advertise-addr "+nodes[0].IP.String())
	token := sh(t, d, session, "node1", "docker swarm join-token -q worker")
	sh(t, d, session, "node2", fmt.Sprintf("docker swarm join --token %s %s:2377", token, nodes[0].IP))
	eventually(t, 30*time.Second, func() error {
		out := sh(t, d, session, "node1", "docker node ls --format '{{.Hostname}} {{.Status}}'")
		if out != "node1 Ready\nnode2 Ready" && out != "node2 Ready\nnode1 Ready" {
			return fmt.Errorf("docker node ls: %q", out)
		}
		return nil
	})
	return nodes
}

// Nodes of two sessions cannot reach each other by any address, by ICMP or TCP; nodes of one session can.
func TestSessionsIsolated(t *testing.T) {
	for _, kind := range kinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			d := newDriver(t, kind, nil)
			sessionA, _ := newSession(t, d)
			sessionB, _ := newSession(t, d)
			createNodes(t, d, sessionA, 1)
			createNodes(t, d, sessionB, 2)

			// A TCP listener on B's node1; B's node2 reaching it proves the listener works.
			if _, err := d.Exec(testContext(t), sessionB, "node1",
				[]string{"socat", "TCP-LISTEN:9000,fork,reuseaddr", "EXEC:cat"}, ExecOptions{Detach: true}); err != nil {
				t.Fatal(err)
			}
			addrs := strings.Fields(sh(t, d, sessionB, "node1",
				"ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1 | grep -v '^172\\.17\\.'"))
			if len(addrs) == 0 {
				t.Fatal("node1 of session B has no address")
			}
			eventually(t, 10*time.Second, func() error {
				if code, out := exitCode(t, d, sessionB, "node2", "nc -z -w2 node1 9000"); code != 0 {
					return fmt.Errorf("node2 cannot reach its own session's node1:9000: %s", out)
				}
				return nil
			})
			for _, addr := range addrs {
				if code, out := exitCode(t, d, sessionA, "node1", "ping -c1 -W1 "+addr); code == 0 {
					t.Errorf("session A pings session B's node at %s: %s", addr, out)
				}
				if code, out := exitCode(t, d, sessionA, "node1", "nc -z -w2 "+addr+" 9000"); code == 0 {
					t.Errorf("session A connects to session B's node at %s:9000: %s", addr, out)
				}
			}
		})
	}
}

// Nodes cannot open connections to the host, and the rules that keep them from cloud metadata are in place.
func TestNodesCannotReachHost(t *testing.T) {
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	for _, kind := range kinds {
		t.Run(string(kind), func(t *testing.T) {
			d := newDriver(t, kind, nil)
			session, sessionNet := newSession(t, d)
			createNodes(t, d, session, 1)

			// The host's own addresses, and this session's gateway; other sessions' bridges come and go as the
			// tests running beside this one make and remove them.
			var hostAddrs []string
			for _, a := range hostIPv4s(t) {
				if addr := netip.MustParseAddr(a); !d.cfg.SubnetPool.Contains(addr) {
					hostAddrs = append(hostAddrs, a)
				}
			}
			// The session's gateway is the host's where the engine's bridges are in the host's network namespace
			// (not so on the node engine, whose namespace is its own).
			if kind == NetworkBridge && slices.Contains(hostIPv4s(t), sessionNet.Gateway.String()) {
				hostAddrs = append(hostAddrs, sessionNet.Gateway.String())
			}
			for _, addr := range hostAddrs {
				c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, fmt.Sprint(port)), 2*time.Second)
				if err != nil {
					t.Fatalf("control: the host cannot reach its own listener at %s: %v", addr, err)
				}
				c.Close()
				if code, out := exitCode(t, d, session, "node1", fmt.Sprintf("nc -z -w2 %s %d", addr, port)); code == 0 {
					t.Errorf("node1 connects to the host at %s:%d: %s", addr, port, out)
				}
			}

			rules, err := d.FirewallRules(testContext(t))
			if err != nil {
				t.Fatal(err)
			}
			pool := d.cfg.SubnetPool.String()
			want := []string{
				"-A INPUT -j SANDLOT-INPUT",
				"-j SANDLOT-FORWARD",
				"-A SANDLOT-INPUT -s " + pool + " -j REJECT",
				"-A SANDLOT-FORWARD -s " + pool + " -d 169.254.0.0/16 -j REJECT",
				"-A SANDLOT-FORWARD -d " + pool + " ! -o sl-+ -j REJECT",
				"ip6 -A INPUT -j SANDLOT-INPUT",
				"ip6 -A FORWARD -j SANDLOT-FORWARD",
				"ip6 -A SANDLOT-INPUT -i sl-+ -j DROP",
				"ip6 -A SANDLOT-FORWARD -i sl-+ -j DROP",
				"ip6 -A SANDLOT-FORWARD -o sl-+ -j DROP",
			}
			if kind == NetworkOverlay {
				want = append(want, "-A SANDLOT-INPUT -i docker_gwbridge -j REJECT",
					"-A SANDLOT-FORWARD -d 169.254.0.0/16 -i docker_gwbridge -j REJECT")
			}
			for _, w := range want {
				if !strings.Contains(rules, w) {
					t.Errorf("firewall lacks %q; rules:\n%s", w, rules)
				}
			}
		})
	}
}

// hostIPv4s are this host's non-loopback IPv4 addresses (its own interfaces, the engine's bridges included).
func hostIPv4s(t *testing.T) []string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			out = append(out, ipn.IP.String())
		}
	}
	if len(out) == 0 {
		t.Fatal("the host has no IPv4 address besides loopback")
	}
	return out
}

// A memory hog in an inner container does not take the node past its limit; a fork bomb in a node stops at its
// pids limit while the other nodes keep working.
func TestLimitsHold(t *testing.T) {
	const memLimit = 384 << 20
	const pidsLimit = 300
	for _, kind := range kinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			d := newDriver(t, kind, func(c *Config) { c.Memory, c.Pids = memLimit, pidsLimit })
			session, _ := newSession(t, d)
			nodes := createNodes(t, d, session, 2)

			// The hog (no limit of its own) prints its memory cgroup, then doubles a string until the kernel kills it.
			code, out := exitCode(t, d, session, "node1", `docker run --name hog busybox sh -c `+
				`'grep memory /proc/self/cgroup; x=0123456789; while :; do x="$x$x"; done'`)
			if code != 137 {
				t.Fatalf("inner memory hog exited %d, want 137 (killed): %s", code, out)
			}
			if want := "/" + nodes[0].ContainerID + "/docker/"; !strings.Contains(out, want) {
				t.Errorf("the inner container's memory cgroup is not nested under the node's (%s): %s", want, out)
			}
			if got := sh(t, d, session, "node1", "docker inspect -f '{{.State.OOMKilled}} {{.HostConfig.Memory}}' hog"); got != "true 0" {
				t.Errorf("inner hog: OOMKilled and own limit = %q, want \"true 0\"", got)
			}
			// The kernel charges memory in per-CPU batches, so usage may pass the limit by a batch (64 pages a CPU).
			// A peak near the limit shows the node's limit, the only one above the hog, is what stopped it.
			mem := cgroupFiles(t, nodes[0].ContainerID, "memory")
			slack := int64(runtime.NumCPU() * 64 * os.Getpagesize())
			peak := readInt(t, mem, "memory.max_usage_in_bytes", "memory.peak")
			if peak > memLimit+slack || peak < memLimit-(16<<20) {
				t.Errorf("node memory peaked at %d, want about its limit %d", peak, memLimit)
			}
			sh(t, d, session, "node1", "docker info >/dev/null")

			// The bomb runs detached; the node's pids cgroup must cap it.
			if _, err := d.Exec(testContext(t), session, "node1",
				[]string{"bash", "-c", "b() { b | b & }; b"}, ExecOptions{Detach: true}); err != nil {
				t.Fatal(err)
			}
			pids := cgroupFiles(t, nodes[0].ContainerID, "pids")
			eventually(t, 20*time.Second, func() error {
				if n := readInt(t, pids, "pids.current", "pids.current"); n < pidsLimit-5 {
					return fmt.Errorf("the bomb has only %d pids so far", n)
				}
				return nil
			})
			time.Sleep(2 * time.Second)
			if n := readInt(t, pids, "pids.current", "pids.current"); n > pidsLimit {
				t.Errorf("node1 has %d pids, above its limit %d", n, pidsLimit)
			}
			if got := sh(t, d, session, "node2", "echo ok"); got != "ok" {
				t.Errorf("node2 during the bomb: %q", got)
			}
			if err := d.Delete(testContext(t), session, "node1"); err != nil {
				t.Fatalf("remove the bombed node: %v", err)
			}
		})
	}
}

// A node survives stop, start and restart with its inner images, and comes back ready.
func TestStopStartRestart(t *testing.T) {
	d := newDriver(t, NetworkBridge, nil)
	session, _ := newSession(t, d)
	createNodes(t, d, session, 1)
	sh(t, d, session, "node1", "docker tag busybox:latest kept:1")

	ctx := testContext(t)
	if err := d.Stop(ctx, session, "node1"); err != nil {
		t.Fatal(err)
	}
	if in, err := d.Get(ctx, session, "node1"); err != nil || in.Status != "exited" {
		t.Fatalf("after stop: %+v, %v", in, err)
	}
	if err := d.Start(ctx, session, "node1"); err != nil {
		t.Fatal(err)
	}
	if err := d.Restart(ctx, session, "node1"); err != nil {
		t.Fatal(err)
	}
	if got := sh(t, d, session, "node1", "docker run --rm kept:1 echo back"); got != "back" {
		t.Fatalf("after restart: %q", got)
	}
	list, err := d.List(ctx, session)
	if err != nil || len(list) != 1 || list[0].Status != "running" || list[0].Hostname != "node1" {
		t.Fatalf("list: %+v, %v", list, err)
	}
	if err := d.Delete(ctx, session, "node1"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get(ctx, session, "node1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

// Bad names, duplicates and unknown nodes are refused with errors a caller can tell apart.
func TestCreateRefusals(t *testing.T) {
	d := newDriver(t, NetworkBridge, nil)
	session, _ := newSession(t, d)
	ctx := testContext(t)
	if _, err := d.Create(ctx, session, Spec{Name: "web"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("name web: %v", err)
	}
	if _, err := d.Create(ctx, session, Spec{Name: "node1", Hostname: "Bad_Host"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad hostname: %v", err)
	}
	if _, err := d.Create(ctx, "nosuchsession", Spec{Name: "node1"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("no network: %v", err)
	}
	in, err := d.Create(ctx, session, Spec{Name: "node1", Hostname: "manager"})
	if err != nil {
		t.Fatal(err)
	}
	if got := sh(t, d, session, "node1", "hostname"); got != "manager" || in.Hostname != "manager" {
		t.Errorf("hostname %q, instance %+v", got, in)
	}
	if _, err := d.Create(ctx, session, Spec{Name: "node1"}); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate: %v", err)
	}
	if err := d.Stop(ctx, session, "node7"); !errors.Is(err, ErrNotFound) {
		t.Errorf("stop unknown: %v", err)
	}
	if _, err := d.Exec(ctx, session, "node1", nil, ExecOptions{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty command: %v", err)
	}
}

// A terminal runs a login shell with the node's prompt, and follows resizes.
func TestTTY(t *testing.T) {
	d := newDriver(t, NetworkBridge, nil)
	session, _ := newSession(t, d)
	createNodes(t, d, session, 1)
	ctx := testContext(t)
	tty, err := d.OpenTTY(ctx, session, "node1", TTYOptions{Cols: 100, Rows: 30})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	screen := make(chan string, 1)
	go func() {
		var all strings.Builder
		r := bufio.NewReader(tty)
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			all.Write(buf[:n])
			if strings.Contains(all.String(), "size=40x120") || err != nil {
				screen <- all.String()
				return
			}
		}
	}()
	if _, err := tty.Write([]byte("echo size=$(stty size | tr ' ' x)\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := tty.Resize(ctx, 120, 40); err != nil {
		t.Fatal(err)
	}
	if _, err := tty.Write([]byte("echo size=$(stty size | tr ' ' x)\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case out := <-screen:
		for _, want := range []string{"Sandlot node node1", "[node1 ", "size=30x100", "size=40x120"} {
			if !strings.Contains(out, want) {
				t.Errorf("terminal lacks %q:\n%s", want, out)
			}
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no output from the terminal")
	}
	if _, err := tty.Write([]byte("exit 3\n")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		code, exited, err := tty.ExitCode(ctx)
		if err != nil || !exited || code != 3 {
			return fmt.Errorf("exit code %d, exited %v, err %v", code, exited, err)
		}
		return nil
	})
}

// Exec keeps a bounded amount of output and reports the exit code.
func TestExecOutput(t *testing.T) {
	d := newDriver(t, NetworkBridge, nil)
	session, _ := newSession(t, d)
	createNodes(t, d, session, 1)
	r, err := d.Exec(testContext(t), session, "node1", []string{"sh", "-c", "head -c 100000 /dev/zero; echo err >&2; exit 4"},
		ExecOptions{MaxOutput: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if r.ExitCode != 4 || len(r.Stdout) != 1000 || string(r.Stderr) != "err\n" || !r.Truncated {
		t.Fatalf("exit %d, %d bytes out, stderr %q, truncated %v", r.ExitCode, len(r.Stdout), r.Stderr, r.Truncated)
	}
	r, err = d.Exec(testContext(t), session, "node1", []string{"cat"}, ExecOptions{Stdin: strings.NewReader("fed")})
	if err != nil || string(r.Stdout) != "fed" {
		t.Fatalf("stdin: %q, %v", r.Stdout, err)
	}
}

// The engine being unreachable or the image missing is a clear error at once, never a hang.
func TestClearErrors(t *testing.T) {
	t.Run("engine unreachable", func(t *testing.T) {
		t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
		start := time.Now()
		_, err := New(context.Background(), Config{})
		if !errors.Is(err, ErrEngineUnreachable) || !strings.Contains(err.Error(), "bootstrap-host") {
			t.Fatalf("err = %v", err)
		}
		if time.Since(start) > 15*time.Second {
			t.Fatalf("took %s", time.Since(start))
		}
	})
	t.Run("image missing", func(t *testing.T) {
		newDriver(t, NetworkBridge, nil) // skips without an engine
		_, err := New(context.Background(), Config{Image: "sandlot/missing:none"})
		if !errors.Is(err, ErrImageMissing) || !strings.Contains(err.Error(), "make images") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("kernel features reported", func(t *testing.T) {
		d := newDriver(t, NetworkBridge, nil)
		f := d.Features()
		for _, name := range requiredFeatures {
			if !f[name] {
				t.Errorf("required feature %s reported missing on a host where nodes work", name)
			}
		}
		_, hostIPVS := os.Stat("/proc/net/ip_vs")
		if f["ipvs"] != (hostIPVS == nil) {
			t.Errorf("probe says ipvs=%v, host /proc/net/ip_vs: %v", f["ipvs"], hostIPVS)
		}
	})
}

// With tmpfs storage the node's /var/lib/docker has a hard size limit, and the node still works (busybox is
// imported at boot: there is no volume for the seeded store to be copied into).
func TestTmpfsStorageLimit(t *testing.T) {
	const size = 256 << 20
	d := newDriver(t, NetworkBridge, func(c *Config) { c.Storage, c.Disk = StorageTmpfs, size })
	if d.Limits().Disk != size {
		t.Fatalf("limits: %+v", d.Limits())
	}
	session, _ := newSession(t, d)
	createNodes(t, d, session, 1)
	if got := sh(t, d, session, "node1", "docker run --rm busybox echo ok"); got != "ok" {
		t.Fatalf("inner busybox on tmpfs storage: %q", got)
	}
	if got := sh(t, d, session, "node1", "df -k --output=size /var/lib/docker | tail -1"); got != fmt.Sprint(size>>10) {
		t.Errorf("/var/lib/docker is %s KiB, want %d", got, size>>10)
	}
	code, out := exitCode(t, d, session, "node1", "dd if=/dev/zero of=/var/lib/docker/fill bs=1M count=300")
	if code == 0 || !strings.Contains(out, "No space left") {
		t.Errorf("writing 300 MiB into a 256 MiB store: exit %d: %s", code, out)
	}
}
