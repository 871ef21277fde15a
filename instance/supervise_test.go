package instance

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/docker/docker/pkg/stdcopy"
)

// These tests run the node's scripts on this host (perl-base and util-linux are in every Debian system), so the
// supervisor's rules are checked without an engine; the engine tests in procs_test.go check them in real nodes.

var nodeSbin = filepath.Join("..", "ops", "node", "rootfs", "usr", "local", "sbin")

func TestSupervisedCommand(t *testing.T) {
	for _, tc := range []struct {
		feed       bool
		cols, rows uint
		socket     string
		want       []string
	}{
		{false, 0, 0, "", []string{supervisorPath, "--", "ls", "-l"}},
		{true, 0, 0, "", []string{supervisorPath, "--stdin", "--", "ls", "-l"}},
		{false, 100, 30, "", []string{supervisorPath, "--tty", "100x30", "--", "ls", "-l"}},
		{true, 1 << 20, 30, "", []string{supervisorPath, "--tty", "65535x30", "--", "ls", "-l"}},
		{false, 80, 24, "/run/t.sock", []string{supervisorPath, "--tty", "80x24", "--socket", "/run/t.sock", "--", "ls", "-l"}},
		{false, 0, 0, "/run/t.sock", []string{supervisorPath, "--", "ls", "-l"}},
	} {
		if got := supervised([]string{"ls", "-l"}, tc.feed, tc.cols, tc.rows, tc.socket); !slices.Equal(got, tc.want) {
			t.Errorf("supervised(%v, %d, %d) = %q, want %q", tc.feed, tc.cols, tc.rows, got, tc.want)
		}
	}
}

func TestLifelineFrames(t *testing.T) {
	var buf bytes.Buffer
	l := &lifeline{w: &buf}
	big := bytes.Repeat([]byte("x"), maxFrame+3)
	if n, err := l.Write(big); n != len(big) || err != nil {
		t.Fatalf("write: %d, %v", n, err)
	}
	if err := l.resize(120, 40); err != nil {
		t.Fatal(err)
	}
	if err := l.endInput(); err != nil {
		t.Fatal(err)
	}
	want := "d\x00\x00\x80\x00" + strings.Repeat("x", maxFrame) + "d\x00\x00\x00\x03xxx" +
		"w\x00\x00\x00\x04\x00\x78\x00\x28" + "e\x00\x00\x00\x00"
	if buf.String() != want {
		t.Errorf("frames differ: %d bytes, want %d", buf.Len(), len(want))
	}
}

func TestDemux(t *testing.T) {
	var raw bytes.Buffer
	out, errw := stdcopy.NewStdWriter(&raw, stdcopy.Stdout), stdcopy.NewStdWriter(&raw, stdcopy.Stderr)
	_, _ = out.Write([]byte("hello "))
	_, _ = errw.Write([]byte("oops "))
	_, _ = out.Write(nil)
	_, _ = out.Write([]byte("world"))
	for name, r := range map[string]io.Reader{
		"whole":     bytes.NewReader(raw.Bytes()),
		"byte-wise": iotest.OneByteReader(bytes.NewReader(raw.Bytes())),
	} {
		got, err := io.ReadAll(&demux{r: r})
		if err != nil || string(got) != "hello oops world" {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
	cut := raw.Bytes()[:len(raw.Bytes())-2]
	if got, err := io.ReadAll(&demux{r: bytes.NewReader(cut)}); err != nil || string(got) != "hello oops wor" {
		t.Errorf("cut short: %q, %v", got, err)
	}
}

// FuzzDemux: whatever the engine sends, demux returns the payloads of its frames and nothing else.
func FuzzDemux(f *testing.F) {
	f.Add([]byte("\x01\x00\x00\x00\x00\x00\x00\x02hi\x02\x00\x00\x00\x00\x00\x00\x01!"))
	f.Add([]byte("\x01\x00\x00\x00\xff\xff\xff\xffhi"))
	f.Add([]byte("\x01\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := io.ReadAll(&demux{r: bytes.NewReader(data)})
		if err != nil {
			t.Fatal(err)
		}
		var want []byte
		for rest := data; len(rest) >= 8; {
			size := int(min(binary.BigEndian.Uint32(rest[4:8]), uint32(len(rest)-8)))
			want = append(want, rest[8:8+size]...)
			rest = rest[8+size:]
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("demux %q, frames hold %q", got, want)
		}
	})
}

// hostSupervisor starts sandlot-run on this host with args, its stdin a pipe (the lifeline) and its stdout and
// stderr captured.
type hostSupervisor struct {
	cmd            *exec.Cmd
	in             *lifeline
	stdin          io.WriteCloser
	stdout, stderr syncBuffer
}

func startSupervisor(t *testing.T, args ...string) *hostSupervisor {
	t.Helper()
	for _, tool := range []string{"perl", "/usr/bin/setsid"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s here: %v", tool, err)
		}
	}
	s := &hostSupervisor{cmd: exec.Command(filepath.Join(nodeSbin, "sandlot-run"), args...)}
	s.cmd.Env = append(os.Environ(), perlChecks)
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	var err error
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	s.in = &lifeline{w: s.stdin}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.stdin.Close()
		_ = s.cmd.Wait()
	})
	return s
}

