package instance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/sandlot/sandlot/internal/registryproc"
	"github.com/sandlot/sandlot/internal/testengine"
)

// The image mirror's exemption is two rules, one in each chain, before that chain's rejections (and, in swarm mode,
// two more for nodes on overlay networks, which come through docker_gwbridge); without a mirror there is none, and
// nothing else differs.
func TestMirrorFirewallRules(t *testing.T) {
	const pool = "198.18.0.0/15"
	mirror := netip.MustParseAddrPort("169.254.213.1:5000")
	rule := func(chain, from string) string {
		return "$ipt -A " + chain + " " + from + " -d 169.254.213.1 -p tcp --dport 5000 -j RETURN"
	}
	for _, swarm := range []bool{false, true} {
		want := []string{rule(firewallInput, "-s "+pool), rule(firewallForward, "-s "+pool)}
		if swarm {
			want = append(want, rule(firewallInput, "-i docker_gwbridge"), rule(firewallForward, "-i docker_gwbridge"))
		}
		without := strings.Split(firewallScript(pool, swarm, netip.AddrPort{}), "\n")
		with := strings.Split(firewallScript(pool, swarm, mirror), "\n")
		for _, l := range without {
			if strings.Contains(l, "RETURN") && !strings.Contains(l, "ESTABLISHED") {
				t.Errorf("swarm %v, no mirror: exempting rule %q", swarm, l)
			}
		}
		var exempt []string
		for _, l := range with {
			if strings.Contains(l, "RETURN") && !strings.Contains(l, "ESTABLISHED") {
				exempt = append(exempt, l)
			}
		}
		if !slices.Equal(exempt, want) {
			t.Errorf("swarm %v: exempting rules %q, want %q", swarm, exempt, want)
		}
		for _, r := range want {
			chain := strings.Fields(r)[2]
			at := slices.Index(with, r)
			rejects := 0
			for i, l := range with {
				gw := strings.Contains(r, "docker_gwbridge") // its exemption need only precede the gwbridge rejections
				if strings.Contains(l, "-A "+chain+" ") && strings.HasSuffix(l, "-j REJECT") &&
					(!gw || strings.Contains(l, "docker_gwbridge")) {
					rejects++
					if i < at {
						t.Errorf("swarm %v: %q comes before the mirror's exemption %q", swarm, l, r)
					}
				}
			}
			if rejects == 0 {
				t.Errorf("swarm %v: no REJECT in %s", swarm, chain)
			}
		}
		rest := slices.DeleteFunc(slices.Clone(with), func(l string) bool { return slices.Contains(want, l) })
		if !slices.Equal(rest, without) {
			t.Errorf("swarm %v: the mirror changes more than its rules:\n%s\nvs\n%s", swarm,
				strings.Join(with, "\n"), strings.Join(without, "\n"))
		}
	}
}

