package e2e

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// unitFile is the [Service] section of a systemd unit: each key's values in order.
type unitFile map[string][]string

func readUnit(t testing.TB, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u, section := unitFile{}, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = line
		case section == "[Service]":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: %q is not key=value", path, line)
			}
			u[k] = append(u[k], v)
		}
	}
	return u
}

func (u unitFile) one(t testing.TB, key string) string {
	t.Helper()
	if len(u[key]) != 1 {
		t.Fatalf("unit has %d %s=, want 1", len(u[key]), key)
	}
	return u[key][0]
}

// readEnvFile reads a systemd EnvironmentFile: KEY=VALUE lines, '#' and ';' comments, values optionally quoted.
func readEnvFile(t testing.TB, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !strings.HasPrefix(k, "SANDLOT_") {
			t.Fatalf("%s: %q is not SANDLOT_<FLAG>=value", path, line)
		}
		env = append(env, k+"="+strings.Trim(v, `"'`))
	}
	return env
}

// unitProc is ExecStart run as systemd runs it: its own process group standing for the unit's cgroup, a bare
// environment plus the EnvironmentFile's.
type unitProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startUnit(t testing.TB, argv, env []string, log *os.File) *unitProc {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &unitProc{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	})
	return p
}

// groupGone reports whether no process of the unit's group is left.
func (p *unitProc) groupGone() bool {
	return errors.Is(syscall.Kill(-p.cmd.Process.Pid, 0), syscall.ESRCH)
}

// TestDeploySystemdUnit: this machine has no systemd as PID 1 (systemd-run cannot run units here), so the unit's
// command line is tested as systemd would run it: systemd-analyze verify accepts the unit; ExecStart with the
// EnvironmentFile's settings (and the test's own port and data) serves; stopping it the unit's way (KillSignal to
// the main process only, KillMode=mixed) ends it with status 0 within TimeoutStopSec and leaves no process of it
// behind (so the final SIGKILL finds nothing); a restart, also after a kill -9 and systemd's SIGKILL of the rest,
// comes back with the sessions it had.
func TestDeploySystemdUnit(t *testing.T) {
	needEngine(t)
	unitPath, envPath := "../ops/systemd/sandlot.service", "../ops/systemd/sandlot.env"
	u := readUnit(t, unitPath)
	execStart := strings.Fields(u.one(t, "ExecStart"))
	if execStart[0] != "/usr/local/bin/sandlot" || strings.Join(execStart[1:], " ") != "serve" {
		t.Fatalf("ExecStart=%v", execStart)
	}
	if got := u.one(t, "EnvironmentFile"); got != "/etc/sandlot/sandlot.env" {
		t.Fatalf("EnvironmentFile=%s", got)
	}
	if got := u.one(t, "KillMode"); got != "mixed" {
		t.Fatalf("KillMode=%s: the server must get SIGTERM before its Redis does", got)
	}
	if got := u.one(t, "KillSignal"); got != "SIGTERM" {
		t.Fatalf("KillSignal=%s", got)
	}
	stopTimeout, err := time.ParseDuration(u.one(t, "TimeoutStopSec"))
	if err != nil || stopTimeout < 35*time.Second {
		t.Fatalf("TimeoutStopSec=%v (%v): calls in flight get 30 s", stopTimeout, err)
	}
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		// Verified with the test's binary in place of the installed one (verify checks that it is executable).
		dir := t.TempDir()
		for _, name := range []string{"sandlot.service", "sandlot-engine.service"} {
			data, err := os.ReadFile("../ops/systemd/" + name)
			if err != nil {
				t.Fatal(err)
			}
			text := strings.ReplaceAll(string(data), "/usr/local/bin/sandlot", binary)
			text = strings.ReplaceAll(text, "/usr/local/lib/sandlot/ops/node-engine", mustAbs(t, "../ops/node-engine"))
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out, err := exec.Command("systemd-analyze", "verify", filepath.Join(dir, "sandlot.service"),
			filepath.Join(dir, "sandlot-engine.service")).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	// systemd's environment for a system service, the file's, then the test's (later assignments win, as with
	// several EnvironmentFile lines). No DOCKER_HOST: the server finds the node engine by its socket.
	env := append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"},
		readEnvFile(t, envPath)...)
	env = append(env, "SANDLOT_LISTEN="+addr, "SANDLOT_DATA="+filepath.Join(t.TempDir(), "state"),
		"SANDLOT_REGISTRY=off", "SANDLOT_NETWORK=bridge")
	argv := append([]string{binary}, execStart[1:]...)
	log, err := os.Create(filepath.Join(t.TempDir(), "unit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			data, _ := os.ReadFile(log.Name())
			t.Logf("unit log:\n%s", data)
		}
	}()
	url := "http://" + addr
	c := apiClient{base: url, http: &http.Client{Timeout: time.Minute}}
	ready := func(p *unitProc) {
		t.Helper()
		waitFor(t, 60*time.Second, "the unit's /readyz", func() bool {
			select {
			case <-p.done:
				t.Fatalf("the unit's process exited: %v", p.err)
			default:
			}
			resp, err := http.Get(url + "/readyz")
			if err == nil {
				resp.Body.Close()
			}
			return err == nil && resp.StatusCode == http.StatusOK
		})
	}
	stop := func(p *unitProc) {
		t.Helper()
		start := time.Now()
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
			t.Fatalf("the server did not stop within TimeoutStopSec=%v", stopTimeout)
		}
		if p.err != nil {
			t.Fatalf("the server's exit after SIGTERM: %v (systemd would count a failure)", p.err)
		}
		waitFor(t, 5*time.Second, "no process of the unit left", p.groupGone)
		t.Logf("stopped in %v", time.Since(start).Round(time.Millisecond))
	}

	p := startUnit(t, argv, env, log)
	ready(p)
	var sess struct{ ID, Token string }
	if status, _ := c.call(t, "POST", "/api/v1/sessions", "", `{}`, &sess); status != http.StatusCreated {
		t.Fatalf("create session: %d", status)
	}
	stop(p)

	// systemctl restart: the same command line again, on the same state.
	p = startUnit(t, argv, env, log)
	ready(p)
	var got struct{ State string }
	if status, _ := c.call(t, "GET", "/api/v1/sessions/"+sess.ID, sess.Token, "", &got); status != http.StatusOK || got.State != "active" {
		t.Fatalf("the session after a restart: %d %+v", status, got)
	}

	// A crash (kill -9): systemd then SIGKILLs what is left of the unit and, with Restart=on-failure, starts it
	// again; it must come back on the same state.
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	waitFor(t, 5*time.Second, "the killed unit's processes gone", p.groupGone)
	p = startUnit(t, argv, env, log)
	ready(p)
	if status, _ := c.call(t, "GET", "/api/v1/sessions/"+sess.ID, sess.Token, "", &got); status != http.StatusOK || got.State != "active" {
		t.Fatalf("the session after kill -9 and a restart: %d %+v", status, got)
	}
	if status, _ := c.call(t, "DELETE", "/api/v1/sessions/"+sess.ID, sess.Token, "", nil); status != http.StatusNoContent && status != http.StatusOK {
		t.Errorf("end the session: %d", status)
	}
	stop(p)
}

func mustAbs(t testing.TB, path string) string {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}
