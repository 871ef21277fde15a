// Package e2e runs the real sandlot binary against the real Docker engine and Redis.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/sandlot/sandlot/internal/testengine"
)

var binary string // the sandlot binary built for this run

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sandlot-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "sandlot")
	if out, err := exec.Command("go", "build", "-o", binary, "../cmd/sandlot").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build sandlot: %v\n%s", err, out)
		os.Exit(1)
	}
	// The shell holder beside it, where make build puts it and the server looks for it.
	holder := exec.Command("go", "build", "-ldflags=-s -w", "-o", filepath.Join(dir, "sandlot-holder"), "../cmd/sandlot-holder")
	holder.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := holder.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build sandlot-holder: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needEngine skips without a Docker engine and node image, unless SANDLOT_REQUIRE_DOCKER=1.
func needEngine(t testing.TB) {
	t.Helper()
	testengine.Skip(t)
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		defer docker.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err = docker.Ping(ctx); err == nil {
			_, err = docker.ImageInspect(ctx, "sandlot/node:latest")
		}
	}
	if err != nil {
		if os.Getenv("SANDLOT_REQUIRE_DOCKER") == "1" {
			t.Fatalf("no engine or node image: %v", err)
		}
		t.Skipf("no engine or node image: %v", err)
	}
}

// proc is a running sandlot serve. done is closed when it has exited, with its exit error in err.
type proc struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{}
	err  error
}

// startServer runs sandlot serve on a free loopback port and returns once it prints that it serves.
func startServer(t testing.TB, args ...string) *proc {
	t.Helper()
	return startServerAt(t, freeAddr(t), args...)
}

// freeAddr is a loopback address with a port free now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServerAt is startServer on addr (a server restarted where the last one served).
func startServerAt(t testing.TB, addr string, args ...string) *proc {
	t.Helper()
	// No image cache unless the test asks for one: a server's default upstream is Docker Hub, which tests never
	// reach, and the cache's one port is for one server at a time (testengine.MirrorPort).
	if !slices.ContainsFunc(args, func(a string) bool {
		return strings.HasPrefix(a, "--image-") || strings.HasPrefix(a, "--registry")
	}) {
		args = append(args, "--registry", "off")
	}
	cmd := exec.Command(binary, append([]string{"serve", "--listen", addr, "--network", "bridge"}, args...)...)
	cmd.Env = os.Environ()
	stdout, _ := cmd.StdoutPipe()
	logFile, err := os.Create(filepath.Join(t.TempDir(), "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		// SIGTERM first: the server stops its Redis and waits for it, so nothing writes into the test's directory
		// when it is removed (after a SIGKILL the Redis child dies a moment later, on its own).
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			log, _ := os.ReadFile(logFile.Name())
			t.Logf("server log:\n%s", log)
		}
	})
	scheme := "http"
	if slices.Contains(args, "--tls-cert") {
		scheme = "https"
	}
	want := "Sandlot is serving on " + scheme + "://" + addr + "/"
	select {
	case line := <-lines:
		if line != want {
			t.Fatalf("server said %q, want %q", line, want)
		}
	case <-p.done:
		log, _ := os.ReadFile(logFile.Name())
		t.Fatalf("server exited: %v\n%s", p.err, log)
	case <-time.After(60 * time.Second):
		t.Fatal("server did not start in 60 s")
	}
	p.url = scheme + "://" + addr
	return p
}
