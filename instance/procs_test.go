package instance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
)

// Everything Sandlot starts in a node ends when Sandlot is done with it (docs/decisions/0017-processes-in-nodes.md):
// these tests count the node's processes with ps inside it.

// nodeProc is a process in a node as ps shows it.
type nodeProc struct{ comm, args string }

// nodeProcs lists the processes of a node, but for the ps that lists them and its shell and supervisor.
func nodeProcs(t testing.TB, d *Driver, session, node string) []nodeProc {
	t.Helper()
	var procs []nodeProc
	for _, line := range strings.Split(sh(t, d, session, node, "ps -eo comm=,args="), "\n") {
		comm, args, _ := strings.Cut(strings.TrimSpace(line), " ")
		args = strings.TrimSpace(args)
		if !strings.Contains(args, "ps -eo comm=,args=") {
			procs = append(procs, nodeProc{comm, args})
		}
	}
	return procs
}

// countProcs counts the processes of a node whose command line is args.
func countProcs(t testing.TB, d *Driver, session, node, args string) int {
	t.Helper()
	n := 0
	for _, p := range nodeProcs(t, d, session, node) {
		if p.args == args {
			n++
		}
	}
	return n
}

// countComm counts the processes of a node whose command name is comm.
func countComm(t testing.TB, d *Driver, session, node, comm string) int {
	t.Helper()
	n := 0
	for _, p := range nodeProcs(t, d, session, node) {
		if p.comm == comm {
			n++
		}
	}
	return n
}

// want is a check for eventually: count() must come to n.
func want(n int, what string, count func() int) func() error {
	return func() error {
		if got := count(); got != n {
			return fmt.Errorf("%d %s, want %d", got, what, n)
		}
		return nil
	}
}

// A closed terminal's shell ends, with what runs in it; so does a shell nobody ever used (a prewarmed one).
// Closing twice, and asking for the exit code after, are fine.
func TestTTYCloseEndsShell(t *testing.T) {
	d := newDriver(t, NetworkBridge, nil)
	session, _ := newSession(t, d)
	createNodes(t, d, session, 1)
	ctx := testContext(t)
	used, err := d.OpenTTY(ctx, session, "node1", TTYOptions{})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, used) }()
	unused, err := d.OpenTTY(ctx, session, "node1", TTYOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := used.Write([]byte("sleep 311\n")); err != nil {
		t.Fatal(err)
	}
	shells := func() int { return countProcs(t, d, session, "node1", "bash -l") }
	sleeps := func() int { return countProcs(t, d, session, "node1", "sleep 311") }
	eventually(t, 20*time.Second, want(2, "shells", shells))
	eventually(t, 20*time.Second, want(1, "sleep 311", sleeps))
	used.Close()
	unused.Close()
	used.Close()
	eventually(t, 10*time.Second, want(0, "shells", shells))
	eventually(t, 5*time.Second, want(0, "sleep 311", sleeps))
	for _, tty := range []*TTY{used, unused} {
		if _, exited, err := tty.ExitCode(ctx); err != nil || !exited {
			t.Errorf("closed terminal: exited %v, err %v", exited, err)
		}
	}
	if n := countComm(t, d, session, "node1", "sandlot-run"); n != 0 {
		t.Errorf("%d supervisors left: %v", n, nodeProcs(t, d, session, "node1"))
	}
}

// An exec whose context ends is ended in the node, fed from stdin or not.
func TestExecCancelEndsCommand(t *testing.T) {
	d := newDriver(t, NetworkBridge, nil)
	session, _ := newSession(t, d)
	createNodes(t, d, session, 1)
	stdin, feed := io.Pipe() // input that never ends
	t.Cleanup(func() { feed.Close() })
	for _, tc := range []struct {
		name  string
		cmd   []string
		stdin io.Reader
	}{
		{"plain", []string{"sleep", "312"}, nil},
		{"stdin", []string{"sh", "-c", "sleep 313; cat"}, stdin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := strings.Join(tc.cmd, " ")
			if tc.stdin != nil {
				args = "sleep 313"
			}
			ctx, cancel := context.WithCancel(testContext(t))
			done := make(chan error, 1)
			go func() {
				_, err := d.Exec(ctx, session, "node1", tc.cmd, ExecOptions{Stdin: tc.stdin})
				done <- err
			}()
			running := func() int { return countProcs(t, d, session, "node1", args) }
			eventually(t, 20*time.Second, want(1, args, running))
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("Exec returned %v, want context.Canceled", err)
			}
			eventually(t, 10*time.Second, want(0, args, running))
		})
	}
}

