package instance

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkCreateReady measures one node from the create call until its inner engine answers, and in the same
// run the plain path it must keep up with: `docker run -d` of the node image with the same isolation on the same
// engine (user namespaces, capabilities, seccomp profile, disk), then a `docker exec` that polls `docker info`
// inside every 20 ms. The two alternate, so drift hits both alike. bridge and overlay run on the test engine (the
// node engine under make: userns); caps runs the caps isolation on SANDLOT_CAPS_ENGINE, when it is set.
func BenchmarkCreateReady(b *testing.B) {
	cases := []struct {
		name string
		kind NetworkKind
		tune func(*Config)
	}{{"bridge", NetworkBridge, nil}, {"overlay", NetworkOverlay, nil}}
	if engine := os.Getenv("SANDLOT_CAPS_ENGINE"); engine != "" {
		cases = append(cases, struct {
			name string
			kind NetworkKind
			tune func(*Config)
		}{"caps-bridge", NetworkBridge, func(c *Config) {
			c.Engine, c.Isolation, c.SubnetPool = engine, IsolationCaps, netip.MustParsePrefix("198.19.192.0/18")
		}})
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			d := newDriver(b, tc.kind, tc.tune)
			if d.Isolation() == IsolationCaps {
				b.Cleanup(func() { removeFirewall(b, d) })
			}
			session, net := newSession(b, d)
			var ours, plain []time.Duration
			for i := 0; i < b.N; i++ {
				measureOurs := func() {
					start := time.Now()
					if _, err := d.Create(context.Background(), session, Spec{Name: "node1"}); err != nil {
						b.Fatal(err)
					}
					ours = append(ours, time.Since(start))
					if err := d.Delete(context.Background(), session, "node1"); err != nil {
						b.Fatal(err)
					}
				}
				measurePlain := func() { plain = append(plain, plainDockerRun(b, d, session, net)) }
				if i%2 == 0 {
					measureOurs()
					measurePlain()
				} else {
					measurePlain()
					measureOurs()
				}
			}
			mo, mp := median(ours), median(plain)
			b.ReportMetric(ms(mo), "ms-sandlot-median")
			b.ReportMetric(ms(mp), "ms-plain-median")
			b.ReportMetric(float64(mo)/float64(mp), "ratio")
		})
	}
}

// plainDockerRun is the by-hand path: the docker CLI, on the driver's engine, with the options Sandlot gives a node.
func plainDockerRun(b *testing.B, d *Driver, session string, net Network) time.Duration {
	name := containerName(session, "plain")
	profile := filepath.Join(b.TempDir(), "seccomp.json")
	if err := os.WriteFile(profile, []byte(d.seccomp), 0o600); err != nil {
		b.Fatal(err)
	}
	docker := func(args ...string) *exec.Cmd {
		if e := d.Engine(); e != "" {
			args = append([]string{"-H", e}, args...)
		}
		return exec.Command("docker", args...)
	}
	args := []string{"run", "-d", "--name", name, "--hostname", "plain", "--network", net.Name,
		"--label", LabelSession + "=" + session, "--label", LabelInstance + "=plain",
		"--memory", fmt.Sprint(d.cfg.Memory), "--memory-swap", fmt.Sprint(d.cfg.Memory),
		"--cpus", fmt.Sprint(d.cfg.CPUs), "--pids-limit", fmt.Sprint(d.cfg.Pids),
		"--tmpfs", "/run:rw,nosuid,nodev,exec,size=64m", "--mount", "type=volume,dst=/var/lib/docker",
		"--cap-add", "ALL", "--security-opt", "seccomp=" + profile, "--security-opt", "apparmor=unconfined",
		"--security-opt", "systempaths=unconfined"}
	if d.nodeDisks {
		args = append(args, "--env", diskEnv+"="+strconv.FormatInt(d.cfg.Disk, 10))
	}
	for _, c := range droppedCaps {
		args = append(args, "--cap-drop", c)
	}
	for _, r := range nodeDeviceRules {
		args = append(args, "--device-cgroup-rule", r)
	}
	args = append(args, d.cfg.Image)
	start := time.Now()
	if out, err := docker(args...).CombinedOutput(); err != nil {
		b.Fatalf("docker run: %v: %s", err, out)
	}
	poll := "until docker info >/dev/null 2>&1; do sleep 0.02; done"
	if out, err := docker("exec", name, "sh", "-c", poll).CombinedOutput(); err != nil {
		b.Fatalf("docker exec: %v: %s", err, out)
	}
	took := time.Since(start)
	if out, err := docker("rm", "-fv", name).CombinedOutput(); err != nil {
		b.Fatalf("docker rm: %v: %s", err, out)
	}
	return took
}