// exit waits for the supervisor and returns its exit code.
func (s *hostSupervisor) exit(t *testing.T) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		t.Fatalf("sandlot-run did not exit; stdout %q, stderr %q", s.stdout.String(), s.stderr.String())
	}
	if strings.Contains(s.stderr.String(), "sandlot-run line") {
		t.Errorf("perl complained: %s", s.stderr.String())
	}
	return s.cmd.ProcessState.ExitCode()
}

// perlChecks runs the node's scripts with strict and warnings, which they do not load themselves (start-up time).
const perlChecks = "PERL5OPT=-Mstrict -Mwarnings"

// marker is an argument for sleep that no other process on this host has: sleep 300.<random>.
func marker() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("300.%d", binary.BigEndian.Uint32(b))
}

// sleepers lists the host processes running `sleep mark`.
func sleepers(t *testing.T, mark string) []int {
	t.Helper()
	var pids []int
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range dirs {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && string(cmdline) == "sleep\x00"+mark+"\x00" {
			if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil &&
				!strings.Contains(string(stat[bytes.LastIndexByte(stat, ')'):]), ") Z ") {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

func killOnCleanup(t *testing.T, mark string) {
	t.Cleanup(func() {
		for _, pid := range sleepers(t, mark) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// When Sandlot lets go, the command's whole session ends: what ignores SIGHUP and SIGTERM is killed after the
// grace; what left the session on purpose stays.
func TestSupervisorEndsSessionOnHangUp(t *testing.T) {
	job, stubborn, detached := marker(), marker(), marker()
	for _, m := range []string{job, stubborn, detached} {
		killOnCleanup(t, m)
	}
	s := startSupervisor(t, "--", "sh", "-c",
		fmt.Sprintf("sleep %s & setsid sleep %s >/dev/null 2>&1 & trap '' HUP TERM; sleep %s", job, detached, stubborn))
	eventually(t, 10*time.Second, func() error {
		for _, m := range []string{job, stubborn, detached} {
			if len(sleepers(t, m)) != 1 {
				return fmt.Errorf("sleep %s is not running", m)
			}
		}
		return nil
	})
	start := time.Now()
	s.stdin.Close()
	if code := s.exit(t); code != 128+int(syscall.SIGKILL) {
		t.Errorf("exit code %d, want %d (the shell ignored SIGTERM)", code, 128+int(syscall.SIGKILL))
	}
	t.Logf("ended in %s", time.Since(start))
	for _, m := range []string{job, stubborn} {
		if pids := sleepers(t, m); len(pids) != 0 {
			t.Errorf("sleep %s still runs: %v", m, pids)
		}
	}
	if len(sleepers(t, detached)) != 1 {
		t.Errorf("the detached sleep was ended too")
	}
}

// A command that ends by itself passes on its exit code and output, gets its input from data frames, and leaves
// its background jobs running.
func TestSupervisorExitAndInput(t *testing.T) {
	left := marker()
	killOnCleanup(t, left)
	s := startSupervisor(t, "--stdin", "--", "sh", "-c",
		fmt.Sprintf("cat; echo err >&2; sleep %s >/dev/null 2>&1 & exit 7", left))
	if _, err := s.in.Write([]byte("hello ")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.in.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	if err := s.in.endInput(); err != nil {
		t.Fatal(err)
	}
	if code := s.exit(t); code != 7 || s.stdout.String() != "hello world" || s.stderr.String() != "err\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, s.stdout.String(), s.stderr.String())
	}
	if len(sleepers(t, left)) != 1 {
		t.Errorf("the background job of a command that ended by itself was ended")
	}

	s = startSupervisor(t, "--", "sh", "-c", "cat; kill -TERM $$")
	if code := s.exit(t); code != 128+int(syscall.SIGTERM) || s.stdout.String() != "" {
		t.Errorf("without --stdin: exit %d, stdout %q, stderr %q", code, s.stdout.String(), s.stderr.String())
	}
}

// With --tty the command has a terminal of the given size that follows size frames, and the keyboard; hanging
// up ends what runs in it.
func TestSupervisorTTY(t *testing.T) {
	s := startSupervisor(t, "--tty", "100x30", "--", "sh", "-c",
		`stty size; read line; stty size; tty >/dev/null && echo "got $line"; exit 4`)
	eventually(t, 10*time.Second, func() error {
		if !strings.Contains(s.stdout.String(), "30 100") {
			return fmt.Errorf("no size yet: %q", s.stdout.String())
		}
		return nil
	})
	if err := s.in.resize(120, 40); err != nil {
		t.Fatal(err)
	}
	if _, err := s.in.Write([]byte("hi\n")); err != nil {
		t.Fatal(err)
	}
	code := s.exit(t)
	out := s.stdout.String()
	if code != 4 || !strings.Contains(out, "30 100") || !strings.Contains(out, "40 120") ||
		!strings.Contains(out, "got hi") {
		t.Errorf("exit %d, output %q, stderr %q", code, out, s.stderr.String())
	}

	fg := marker()
	killOnCleanup(t, fg)
	s = startSupervisor(t, "--tty", "80x24", "--", "sh", "-c", "sleep "+fg)
	eventually(t, 10*time.Second, func() error {
		if len(sleepers(t, fg)) != 1 {
			return fmt.Errorf("sleep %s is not running", fg)
		}
		return nil
	})
	s.stdin.Close()
	if code := s.exit(t); code != 128+int(syscall.SIGHUP) {
		t.Errorf("hung up: exit %d, want %d", code, 128+int(syscall.SIGHUP))
	}
	if pids := sleepers(t, fg); len(pids) != 0 {
		t.Errorf("the terminal's sleep still runs: %v", pids)
	}
}

// sandlot-ports reports the same from netlink and from /proc: own listeners, not loopback-only ones nor 22 and
// 2377, at once and again when they change. It runs in a network namespace of its own (root only).
func TestPortsScript(t *testing.T) {
	for _, tool := range []string{"perl", "unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s here: %v", tool, err)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("a network namespace needs root")
	}
	// The listeners: 8080 goes after a second.
	listen := `use Socket qw(:all);
my @l;
for (["0.0.0.0", 8080], ["127.0.0.1", 9090], ["::", 8443], ["::1", 9091], ["0.0.0.0", 22], ["10.77.0.1", 2377],
	["10.77.0.1", 5000], ["::ffff:127.0.0.1", 9092]) {
	my ($addr, $port) = @$_;
	my $v6 = $addr =~ /:/;
	socket(my $s, $v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0) or die "socket: $!";
	setsockopt($s, SOL_SOCKET, SO_REUSEADDR, 1);
	setsockopt($s, IPPROTO_IPV6, IPV6_V6ONLY, 0) if $v6;
	bind($s, $v6 ? pack_sockaddr_in6($port, inet_pton(AF_INET6, $addr)) : pack_sockaddr_in($port, inet_aton($addr)))
		or die "bind $addr $port: $!";
	listen($s, 8) or die "listen: $!";
	push @l, $s;
}
sleep 1; close $l[0]; sleep 60;`
	script := `ip link set lo up && ip addr add 10.77.0.1/24 dev lo && { perl -e "$1" & } && sleep 0.5 && exec "$2"`
	for _, source := range []string{"netlink", "proc"} {
		t.Run(source, func(t *testing.T) {
			// In a pid namespace of its own too, so that the listeners die with the script.
			cmd := exec.Command("unshare", "--net", "--pid", "--fork", "--kill-child", "sh", "-c", script, "sh", listen,
				filepath.Join(nodeSbin, "sandlot-ports"))
			cmd.Env = append(os.Environ(), "SANDLOT_PORTS_SOURCE="+source, perlChecks)
			var stderr syncBuffer
			cmd.Stderr = &stderr
			defer func() {
				if stderr.String() != "" {
					t.Errorf("stderr: %s", stderr.String())
				}
			}()
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			lines := make(chan string)
			go func() {
				defer close(lines)
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					lines <- sc.Text()
				}
			}()
			for _, want := range []string{"ports 5000 8080 8443", "ports 5000 8443"} {
				select {
				case got := <-lines:
					if got != want {
						t.Fatalf("got %q, want %q", got, want)
					}
				case <-time.After(20 * time.Second):
					t.Fatalf("no %q", want)
				}
			}
		})
	}
}

// syncBuffer is a bytes.Buffer that a test may read while a command writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// The terminal's short way: output waits for the socket's client, which then types and resizes through it, while
// stdin stays the lifeline; the client's going ends nothing; the socket goes with the supervisor.
func TestSupervisorShortWay(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "tty", "t.sock")
	s := startSupervisor(t, "--tty", "80x24", "--socket", socket, "--", "sh", "-c",
		`echo first; read line; stty size; echo "got $line"; read again; echo "then $again"; exit 3`)
	c, err := dialShortWay(context.Background(), "/", socket)
	if err != nil {
		t.Fatal(err)
	}
	in := &lifeline{w: c}
	var got bytes.Buffer
	readUntil := func(want string) {
		t.Helper()
		buf := make([]byte, 4096)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for !strings.Contains(got.String(), want) {
			n, err := c.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				t.Fatalf("reading %q from the socket: %v; got %q, stdout %q", want, err, got.String(), s.stdout.String())
			}
		}
	}
	readUntil("first") // kept for the client, though it printed before the client came
	if err := in.resize(120, 40); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Write([]byte("hi\n")); err != nil {
		t.Fatal(err)
	}
	readUntil("got hi")
	if !strings.Contains(got.String(), "40 120") {
		t.Errorf("the resize on the socket did not reach the terminal: %q", got.String())
	}
	if strings.Contains(s.stdout.String(), "first") {
		t.Errorf("output went to stdout while the client was connected: %q", s.stdout.String())
	}
	c.Close() // the client goes: the command runs on, its input now from the lifeline
	if _, err := s.in.Write([]byte("there\n")); err != nil {
		t.Fatal(err)
	}
	if code := s.exit(t); code != 3 || !strings.Contains(s.stdout.String(), "then there") {
		t.Errorf("exit %d, stdout %q", code, s.stdout.String())
	}
	if _, err := os.Stat(socket); !os.IsNotExist(err) {
		t.Errorf("the socket is left: %v", err)
	}
}