// The node's environment carries the mirror when there is one, the session's subnet always, the preloads when
// there are any; bad mirrors and preload references are refused before anything is made.
func TestMirrorNodeEnv(t *testing.T) {
	sessionNet := Network{Name: "sandlot-s1", Subnet: netip.MustParsePrefix("198.18.0.64/26")}
	ip := netip.MustParseAddr("198.18.0.75")
	envOf := func(mirror netip.AddrPort, spec Spec) []string {
		cfg, err := Config{ImageMirror: mirror}.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		c, _, _ := (&Driver{cfg: cfg}).nodeConfig("s1", spec, sessionNet, ip)
		return c.Env
	}
	env := envOf(netip.AddrPort{}, Spec{Name: "node1"})
	if !slices.Contains(env, "SANDLOT_INSECURE_REGISTRIES=198.18.0.64/26") {
		t.Errorf("no insecure registries for the session subnet: %q", env)
	}
	for _, e := range env {
		if strings.HasPrefix(e, "SANDLOT_REGISTRY_MIRROR=") || strings.HasPrefix(e, "SANDLOT_PRELOAD") {
			t.Errorf("without mirror or preloads: %q", e)
		}
	}
	env = envOf(netip.MustParseAddrPort("169.254.213.1:5000"), Spec{Name: "node1", Preload: []string{"tiny:1", "busybox:1.36"}})
	for _, want := range []string{"SANDLOT_REGISTRY_MIRROR=http://169.254.213.1:5000", "SANDLOT_PRELOAD=tiny:1 busybox:1.36",
		"SANDLOT_PRELOAD_TIMEOUT=40", "SANDLOT_INSECURE_REGISTRIES=198.18.0.64/26"} {
		if !slices.Contains(env, want) {
			t.Errorf("env lacks %q: %q", want, env)
		}
	}

	if _, err := (Config{ImageMirror: netip.MustParseAddrPort("[fd00::1]:5000")}).withDefaults(); err == nil {
		t.Error("an IPv6 mirror is accepted (the firewall's exemption is IPv4 only)")
	}
	if _, err := (Config{ImageMirror: netip.MustParseAddrPort("169.254.213.1:0")}).withDefaults(); err == nil {
		t.Error("a mirror without a port is accepted")
	}
	for _, ok := range []string{"busybox", "tiny:1", "registry.example:5000/team/app:2", "node1:5000/x",
		"alpine@sha256:" + strings.Repeat("ab", 32)} {
		if err := checkPreload([]string{ok}); err != nil {
			t.Errorf("preload %q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-q", "a b", "x;reboot", "$(id)", "tiny:1\n", strings.Repeat("a", 256)} {
		if err := checkPreload([]string{"tiny:1", bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("preload %q: %v, want ErrInvalid", bad, err)
		}
	}
}

// startMirror runs a real registry where nodes find the image cache (testengine.MirrorPort) with one small image,
// library/tiny:1, so that `docker pull tiny:1` in a node can only be served by it.
func startMirror(t testing.TB) netip.AddrPort {
	t.Helper()
	addr := testengine.MirrorPort(t)
	ctx := testContext(t)
	reg, err := registryproc.Start(ctx, registryproc.Config{Dir: t.TempDir(), Addr: addr.String()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	img, err := random.Image(4096, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config = v1.Config{Cmd: []string{"/random"}}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	if err := crane.Push(img, addr.String()+"/library/tiny:1", crane.Insecure, crane.WithContext(ctx)); err != nil {
		t.Fatalf("push tiny:1 to the mirror: %v", err)
	}
	return addr
}

// mirrorDriver is a bridge driver whose nodes use mirror. Its New puts the mirror's exemption into the host
// firewall, which every New rewrites: so the tests that use it do not run in parallel with the others.
func mirrorDriver(t testing.TB, mirror netip.AddrPort) *Driver {
	return newDriver(t, NetworkBridge, func(c *Config) { c.ImageMirror = mirror })
}

// A node with the mirror lists it, and its session's subnet as insecure; it pulls from Docker Hub through the mirror
// (nothing else is reachable here); it may open the mirror's port of the host and nothing else of it: not another
// port of that address, not port 5000 of the host's other addresses.
func TestMirrorPull(t *testing.T) {
	testengine.Skip(t)
	mirror := startMirror(t)
	d := mirrorDriver(t, mirror)
	session, sessionNet := newSession(t, d)
	createNodes(t, d, session, 1)

	var reg struct {
		Mirrors               []string
		InsecureRegistryCIDRs []string
	}
	if err := json.Unmarshal([]byte(sh(t, d, session, "node1", "docker info -f '{{json .RegistryConfig}}'")), &reg); err != nil {
		t.Fatal(err)
	}
	if want := "http://" + mirror.String() + "/"; !slices.Contains(reg.Mirrors, want) {
		t.Errorf("the node's engine has mirrors %q, want %s", reg.Mirrors, want)
	}
	if !slices.Contains(reg.InsecureRegistryCIDRs, sessionNet.Subnet.String()) {
		t.Errorf("the node's engine has insecure registries %q, want the session's %s", reg.InsecureRegistryCIDRs,
			sessionNet.Subnet)
	}
	motd := sh(t, d, session, "node1", "cat /etc/motd")
	for _, want := range []string{"Sandlot's image cache", sessionNet.Subnet.String() + ", e.g. node1:5000) work without TLS"} {
		if !strings.Contains(motd, want) {
			t.Errorf("motd lacks %q:\n%s", want, motd)
		}
	}
	sh(t, d, session, "node1", "docker pull -q tiny:1 && docker image inspect -f '{{.Os}}' tiny:1")

	rules, err := d.FirewallRules(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, chain := range []string{firewallInput, firewallForward} {
		want := fmt.Sprintf("-A %s -s %s -d %s/32 -p tcp -m tcp --dport %d -j RETURN", chain, d.cfg.SubnetPool,
			mirror.Addr(), mirror.Port())
		if !strings.Contains(rules, want) {
			t.Errorf("firewall lacks %q; rules:\n%s", want, rules)
		}
	}

	// Control: the way the checks below probe reaches the mirror.
	if code, out := exitCode(t, d, session, "node1", "nc -z -w2 "+mirror.Addr().String()+" "+fmt.Sprint(mirror.Port())); code != 0 {
		t.Fatalf("node1 cannot open the mirror at %s: %s", mirror, out)
	}
	other, err := net.Listen("tcp4", net.JoinHostPort(mirror.Addr().String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	go acceptAndClose(other)
	targets := []string{other.Addr().String()}
	for _, a := range hostIPv4s(t) {
		addr := netip.MustParseAddr(a)
		if addr == mirror.Addr() || d.cfg.SubnetPool.Contains(addr) {
			continue
		}
		target := netip.AddrPortFrom(addr, mirror.Port()).String()
		ln, err := net.Listen("tcp4", target)
		if errors.Is(err, syscall.EADDRNOTAVAIL) {
			continue // a bridge of a test beside this one, gone since
		}
		if err != nil && !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatal(err)
		}
		if err == nil { // else something else listens there, which does as well
			defer ln.Close()
			go acceptAndClose(ln)
		}
		targets = append(targets, target)
	}
	for _, target := range targets {
		c, err := net.DialTimeout("tcp", target, 2*time.Second)
		if err != nil {
			t.Fatalf("control: the host cannot reach its own listener at %s: %v", target, err)
		}
		c.Close()
		host, port, _ := net.SplitHostPort(target)
		if code, out := exitCode(t, d, session, "node1", "nc -z -w2 "+host+" "+port); code == 0 {
			t.Errorf("node1 connects to the host at %s: %s", target, out)
		}
	}
	t.Logf("node1 reaches the mirror at %s and none of %q", mirror, targets)
}

// A node made with Preload has the images as soon as Create returns; one it cannot pull is a warning in its log,
// and the node is ready regardless. A restart pulls nothing again (an image the learner removed stays removed).
func TestMirrorPreload(t *testing.T) {
	testengine.Skip(t)
	mirror := startMirror(t)
	d := mirrorDriver(t, mirror)
	session, sessionNet := newSession(t, d)
	ctx := testContext(t)
	// Nothing listens on port 5000 of node1's own address: that pull fails at once.
	unreachable := fmt.Sprintf("%s:5000/missing:1", addrAdd(sessionNet.Subnet.Addr(), nodeOffset+1))
	in, err := d.Create(ctx, session, Spec{Name: "node1", Preload: []string{"tiny:1", unreachable}})
	if err != nil {
		t.Fatal(err)
	}
	if got := sh(t, d, session, "node1", "docker images --format '{{.Repository}}:{{.Tag}}' tiny"); got != "tiny:1" {
		t.Fatalf("right after Create, docker images tiny says %q", got)
	}
	logs := nodeLog(t, d, in.ContainerID)
	want := "sandlot-node: warning: cannot preload " + unreachable + ": "
	if i := strings.Index(logs, want); i < 0 {
		t.Errorf("the node's log lacks %q:\n%s", want, logs)
	} else {
		t.Logf("node1 says: %s", strings.SplitN(logs[i:], "\n", 2)[0])
	}
	if strings.Contains(logs, "cannot preload tiny:1") {
		t.Errorf("tiny:1 was preloaded and is reported as failed:\n%s", logs)
	}

	sh(t, d, session, "node1", "docker rmi -f tiny:1 >/dev/null")
	if err := d.Restart(ctx, session, "node1"); err != nil {
		t.Fatal(err)
	}
	// One of the two failed, so this boot tries both again: tiny:1 comes back.
	if got := sh(t, d, session, "node1", "docker images -q tiny:1"); got == "" {
		t.Fatal("after a boot whose preload partly failed, the next boot did not preload again")
	}
	if _, err := d.Create(ctx, session, Spec{Name: "node2", Preload: []string{"tiny:1"}}); err != nil {
		t.Fatal(err)
	}
	sh(t, d, session, "node2", "docker rmi -f tiny:1 >/dev/null")
	if err := d.Restart(ctx, session, "node2"); err != nil {
		t.Fatal(err)
	}
	if got := sh(t, d, session, "node2", "docker images -q tiny:1"); got != "" {
		t.Errorf("a restart preloaded tiny:1 again after the learner removed it: %q", got)
	}
}

// A preload that hangs (a mirror that takes connections and never answers) is given up in time: the node is ready
// within its ready timeout, and says what it gave up.
func TestMirrorPreloadTimeout(t *testing.T) {
	testengine.Skip(t)
	mirror := testengine.MirrorPort(t)
	ln, err := net.Listen("tcp4", mirror.String())
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 64)
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-held:
				c.Close()
			default:
				return
			}
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case held <- c:
			default:
				c.Close()
			}
		}
	}()
	const readyTimeout = 12 * time.Second // so each preload may take 8 s
	d := newDriver(t, NetworkBridge, func(c *Config) { c.ImageMirror, c.ReadyTimeout = mirror, readyTimeout })
	session, _ := newSession(t, d)
	start := time.Now()
	in, err := d.Create(testContext(t), session, Spec{Name: "node1", Preload: []string{"tiny:1"}})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if want := "sandlot-node: warning: cannot preload tiny:1: not pulled within 8 s"; !strings.Contains(nodeLog(t, d, in.ContainerID), want) {
		t.Errorf("the node's log lacks %q", want)
	}
	if len(held) == 0 {
		t.Error("the node's engine never connected to the mirror")
	}
	t.Logf("ready after %s with a hanging mirror", took.Round(time.Millisecond))
}

// A daemon.json the learner edited survives a restart with every key they set; Sandlot's keys are added only where
// it lacks them. One that is not JSON is moved aside, and the node still boots.
func TestMirrorDaemonJSONKept(t *testing.T) {
	testengine.Skip(t)
	mirror := startMirror(t)
	d := mirrorDriver(t, mirror)
	session, _ := newSession(t, d)
	createNodes(t, d, session, 1)
	ctx := testContext(t)

	sh(t, d, session, "node1", `echo '{"debug": true, "insecure-registries": ["registry.example:5000"]}' >/etc/docker/daemon.json`)
	if err := d.Restart(ctx, session, "node1"); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(sh(t, d, session, "node1", "cat /etc/docker/daemon.json")), &got); err != nil {
		t.Fatal(err)
	}
	if got["debug"] != true || fmt.Sprint(got["insecure-registries"]) != "[registry.example:5000]" ||
		fmt.Sprint(got["registry-mirrors"]) != "[http://"+mirror.String()+"]" {
		t.Errorf("daemon.json after a restart: %v", got)
	}
	if out := sh(t, d, session, "node1", "docker info -f '{{.Debug}} {{.RegistryConfig.Mirrors}}'"); out != "true [http://"+mirror.String()+"/]" {
		t.Errorf("the engine runs with debug and mirrors %q", out)
	}

	sh(t, d, session, "node1", `echo '{"debug": tru' >/etc/docker/daemon.json`)
	if err := d.Restart(ctx, session, "node1"); err != nil {
		t.Fatal(err)
	}
	if out := sh(t, d, session, "node1", "cat /etc/docker/daemon.json.invalid; docker info -f '{{.RegistryConfig.Mirrors}}'"); out != `{"debug": tru`+"\n[http://"+mirror.String()+"/]" {
		t.Errorf("after a restart with a broken daemon.json: %q", out)
	}
}

// A registry that a learner runs on node1:5000 takes pushes from node2 without TLS, by the node's name: the session's
// subnet is an insecure registry in every node's engine. (The registry is Debian's, the host's, copied into node1:
// nothing here can pull one.)
func TestSessionRegistryWithoutTLS(t *testing.T) {
	testengine.Skip(t)
	bin, err := os.Open("/usr/bin/docker-registry")
	if err != nil {
		t.Skipf("no docker-registry on the host to run in a node: %v", err)
	}
	defer bin.Close()
	fi, err := bin.Stat()
	if err != nil {
		t.Fatal(err)
	}
	d := newDriver(t, NetworkBridge, nil)
	session, _ := newSession(t, d)
	createNodes(t, d, session, 2)
	ctx := testContext(t)
	if err := d.WriteFile(ctx, session, "node1", "/usr/local/bin/docker-registry", 0o755, fi.Size(), bin); err != nil {
		t.Fatal(err)
	}
	sh(t, d, session, "node1", `printf 'version: 0.1\nstorage: {filesystem: {rootdirectory: /tmp/registry}}\nhttp: {addr: ":5000"}\n' >/tmp/registry.yml`)
	if _, err := d.Exec(ctx, session, "node1", []string{"docker-registry", "serve", "/tmp/registry.yml"},
		ExecOptions{Detach: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		if code, out := exitCode(t, d, session, "node2", "nc -z -w1 node1 5000"); code != 0 {
			return fmt.Errorf("node1's registry does not answer: %s", out)
		}
		return nil
	})
	sh(t, d, session, "node2", "docker tag busybox node1:5000/lab/busybox:1 && docker push -q node1:5000/lab/busybox:1")
	sh(t, d, session, "node1", "docker pull -q node1:5000/lab/busybox:1 && docker run --rm node1:5000/lab/busybox:1 true")
}

// nodeLog is everything a node's entrypoint has printed.
func nodeLog(t testing.TB, d *Driver, id string) string {
	t.Helper()
	rc, err := d.docker.ContainerLogs(testContext(t), id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out strings.Builder
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// BenchmarkMirrorCreateReady measures one node from the create call until it is ready, in the same run: with no
// mirror, with the mirror, and with the mirror and one small image (4 KiB) to preload. The three alternate, so
// drift hits them alike.
func BenchmarkMirrorCreateReady(b *testing.B) {
	testengine.Skip(b)
	mirror := startMirror(b)
	// The plain driver first: each New rewrites the host firewall, and the last one must let nodes reach the mirror.
	plain := newDriver(b, NetworkBridge, nil)
	withMirror := mirrorDriver(b, mirror)
	plainSession, _ := newSession(b, plain)
	mirrorSession, _ := newSession(b, withMirror)
	cases := []struct {
		name    string
		d       *Driver
		session string
		spec    Spec
	}{
		{"plain", plain, plainSession, Spec{Name: "node1"}},
		{"mirror", withMirror, mirrorSession, Spec{Name: "node1"}},
		{"preload", withMirror, mirrorSession, Spec{Name: "node1", Preload: []string{"tiny:1"}}},
	}
	took := make([][]time.Duration, len(cases))
	for i := 0; i < b.N; i++ {
		for j := range cases {
			c := cases[(i+j)%len(cases)]
			start := time.Now()
			if _, err := c.d.Create(context.Background(), c.session, c.spec); err != nil {
				b.Fatal(err)
			}
			took[(i+j)%len(cases)] = append(took[(i+j)%len(cases)], time.Since(start))
			if err := c.d.Delete(context.Background(), c.session, "node1"); err != nil {
				b.Fatal(err)
			}
		}
	}
	base := median(took[0])
	for j, c := range cases {
		m := median(took[j])
		b.ReportMetric(ms(m), "ms-"+c.name+"-median")
		if j > 0 {
			b.ReportMetric(float64(m)/float64(base), "ratio-"+c.name)
		}
	}
}