// A port watcher reports the node's ports, and its process in the node ends when it stops: however often watchers
// start and stop, at most one runs.
func TestWatchPortsEndsWatcher(t *testing.T) {
	d := newDriver(t, NetworkBridge, nil)
	session, _ := newSession(t, d)
	createNodes(t, d, session, 1)
	sh(t, d, session, "node1", "for a in TCP-LISTEN:8080,fork,reuseaddr TCP-LISTEN:9090,bind=127.0.0.1,fork; do "+
		"setsid socat $a /dev/null </dev/null >/dev/null 2>&1 & done")
	watchers := func() int { return countComm(t, d, session, "node1", "sandlot-ports") }
	for round := range 4 {
		ctx, cancel := context.WithCancel(testContext(t))
		reports := make(chan []int, 16)
		done := make(chan error, 1)
		go func() {
			done <- d.WatchPorts(ctx, session, "node1", func(ports []int) { reports <- ports })
		}()
		deadline := time.After(20 * time.Second)
	wait:
		for {
			select {
			case ports := <-reports:
				if slices.Equal(ports, []int{8080}) {
					break wait
				}
				t.Logf("round %d: ports %v", round, ports)
			case <-deadline:
				t.Fatalf("round %d: no report of port 8080", round)
			}
		}
		if n := watchers(); n != 1 {
			t.Errorf("round %d: %d watchers run, want 1", round, n)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("round %d: WatchPorts returned %v", round, err)
		}
		if round%2 == 0 {
			eventually(t, 10*time.Second, want(0, "watchers", watchers))
		}
	}
	eventually(t, 10*time.Second, want(0, "watchers", watchers))
}

// procsChildEnv makes this test binary a child that starts processes in a node of the session it names, and
// is killed.
const procsChildEnv = "SANDLOT_PROCS_CHILD_SESSION"

// TestProcsChild is the child: it is skipped unless TestProcessesEndWithSandlot starts it.
func TestProcsChild(t *testing.T) {
	session := os.Getenv(procsChildEnv)
	if session == "" {
		t.Skip("run by TestProcessesEndWithSandlot")
	}
	d := newDriver(t, NetworkBridge, nil)
	ctx := context.Background()
	tty, err := d.OpenTTY(ctx, session, "node1", TTYOptions{Cmd: []string{"sleep", "321"}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, tty) }()
	go func() { _ = d.WatchPorts(ctx, session, "node1", func([]int) {}) }()
	go func() { _, _ = d.Exec(ctx, session, "node1", []string{"sleep", "322"}, ExecOptions{}) }()
	fmt.Println("started")
	time.Sleep(time.Minute)
}

// When Sandlot dies, what it started in nodes ends by itself: a terminal's command, a port watcher, an exec.
func TestProcessesEndWithSandlot(t *testing.T) {
	d := newDriver(t, NetworkBridge, nil)
	session, _ := newSession(t, d)
	createNodes(t, d, session, 1)
	child := exec.Command(os.Args[0], "-test.run=^TestProcsChild$", "-test.v")
	child.Env = append(os.Environ(), procsChildEnv+"="+session)
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	started := func() int {
		n := 0
		for _, p := range nodeProcs(t, d, session, "node1") {
			if p.args == "sleep 321" || p.args == "sleep 322" || p.comm == "sandlot-ports" {
				n++
			}
		}
		return n
	}
	eventually(t, time.Minute, want(3, "processes of the child", started))
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	eventually(t, 10*time.Second, want(0, "processes of the dead child", started))
}

