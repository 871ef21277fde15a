// Package registryproc runs a real image registry, Debian's docker-registry (distribution 2.8), as a child process
// of Sandlot, as redisproc does with Redis: its storage and configuration in a data directory, listening on a
// loopback address, never outliving Sandlot. In proxy mode it is a pull-through cache of an upstream registry
// (Docker Hub): it refuses pushes, fetches what it does not have, and serves what it has when the upstream is
// down. In normal mode it takes pushes (Sandlot's imports of `docker save` archives).
package registryproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config says how to run one registry.
type Config struct {
	Dir     string // data directory: its configuration, its log and, unless Storage says otherwise, its storage
	Storage string // where its content is kept; default Dir/storage. Two registries may share one storage.
	Addr    string // host:port to listen on; give a loopback address
	// Upstream, when set, makes the registry a pull-through cache of that registry URL
	// (https://registry-1.docker.io for Docker Hub), with Username and Password if the upstream wants them.
	Upstream           string
	Username, Password string
}

// Server is a running docker-registry child.
type Server struct {
	cmd     *exec.Cmd
	addr    string
	dir     string
	storage string
	done    chan struct{} // closed when the child has exited; then waitErr is its status
	waitErr error
	stop    sync.Once
}

// Start writes the registry's configuration, runs it, and returns when it answers. The child is sent SIGTERM if
// this process dies; Stop ends it.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return nil, errors.New("docker-registry is not installed: `make run` installs it on Debian " +
			"(apt-get install docker-registry), or give Sandlot an image cache with --registry URL")
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("registry address %q: %w", cfg.Addr, err)
	}
	if cfg.Storage == "" {
		cfg.Storage = filepath.Join(cfg.Dir, "storage")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("registry data directory: %w", err)
	}
	if err := os.MkdirAll(cfg.Storage, 0o700); err != nil {
		return nil, fmt.Errorf("registry data directory: %w", err)
	}
	config := filepath.Join(cfg.Dir, "config.yml")
	if err := os.WriteFile(config, []byte(configYAML(cfg)), 0o600); err != nil {
		return nil, fmt.Errorf("registry configuration: %w", err)
	}
	logFile, err := os.OpenFile(filepath.Join(cfg.Dir, "registry.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("registry log: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "serve", config)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start docker-registry: %w", err)
	}
	s := &Server{cmd: cmd, addr: cfg.Addr, dir: cfg.Dir, storage: cfg.Storage, done: make(chan struct{})}
	go func() { s.waitErr = cmd.Wait(); close(s.done) }()
	if err := s.waitReady(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// configYAML is the registry's configuration. Deleting is enabled so that Sandlot can forget images (its size cap);
// uploads left half done are purged.
func configYAML(cfg Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, `version: 0.1
log:
  level: warn
  formatter: text
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: true
      age: 24h
      interval: 1h
      dryrun: false
http:
  addr: %s
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
`, strconv.Quote(cfg.Storage), strconv.Quote(cfg.Addr))
	if cfg.Upstream != "" {
		fmt.Fprintf(&b, "proxy:\n  remoteurl: %s\n", strconv.Quote(cfg.Upstream))
		if cfg.Username != "" {
			fmt.Fprintf(&b, "  username: %s\n  password: %s\n", strconv.Quote(cfg.Username), strconv.Quote(cfg.Password))
		}
	}
	return b.String()
}

// URL is the registry's base URL.
func (s *Server) URL() string { return "http://" + s.addr }

// Addr is the address it listens on.
func (s *Server) Addr() string { return s.addr }

// StorageDir is where it keeps its content.
func (s *Server) StorageDir() string { return s.storage }

// ConfigFile is its configuration file (what `docker-registry garbage-collect` reads).
func (s *Server) ConfigFile() string { return filepath.Join(s.dir, "config.yml") }

// Stop ends the registry and waits for it (at most 10 s, then it is killed). It is safe to call more than once.
func (s *Server) Stop() {
	s.stop.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
}

func (s *Server) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(s.dir, "registry.log"))
			return fmt.Errorf("docker-registry exited at start (%v): %s", s.waitErr, lastLines(string(log), 5))
		default:
		}
		if resp, err := client.Get(s.URL() + "/v2/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("docker-registry did not answer on %s within 15 s", s.addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FreeLoopbackAddr is a loopback address with a port nothing listens on now (for a registry of a test, say).
func FreeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