// BenchmarkCreateFive measures five nodes created at once until all are ready, on a bridge network.
func BenchmarkCreateFive(b *testing.B) {
	d := newDriver(b, NetworkBridge, nil)
	session, _ := newSession(b, d)
	var took []time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		createNodes(b, d, session, 5)
		took = append(took, time.Since(start))
		var wg sync.WaitGroup
		for n := 1; n <= 5; n++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := d.Delete(context.Background(), session, fmt.Sprintf("node%d", n)); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	b.ReportMetric(ms(median(took)), "ms-five-ready-median")
}

// BenchmarkIdleMemory reports what an idle node costs: RSS and PSS summed over the node's processes (its
// engine, containerd, init, entrypoint), per node, with 5 and with 10 nodes idle side by side. Nodes share the
// pages of their binaries, so PSS, which splits shared pages among their users, is the real cost; it falls as more
// nodes share them, towards the private part, which is also reported.
func BenchmarkIdleMemory(b *testing.B) {
	for _, count := range []int{5, 10} {
		b.Run(fmt.Sprintf("nodes=%d", count), func(b *testing.B) {
			d := newDriver(b, NetworkBridge, func(c *Config) { c.Memory = 256 << 20 })
			session, _ := newSession(b, d)
			nodes := createNodes(b, d, session, count)
			var m []nodeMem
			for i := 0; i < b.N; i++ {
				time.Sleep(5 * time.Second) // let start-up garbage be collected
				for _, n := range nodes {
					m = append(m, nodeMemory(b, n.ContainerID))
				}
			}
			b.ReportMetric(medianOf(m, func(x nodeMem) float64 { return x.rss }), "MiB-rss/node")
			b.ReportMetric(medianOf(m, func(x nodeMem) float64 { return x.pss }), "MiB-pss/node")
			b.ReportMetric(medianOf(m, func(x nodeMem) float64 { return x.private }), "MiB-private/node")
			b.ReportMetric(medianOf(m, func(x nodeMem) float64 { return x.enginePSS }), "MiB-pss-engine/node")
			b.ReportMetric(medianOf(m, func(x nodeMem) float64 { return x.engineRSS }), "MiB-rss-engine/node")
		})
	}
}

// nodeMem is one node's memory in MiB; engine means dockerd and containerd only.
type nodeMem struct{ rss, pss, private, engineRSS, enginePSS float64 }

// nodeMemory sums memory over every process in a node's memory cgroup and below it.
func nodeMemory(b *testing.B, containerID string) nodeMem {
	var m nodeMem
	dir := cgroupFiles(b, containerID, "memory")
	err := filepath.WalkDir(dir.path, func(path string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || e.Name() != "cgroup.procs" {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, pid := range strings.Fields(string(data)) {
			p := smapsRollup(pid)
			m.rss, m.pss, m.private = m.rss+p.rss, m.pss+p.pss, m.private+p.private
			comm, _ := os.ReadFile("/proc/" + pid + "/comm")
			if c := strings.TrimSpace(string(comm)); c == "dockerd" || c == "containerd" {
				m.engineRSS, m.enginePSS = m.engineRSS+p.rss, m.enginePSS+p.pss
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// smapsRollup reads one process's memory in MiB; a process that ended counts as nothing.
func smapsRollup(pid string) nodeMem {
	var m nodeMem
	f, err := os.Open("/proc/" + pid + "/smaps_rollup")
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(fields[1], 64)
		switch fields[0] {
		case "Rss:":
			m.rss = kb / 1024
		case "Pss:":
			m.pss = kb / 1024
		case "Private_Clean:", "Private_Dirty:":
			m.private += kb / 1024
		}
	}
	return m
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func medianOf[T any](xs []T, f func(T) float64) float64 {
	s := make([]float64, len(xs))
	for i, x := range xs {
		s[i] = f(x)
	}
	sort.Float64s(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