// BenchmarkPortWatchers measures what watching idle nodes' ports costs: 20 nodes of 256 MiB, a watcher on each,
// and the CPU time of the watchers' processes in the nodes (sandlot-ports and its supervisor, read from this
// host's /proc) over 60 s, per node as a percentage of one core. The iterations share the 60 s, so that
// `-benchtime 7x` takes no longer than 1x. SANDLOT_BENCH_NODES and SANDLOT_BENCH_WINDOW (a duration) change 20
// and 60 s.
func BenchmarkPortWatchers(b *testing.B) {
	count, window := 20, time.Minute
	if n, err := strconv.Atoi(os.Getenv("SANDLOT_BENCH_NODES")); err == nil && n > 0 {
		count = n
	}
	if w, err := time.ParseDuration(os.Getenv("SANDLOT_BENCH_WINDOW")); err == nil && w > 0 {
		window = w
	}
	d := newDriver(b, NetworkBridge, func(c *Config) { c.Memory = 256 << 20 })
	session, _ := newSession(b, d)
	nodes := createNodes(b, d, session, count)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	reported := make(chan string, count)
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var once sync.Once
			err := d.WatchPorts(ctx, session, n.Name, func([]int) { once.Do(func() { reported <- n.Name }) })
			if ctx.Err() == nil {
				b.Errorf("watcher of %s: %v", n.Name, err)
			}
		}()
	}
	for range nodes {
		select {
		case <-reported:
		case <-time.After(time.Minute):
			b.Fatal("not every watcher reported within a minute")
		}
	}
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.ContainerID
	}
	b.ResetTimer()
	before := watcherTicks(b, ids)
	start := time.Now()
	for range b.N {
		time.Sleep(window / time.Duration(b.N))
	}
	after := watcherTicks(b, ids)
	elapsed := time.Since(start)
	var used int64
	for pid, ticks := range after {
		used += ticks - before[pid] // a process that started in the window counts whole
	}
	b.ReportMetric(100*(float64(used)/clockTicks)/elapsed.Seconds()/float64(count), "%core/node")
	b.ReportMetric(float64(len(after))/float64(count), "procs/node")
}

// clockTicks is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100 on Linux).
const clockTicks = 100

// watcherTicks maps the host pid of every watcher process (sandlot-ports or sandlot-run) of the containers ids to
// the CPU time it used so far, in clock ticks.
func watcherTicks(b *testing.B, ids []string) map[int]int64 {
	b.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	out := map[int]int64{}
	for _, e := range dirs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		comm, err := os.ReadFile(filepath.Join(dir, "comm"))
		if err != nil || !slices.Contains([]string{"sandlot-ports", "sandlot-run"}, strings.TrimSpace(string(comm))) {
			continue
		}
		cgroup, err := os.ReadFile(filepath.Join(dir, "cgroup"))
		if err != nil || !slices.ContainsFunc(ids, func(id string) bool { return strings.Contains(string(cgroup), id) }) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue
		}
		// After "(comm)": state is field 3 of stat, utime and stime fields 14 and 15.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) < 13 {
			continue
		}
		utime, _ := strconv.ParseInt(fields[11], 10, 64)
		stime, _ := strconv.ParseInt(fields[12], 10, 64)
		out[pid] = utime + stime
	}
	return out
}

// BenchmarkTTY compares a terminal under the supervisor with the plain path, a docker exec with a TTY of the
// engine's own (what OpenTTY did before the supervisor): the echo of one keystroke through `cat` on a raw
// terminal (median of 200), and the rate of a 32 MiB burst of output. The two alternate in each iteration.
func BenchmarkTTY(b *testing.B) {
	d := newDriver(b, NetworkBridge, nil)
	session, _ := newSession(b, d)
	nodes := createNodes(b, d, session, 1)
	ctx := testContext(b)
	const burst = 32 << 20
	echo := []string{"sh", "-c", "stty raw -echo; echo ready; exec cat"}
	flood := []string{"sh", "-c", fmt.Sprintf("stty raw -echo; echo ready; head -c %d /dev/zero; exec cat", burst)}
	open := map[string]func(cmd []string) io.ReadWriteCloser{
		"supervised": func(cmd []string) io.ReadWriteCloser {
			tty, err := d.OpenTTY(ctx, session, "node1", TTYOptions{Cmd: cmd})
			if err != nil {
				b.Fatal(err)
			}
			return tty
		},
		"plain": func(cmd []string) io.ReadWriteCloser { return plainTTY(b, d, nodes[0].ContainerID, cmd) },
	}
	paths := []string{"supervised", "plain"}
	echoes, rates := map[string][]time.Duration{}, map[string][]float64{}
	for i := range b.N {
		for j := range paths {
			path := paths[(i+j)%2]
			tty := open[path](echo)
			awaitReady(b, tty)
			buf := make([]byte, 1)
			var rtts []time.Duration
			for k := range 220 {
				start := time.Now()
				if _, err := tty.Write([]byte("x")); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(tty, buf[:1]); err != nil {
					b.Fatal(err)
				}
				if k >= 20 { // warmed up
					rtts = append(rtts, time.Since(start))
				}
			}
			echoes[path] = append(echoes[path], median(rtts))
			tty.Close()

			tty = open[path](flood)
			awaitReady(b, tty)
			start := time.Now()
			if _, err := io.ReadFull(tty, make([]byte, burst)); err != nil {
				b.Fatal(err)
			}
			rates[path] = append(rates[path], float64(burst)/(1<<20)/time.Since(start).Seconds())
			tty.Close()
		}
	}
	es, ep := median(echoes["supervised"]), median(echoes["plain"])
	id := func(x float64) float64 { return x }
	rs, rp := medianOf(rates["supervised"], id), medianOf(rates["plain"], id)
	b.ReportMetric(float64(es.Microseconds()), "µs-echo-supervised")
	b.ReportMetric(float64(ep.Microseconds()), "µs-echo-plain")
	b.ReportMetric(float64(es)/float64(ep), "echo-ratio")
	b.ReportMetric(rs, "MiB/s-supervised")
	b.ReportMetric(rp, "MiB/s-plain")
	b.ReportMetric(rs/rp, "rate-ratio")
}

