package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/gorilla/websocket"
	"github.com/sandlot/sandlot/instance"
)

// composeProject is one docker-compose deployment of the repository's docker-compose.yml under a project name of
// its own, on the local engine, with its nodes on the node engine.
type composeProject struct {
	t        testing.TB
	name     string
	dir      string // the repository
	override string // the test's additions: labels on everything the project makes
	local    string // the local engine, where the project's containers run
	// deployment is the deployment's name (its sandlot.owner) once it is up
	deployment string
	env        []string // for docker-compose and make: the local engine, the project's port and settings
	url        string
	nodeEng    *client.Client
}

func (p *composeProject) compose(args ...string) (string, error) {
	files := []string{"-p", p.name, "-f", filepath.Join(p.dir, "docker-compose.yml"), "-f", p.override}
	cmd := exec.Command("docker-compose", append(files, args...)...)
	cmd.Env = p.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// serverImage is the test's tag of sandlot/sandlot.
func (p *composeProject) serverImage() string { return "sandlot/sandlot:" + p.name }

// upgrade gives the test's server image a new build (the same server with one more label), as `make images` does
// when Sandlot changed.
func (p *composeProject) upgrade() {
	p.t.Helper()
	cmd := exec.Command("docker", "-H", p.local, "build", "-q", "-t", p.serverImage(), "-")
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	cmd.Stdin = strings.NewReader(fmt.Sprintf("FROM %s\nLABEL sandlot.test.upgrade=%d\n", p.serverImage(), time.Now().UnixNano()))
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Fatalf("upgrade the server image: %v\n%s", err, out)
	}
}

func (p *composeProject) mustCompose(args ...string) string {
	p.t.Helper()
	out, err := p.compose(args...)
	if err != nil {
		p.t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// owner is the deployment's name in its Redis (the sandlot.owner label of everything it makes).
func (p *composeProject) owner() string {
	p.t.Helper()
	out := p.mustCompose("exec", "-T", "redis", "redis-cli", "-s", "/run/redis/redis.sock", "--raw", "GET", "sandlot:deployment")
	owner := strings.TrimSpace(out)
	if !regexp.MustCompile(`^d[0-9a-f]{16}$`).MatchString(owner) {
		p.t.Fatalf("deployment name %q", owner)
	}
	return owner
}

// labelled counts the containers, networks and volumes on the node engine that carry owner's label.
func (p *composeProject) labelled(owner string) (containers, networks, volumes int) {
	p.t.Helper()
	ctx := context.Background()
	f := filters.NewArgs(filters.Arg("label", instance.LabelOwner+"="+owner))
	cs, err := p.nodeEng.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		p.t.Fatal(err)
	}
	ns, err := p.nodeEng.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		p.t.Fatal(err)
	}
	vs, err := p.nodeEng.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		p.t.Fatal(err)
	}
	return len(cs), len(ns), len(vs.Volumes)
}

// nodesOf lists the deployment's nodes on the node engine: what carries owner's label but Sandlot's own helpers
// (the netfault helper, the garbage collector's throwaway ones), which belong to no session.
func (p *composeProject) nodesOf(owner string) []container.Summary {
	p.t.Helper()
	f := filters.NewArgs(filters.Arg("label", instance.LabelOwner+"="+owner))
	cs, err := p.nodeEng.ContainerList(context.Background(), container.ListOptions{All: true, Filters: f})
	if err != nil {
		p.t.Fatal(err)
	}
	return slices.DeleteFunc(cs, func(c container.Summary) bool { return c.Labels[instance.LabelSession] == "system" })
}

// removeLabelled removes what carries owner's label on the node engine: the test's own clean-up when the keeper
// failed.
func (p *composeProject) removeLabelled(owner string) {
	ctx := context.Background()
	f := filters.NewArgs(filters.Arg("label", instance.LabelOwner+"="+owner))
	if cs, err := p.nodeEng.ContainerList(ctx, container.ListOptions{All: true, Filters: f}); err == nil {
		for _, c := range cs {
			_ = p.nodeEng.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		}
	}
	if ns, err := p.nodeEng.NetworkList(ctx, network.ListOptions{Filters: f}); err == nil {
		for _, n := range ns {
			_ = p.nodeEng.NetworkRemove(ctx, n.ID)
		}
	}
	if vs, err := p.nodeEng.VolumeList(ctx, volume.ListOptions{Filters: f}); err == nil {
		for _, v := range vs.Volumes {
			_ = p.nodeEng.VolumeRemove(ctx, v.Name, true)
		}
	}
}

