// Package redisproc runs a private redis-server as a child process: a unix socket and an append-only file in a
// data directory, nothing on TCP. Sandlot uses it when no --redis URL is given, and tests use it for a real Redis.
package redisproc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a running redis-server child.
type Server struct {
	cmd     *exec.Cmd
	socket  string
	done    chan struct{} // closed when the child has exited; then waitErr is its status
	waitErr error
}

// Start runs redis-server with its data in dir and returns when it answers. The child is sent SIGTERM if this
// process dies, so it never outlives Sandlot; Stop ends it cleanly (the append-only file is flushed).
func Start(ctx context.Context, dir string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server is not installed: `make run` installs it on Debian " +
			"(apt-get install redis-server), or give Sandlot a Redis with --redis URL")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("redis data directory: %w", err)
	}
	socket := filepath.Join(dir, "redis.sock")
	pidfile := filepath.Join(dir, "redis.pid")
	if err := waitForStale(pidfile); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin,
		"--port", "0", "--unixsocket", socket, "--unixsocketperm", "700",
		"--dir", dir, "--pidfile", pidfile,
		"--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
		"--daemonize", "no", "--loglevel", "warning", "--logfile", filepath.Join(dir, "redis.log"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	s := &Server{cmd: cmd, socket: socket, done: make(chan struct{})}
	go func() { s.waitErr = cmd.Wait(); close(s.done) }()
	if err := s.waitReady(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// URL is how go-redis reaches the server.
func (s *Server) URL() string { return "unix://" + s.socket }

// Stop ends the server and waits for it (at most 10 s, then it is killed).
func (s *Server) Stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

func (s *Server) waitReady(ctx context.Context) error {
	rdb := redis.NewClient(&redis.Options{Network: "unix", Addr: s.socket})
	defer rdb.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(filepath.Dir(s.socket), "redis.log"))
			return fmt.Errorf("redis-server exited at start (%v): %s", s.waitErr, strings.TrimSpace(string(log)))
		default:
		}
		if rdb.Ping(ctx).Err() == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("redis-server did not answer on %s within 15 s", s.socket)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitForStale waits for a redis-server left from an earlier run on the same directory (its parent was killed;
// it got SIGTERM and is flushing) to end, so that two never share the files.
func waitForStale(pidfile string) error {
	data, err := os.ReadFile(pidfile)
	if err != nil {
		return nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return nil
	}
	for i := 0; i < 100; i++ {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); !strings.HasPrefix(string(comm), "redis") {
			return nil // the pid was reused by something else
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("a redis-server (pid %d) still runs on this data directory; stop it, or give another --data", pid)
}