// awaitReady reads a terminal until "ready\n", which the benchmark's commands print once it is raw.
func awaitReady(b *testing.B, r io.Reader) {
	var seen []byte
	one := make([]byte, 1)
	for !bytes.HasSuffix(seen, []byte("ready\n")) {
		if _, err := io.ReadFull(r, one); err != nil {
			b.Fatalf("before ready: %q, %v", seen, err)
		}
		seen = append(seen, one[0])
	}
}

// plainTTY runs cmd in a container with a TTY of the engine's own, unsupervised.
func plainTTY(b *testing.B, d *Driver, id string, cmd []string) io.ReadWriteCloser {
	ctx := testContext(b)
	created, err := d.docker.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd, Tty: true,
		AttachStdin: true, AttachStdout: true, AttachStderr: true})
	if err != nil {
		b.Fatal(err)
	}
	conn, err := d.docker.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{Tty: true})
	if err != nil {
		b.Fatal(err)
	}
	return plainConn{conn}
}

type plainConn struct{ types.HijackedResponse }

func (c plainConn) Read(p []byte) (int, error)  { return c.Reader.Read(p) }
func (c plainConn) Write(p []byte) (int, error) { return c.Conn.Write(p) }
func (c plainConn) Close() error                { c.HijackedResponse.Close(); return nil }

// BenchmarkExec compares an Exec of `true` under the supervisor with the plain path, the unsupervised docker exec
// Exec made before (create, attach stdout and stderr, inspect). The two alternate.
func BenchmarkExec(b *testing.B) {
	d := newDriver(b, NetworkBridge, nil)
	session, _ := newSession(b, d)
	nodes := createNodes(b, d, session, 1)
	ctx := testContext(b)
	var ours, plain []time.Duration
	supervised := func() {
		start := time.Now()
		if r, err := d.Exec(ctx, session, "node1", []string{"true"}, ExecOptions{}); err != nil || r.ExitCode != 0 {
			b.Fatalf("exit %d, %v", r.ExitCode, err)
		}
		ours = append(ours, time.Since(start))
	}
	unsupervised := func() {
		start := time.Now()
		created, err := d.docker.ContainerExecCreate(ctx, nodes[0].ContainerID, container.ExecOptions{
			Cmd: []string{"true"}, AttachStdout: true, AttachStderr: true})
		if err != nil {
			b.Fatal(err)
		}
		conn, err := d.docker.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, conn.Reader)
		conn.Close()
		if in, err := d.docker.ContainerExecInspect(ctx, created.ID); err != nil || in.ExitCode != 0 {
			b.Fatalf("exit %d, %v", in.ExitCode, err)
		}
		plain = append(plain, time.Since(start))
	}
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			supervised()
			unsupervised()
		} else {
			unsupervised()
			supervised()
		}
	}
	mo, mp := median(ours), median(plain)
	b.ReportMetric(ms(mo), "ms-supervised-median")
	b.ReportMetric(ms(mp), "ms-plain-median")
	b.ReportMetric(float64(mo)/float64(mp), "ratio")
}