func (p *composeProject) waitReady(within time.Duration) {
	p.t.Helper()
	waitFor(p.t, within, "the deployment's /readyz", func() bool {
		resp, err := http.Get(p.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// newComposeProject makes a compose project of the repository's docker-compose.yml for t, with a name and a
// loopback port of its own, after `make images`; t's end takes it down with its volumes and checks that nothing of
// it is left on either engine. Nothing is started yet.
func newComposeProject(t testing.TB) *composeProject {
	t.Helper()
	needEngine(t)
	if _, err := exec.LookPath("docker-compose"); err != nil {
		if os.Getenv("SANDLOT_REQUIRE_DOCKER") == "1" {
			t.Fatal("docker-compose is missing (ops/bootstrap-host installs it)")
		}
		t.Skip("docker-compose is missing")
	}
	// The compose file mounts the node engine's directory; the tests' engine must be that engine.
	nodeEngine := os.Getenv("DOCKER_HOST")
	if nodeEngine != "unix://"+instance.NodeEngineSocket {
		t.Skipf("DOCKER_HOST=%q is not the node engine (ops/with-node-engine sets it)", nodeEngine)
	}
	local := os.Getenv("SANDLOT_CAPS_ENGINE")
	if local == "" {
		local = "unix:///var/run/docker.sock"
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	nodeEng, err := client.NewClientWithOpts(client.WithHost(nodeEngine), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nodeEng.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	p := &composeProject{t: t, name: "deploy" + hex.EncodeToString(suffix), dir: repo, nodeEng: nodeEng,
		url: "http://" + addr}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOCKER_HOST=") && !strings.HasPrefix(kv, "SANDLOT_") &&
			!strings.HasPrefix(kv, "COMPOSE_") {
			env = append(env, kv)
		}
	}
	// Everything the project makes on the local engine carries the labels of Sandlot's tests, the project's name as
	// its session and owner, so that a leak is found and nobody else's clean-up takes it for theirs.
	p.override = filepath.Join(t.TempDir(), "docker-compose.labels.yml")
	var o strings.Builder
	o.WriteString("version: \"3.8\"\nservices:\n")
	for _, svc := range []string{"redis", "keeper", "sandlot"} {
		fmt.Fprintf(&o, "  %s:\n    labels: {sandlot.session: %s, sandlot.instance: %s, sandlot.owner: %s}\n", svc, p.name, svc, p.name)
	}
	// The server's image under a tag of the test's own, so that the test can "upgrade" it (upgrade).
	fmt.Fprintf(&o, "  sandlot:\n    image: %s\n", p.serverImage())
	o.WriteString("volumes:\n")
	for _, v := range []string{"redis-data", "redis-run", "sandlot-data"} {
		fmt.Fprintf(&o, "  %s:\n    labels: {sandlot.session: %s, sandlot.instance: %s, sandlot.owner: %s}\n", v, p.name, v, p.name)
	}
	if err := os.WriteFile(p.override, []byte(o.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// No image cache: its one address is the host's (169.254.213.1:5000), which another Sandlot here may hold.
	p.env = append(env, "DOCKER_HOST="+local, "SANDLOT_LISTEN="+addr, "SANDLOT_REGISTRY=off")

	// make images: the node image and the compose file's images, built offline (quick when nothing changed).
	mk := exec.Command("make", "-C", repo, "--no-print-directory", "images")
	mk.Env = p.env
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make images: %v\n%s", err, out)
	}
	p.local = local
	if out, err := exec.Command("docker", "-H", local, "tag", "sandlot/sandlot:latest", p.serverImage()).CombinedOutput(); err != nil {
		t.Fatalf("tag the server image: %v\n%s", err, out)
	}

	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := p.compose("logs", "--no-color", "--tail", "50")
			t.Logf("deployment logs:\n%s", logs)
		}
		out, err := p.compose("down", "-v", "--timeout", "60")
		if err != nil {
			t.Errorf("docker-compose down -v: %v\n%s", err, out)
		}
		if p.deployment != "" {
			if c, n, v := p.labelled(p.deployment); c+n+v > 0 {
				t.Errorf("after down -v: %d containers, %d networks, %d volumes of the deployment left", c, n, v)
				p.removeLabelled(p.deployment)
			}
		}
		if out, err := exec.Command("docker", "-H", local, "rmi", p.serverImage()).CombinedOutput(); err != nil {
			t.Errorf("remove the test's server image: %v\n%s", err, out)
		}
		if out, err := exec.Command("docker", "-H", local, "ps", "-aq", "--filter", "label=sandlot.session="+p.name).Output(); err != nil || len(out) > 0 {
			t.Errorf("after down -v, containers of the project on the local engine: %q %v", out, err)
		}
		if out, err := exec.Command("docker", "-H", local, "volume", "ls", "-q", "--filter", "label=sandlot.session="+p.name).Output(); err != nil || len(out) > 0 {
			t.Errorf("after down -v, volumes of the project on the local engine: %q %v", out, err)
		}
	})
	return p
}

// TestDeployCompose is the acceptance of the compose file: `make images && docker-compose up -d` serves the page
// and runs a lab (a session, a node, exec, a terminal, the lab proxy); restarting the sandlot service leaves the
// node running; `docker-compose down` leaves no node behind; the session survives down and up (its node is made
// again).
func TestDeployCompose(t *testing.T) {
	p := newComposeProject(t)
	addr := strings.TrimPrefix(p.url, "http://")
	start := time.Now()
	p.mustCompose("up", "-d")
	p.waitReady(90 * time.Second)
	t.Logf("up -d to ready: %v", time.Since(start).Round(time.Millisecond))
	p.deployment = p.owner()
	owner := p.deployment

	// The page.
	resp, err := http.Get(p.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "<title>Sandlot") {
		t.Fatalf("GET /: %s %.200q", resp.Status, page)
	}

	// A lab: a session, a node, exec, a terminal, the lab proxy.
	c := apiClient{base: p.url, http: &http.Client{Timeout: 2 * time.Minute}}
	var sess struct{ ID, Token string }
	if status, _ := c.call(t, "POST", "/api/v1/sessions", "", `{}`, &sess); status != http.StatusCreated {
		t.Fatalf("create session: %d", status)
	}
	if status, _ := c.call(t, "POST", "/api/v1/sessions/"+sess.ID+"/instances", sess.Token, `{}`, nil); status != http.StatusCreated {
		t.Fatalf("create node: %d", status)
	}
	mustExec := func(want string, cmd ...string) {
		t.Helper()
		res, err := c.exec(t, sess.ID, sess.Token, "node1", cmd...)
		if err != nil || res.ExitCode != 0 || !strings.Contains(res.Stdout, want) {
			t.Fatalf("exec %q: %+v %v (want %q)", cmd, res, err, want)
		}
	}
	mustExec("node1", "hostname")
	mustExec("", "sh", "-c", "mkdir -p /srv/www && echo served-from-node1 >/srv/www/index.html && "+
		"(cd /srv/www && setsid python3 -m http.server 8000 >/dev/null 2>&1 &) && sleep 0.5")
	header := http.Header{"Authorization": {"Bearer " + sess.Token}}
	terminalSays(t, websocket.DefaultDialer, "ws://"+addr+"/api/v1/sessions/"+sess.ID+"/instances/node1/terminal?t=1",
		header, "echo compose-$((6*7))", regexp.MustCompile(`compose-42`))
	// The shell is held in the node (the image's sandlot-holder; decision 0027), reached the short way: through its
	// socket in the node, not the engine's exec streams.
	mustExec("1.sock", "ls", "/run/sandlot/hold")
	// Path-based and host-based (node1-8000-<id>.localhost, the default lab domain), by turns.
	tries := 0
	labGet := func() string {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/lab/%s/node1/8000/", p.url, sess.ID), nil)
		if tries++; tries%2 == 0 {
			req, _ = http.NewRequest("GET", p.url+"/", nil)
			req.Host = fmt.Sprintf("node1-8000-%s.localhost:%s", sess.ID, strings.Split(addr, ":")[1])
		}
		req.Header.Set("Authorization", "Bearer "+sess.Token)
		resp, err := c.http.Do(req)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for deadline, served := time.Now().Add(15*time.Second), map[bool]bool{}; ; time.Sleep(200 * time.Millisecond) {
		last := labGet()
		if strings.Contains(last, "served-from-node1") {
			if served[tries%2 == 0] = true; len(served) == 2 { // host-based and path-based both
				break
			}
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node's web server through the lab proxy: %.300q", last)
		}
	}
	nodeID := func() string {
		cs := p.nodesOf(owner)
		if len(cs) != 1 {
			t.Fatalf("%d nodes of the deployment on the node engine, want 1 (node1): %v", len(cs), cs)
		}
		return cs[0].ID
	}
	before := nodeID()

	// Restarting the server alone (as an upgrade does) keeps the node: same container, its files still there.
	p.mustCompose("restart", "sandlot")
	p.waitReady(60 * time.Second)
	if after := nodeID(); after != before {
		t.Fatalf("restarting sandlot replaced the node: %s -> %s", before[:12], after[:12])
	}
	mustExec("served-from-node1", "cat", "/srv/www/index.html")

	// An upgrade: a new server image, then up -d. Compose replaces the server and nothing else; the node stays.
	p.upgrade()
	out := p.mustCompose("up", "-d")
	if !strings.Contains(out, "Recreating "+p.name+"_sandlot_1") || strings.Contains(out, "Recreating "+p.name+"_keeper_1") ||
		strings.Contains(out, "Recreating "+p.name+"_redis_1") {
		t.Fatalf("up -d after an upgrade of the server image:\n%s", out)
	}
	p.waitReady(60 * time.Second)
	if after := nodeID(); after != before {
		t.Fatalf("upgrading sandlot replaced the node: %s -> %s", before[:12], after[:12])
	}
	mustExec("served-from-node1", "cat", "/srv/www/index.html")

	// down: no node, network or volume of the deployment is left.
	start = time.Now()
	p.mustCompose("down")
	t.Logf("down: %v", time.Since(start).Round(time.Millisecond))
	if c, n, v := p.labelled(owner); c+n+v > 0 {
		t.Fatalf("after down: %d containers, %d networks, %d volumes of the deployment on the node engine", c, n, v)
	}
	if out := p.mustCompose("ps", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("after down, compose still lists containers: %q", out)
	}

	// up again: the same deployment (Redis kept its data), the session with its token, and its node made again.
	p.mustCompose("up", "-d")
	p.waitReady(90 * time.Second)
	if again := p.owner(); again != owner {
		t.Fatalf("the deployment's name changed over down/up: %s -> %s (Redis lost its data)", owner, again)
	}
	var got struct {
		State     string
		Instances []struct{ Name, Status string }
	}
	if status, _ := c.call(t, "GET", "/api/v1/sessions/"+sess.ID, sess.Token, "", &got); status != http.StatusOK || got.State != "active" {
		t.Fatalf("the session after down/up: %d %+v", status, got)
	}
	waitFor(t, 60*time.Second, "node1 made again", func() bool {
		res, err := c.exec(t, sess.ID, sess.Token, "node1", "hostname")
		return err == nil && res.Stdout == "node1\n"
	})
	if after := nodeID(); after == before {
		t.Fatal("the node after down/up is the container from before down")
	}
	terminalSays(t, websocket.DefaultDialer, "ws://"+addr+"/api/v1/sessions/"+sess.ID+"/instances/node1/terminal?t=1",
		header, "echo again-$((6*7))", regexp.MustCompile(`again-42`))

	// Redis gone before the keeper is stopped: it still knows the deployment's name and removes its nodes.
	p.mustCompose("stop", "redis")
	p.mustCompose("down")
	if c, n, v := p.labelled(owner); c+n+v > 0 {
		t.Fatalf("down after Redis stopped: %d containers, %d networks, %d volumes of the deployment left", c, n, v)
	}
}

// TestComposeFileLoads: both compose implementations read the file as it is, and so does the stack loader of the
// docker CLI (`docker stack config`, where the CLI has it), so that `docker stack deploy` can take it later.
func TestComposeFileLoads(t *testing.T) {
	checks := []struct{ probe, args []string }{
		{[]string{"docker-compose", "version"}, []string{"docker-compose", "-f", "../docker-compose.yml", "config", "-q"}},
		{[]string{"docker", "compose", "version"}, []string{"docker", "compose", "-f", "../docker-compose.yml", "config", "-q"}},
		{[]string{"docker", "stack", "config", "--help"}, []string{"docker", "stack", "config", "-c", "../docker-compose.yml"}},
	}
	ran := 0
	for _, c := range checks {
		args := c.args
		// Is it there at all (the compose plugin and stack config are not in every CLI)?
		if exec.Command(c.probe[0], c.probe[1:]...).Run() != nil {
			continue
		}
		ran++
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if ran == 0 {
		t.Skip("neither docker-compose nor a docker CLI with compose or stack config")
	}
}
