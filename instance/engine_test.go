package instance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
	"github.com/sandlot/sandlot/internal/testengine"
)

// These tests run against the real engine at DOCKER_HOST (the node engine under `make test`), with the node image
// built by `make images`. Without an engine they are skipped, unless SANDLOT_REQUIRE_DOCKER=1 (as `make test` sets),
// when they fail; with SANDLOT_NO_ENGINE=1 (`make unit`) they are skipped without touching one. For overlay session
// networks the engine must be a swarm manager: the first test that needs the engine makes it one (advertising
// 127.0.0.1) when it is not, before any node exists, and TestMain leaves the swarm again at the end.

var (
	overlayReady bool // the engine is a swarm manager for the length of the run
	swarmOnce    sync.Once
	leaveSwarm   func()
)

// testOwner is the owner of everything these tests make, so that their GC never touches what other test packages
// running at the same time (or a developer's server) made. A child process (TestGCChild) inherits it.
var testOwner = func() string {
	if o := os.Getenv("SANDLOT_TEST_OWNER"); o != "" {
		return o
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	o := "instance-tests-" + hex.EncodeToString(b)
	os.Setenv("SANDLOT_TEST_OWNER", o)
	return o
}()

func TestMain(m *testing.M) {
	code := m.Run()
	if leaveSwarm != nil {
		leaveSwarm()
	}
	os.Exit(code)
}

func prepareSwarm() (leave func()) {
	if os.Getenv("SANDLOT_TEST_OVERLAY") == "0" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil
	}
	info, err := docker.Info(ctx)
	if err != nil {
		docker.Close()
		return nil
	}
	if info.Swarm.LocalNodeState == swarm.LocalNodeStateActive {
		overlayReady = info.Swarm.ControlAvailable
		docker.Close()
		return nil
	}
	if info.Swarm.LocalNodeState != swarm.LocalNodeStateInactive {
		docker.Close()
		return nil
	}
	if _, err := docker.SwarmInit(ctx, swarm.InitRequest{ListenAddr: "127.0.0.1:2377", AdvertiseAddr: "127.0.0.1"}); err != nil {
		fmt.Fprintf(os.Stderr, "instance tests: cannot make the engine a swarm manager, overlay tests will fail: %v\n", err)
		docker.Close()
		return nil
	}
	overlayReady = true
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := docker.SwarmLeave(ctx, true); err != nil {
			fmt.Fprintf(os.Stderr, "instance tests: leave swarm: %v\n", err)
		}
		// Swarm mode made this bridge for containers on overlays; leave the engine as the tests found it.
		_ = docker.NetworkRemove(ctx, "docker_gwbridge")
		docker.Close()
	}
}

// kinds are the network kinds every acceptance test runs with.
var kinds = []NetworkKind{NetworkBridge, NetworkOverlay}

// newDriver returns a driver on the real engine, or skips (fails with SANDLOT_REQUIRE_DOCKER=1) without one.
func newDriver(t testing.TB, kind NetworkKind, tune func(*Config)) *Driver {
	t.Helper()
	testengine.Skip(t)
	swarmOnce.Do(func() { leaveSwarm = prepareSwarm() })
	if kind == NetworkOverlay && !overlayReady {
		if os.Getenv("SANDLOT_REQUIRE_DOCKER") == "1" {
			t.Fatal("the engine is not a swarm manager, so overlay networks cannot be tested")
		}
		t.Skip("the engine is not a swarm manager")
	}
	// SANDLOT_NODE_IMAGE, as for ops/build-node-image, tests another image than sandlot/node:latest: one built from
	// this tree while someone else's build holds the shared tag.
	cfg := Config{Image: os.Getenv("SANDLOT_NODE_IMAGE"), Network: kind, Owner: testOwner,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
	if tune != nil {
		tune(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := New(ctx, cfg)
	if err != nil {
		if os.Getenv("SANDLOT_REQUIRE_DOCKER") != "1" && (isUnreachable(err) || isImageMissing(err)) {
			t.Skipf("no engine for the instance tests: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func isUnreachable(err error) bool {
	return err != nil && strings.Contains(err.Error(), ErrEngineUnreachable.Error())
}
func isImageMissing(err error) bool {
	return err != nil && strings.Contains(err.Error(), ErrImageMissing.Error())
}

// newSession makes a session network with a fresh id and removes everything of it when the test ends.
func newSession(t testing.TB, d *Driver) (string, Network) {
	t.Helper()
	return newSessionNamed(t, d, "test")
}

// newSessionNamed is newSession with an id that starts with prefix.
func newSessionNamed(t testing.TB, d *Driver, prefix string) (string, Network) {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	session := prefix + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.DeleteSession(ctx, session); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	n, err := d.CreateNetwork(testContext(t), session)
	if err != nil {
		t.Fatal(err)
	}
	return session, n
}

// createNodes makes nodes node1..nodeN concurrently.
func createNodes(t testing.TB, d *Driver, session string, count int) []Instance {
	t.Helper()
	out := make([]Instance, count)
	errs := make(chan error, count)
	for i := range count {
		go func() {
			var err error
			out[i], err = d.Create(testContext(t), session, Spec{Name: fmt.Sprintf("node%d", i+1)})
			errs <- err
		}()
	}
	for range count {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// sh runs a shell script in a node and returns its stdout; a non-zero exit fails the test.
func sh(t testing.TB, d *Driver, session, node, script string) string {
	t.Helper()
	r, err := d.Exec(testContext(t), session, node, []string{"sh", "-c", script}, ExecOptions{})
	if err != nil {
		t.Fatalf("%s: %q: %v", node, script, err)
	}
	if r.ExitCode != 0 {
		t.Fatalf("%s: %q exited %d: %s%s", node, script, r.ExitCode, r.Stdout, r.Stderr)
	}
	return strings.TrimSpace(string(r.Stdout))
}

// exitCode runs a shell script in a node and returns its exit code and combined output.
func exitCode(t testing.TB, d *Driver, session, node, script string) (int, string) {
	t.Helper()
	r, err := d.Exec(testContext(t), session, node, []string{"sh", "-c", script}, ExecOptions{})
	if err != nil {
		t.Fatalf("%s: %q: %v", node, script, err)
	}
	return r.ExitCode, string(r.Stdout) + string(r.Stderr)
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// eventually retries check until it returns nil or the time is up.
func eventually(t testing.TB, within time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", within, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
