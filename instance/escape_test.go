package instance

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The escape probes: each tries, from inside a node as its root, the precondition of one known way out of a
// container (never the escape itself: it writes back the value it read, unmounts what it mounted) and prints one
// verdict line: "blocked: why" or "open: what it could do". A probe that prints neither is broken, and fails
// the test as surely as an open one: a probe that cannot fail proves nothing.
var escapeProbes = []struct{ name, script string }{
	// 1. CAP_DAC_READ_SEARCH without seccomp: a file handle for inode 2 (the root of an ext4 filesystem) on the
	// filesystem of a host file bound into the node opens the host's root directory ("shocker").
	{"open_by_handle_at on the host's filesystem", `python3 - <<'PY'
import ctypes, errno, os, struct
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open("/etc/hostname", os.O_RDONLY)
handle = ctypes.create_string_buffer(struct.pack("Ii", 8, 1) + struct.pack("II", 2, 0))
r = libc.open_by_handle_at(fd, handle, os.O_RDONLY | os.O_DIRECTORY)
e = ctypes.get_errno()
if r >= 0:
    print("open: opened inode", os.fstat(r).st_ino, "of the filesystem of /etc/hostname")
elif e in (errno.EPERM, errno.EACCES, errno.ENOSYS):
    print("blocked:", os.strerror(e))
else:
    print("unexpected:", os.strerror(e))
PY`},
	// 2. A cgroup v1 hierarchy mounted from inside shows the host's root cgroup, and its release_agent runs as the
	// host's root.
	{"mount a cgroup hierarchy, write release_agent", `mkdir -p /tmp/cg
for c in rdma memory pids; do
	if mount -t cgroup -o "$c" cgroup /tmp/cg 2>/tmp/cg.err; then
		v=$(cat /tmp/cg/release_agent 2>/dev/null)
		if printf '%s\n' "$v" >/tmp/cg/release_agent 2>/dev/null; then what="and wrote its release_agent"; fi
		umount /tmp/cg; echo "open: mounted the $c hierarchy ${what:-}"; exit
	fi
done
echo "blocked: $(head -n1 /tmp/cg.err)"`},
	// 3. Host-wide sysctls (not namespaced): writing back the value read is the precondition of changing it.
	{"write host-wide sysctls", `open=
for k in kernel/core_pattern kernel/panic kernel/randomize_va_space kernel/kptr_restrict kernel/modprobe \
	vm/swappiness vm/overcommit_memory vm/drop_caches kernel/sysrq fs/protected_symlinks; do
	f=/proc/sys/$k; v=$(cat "$f" 2>/dev/null) || continue
	[ "$k" = vm/drop_caches ] && v=1
	if printf '%s\n' "$v" >"$f" 2>/dev/null; then open="$open $k"; fi
done
if [ -n "$open" ]; then echo "open: wrote$open"; else echo "blocked: none of the host-wide sysctls is writable"; fi`},
	// 4. The node's own devices cgroup: writable, it lifts the device allowlist (and so opens block devices).
	{"write the devices cgroup", `open=
for f in /sys/fs/cgroup/devices/devices.allow; do
	[ -e "$f" ] && echo 'c 1:3 rwm' >"$f" 2>/dev/null && open="$open $f"
done
if mkdir /sys/fs/cgroup/devices/sandlot-probe 2>/dev/null; then
	echo a >/sys/fs/cgroup/devices/sandlot-probe/devices.allow 2>/dev/null && open="$open a child's devices.allow"
	rmdir /sys/fs/cgroup/devices/sandlot-probe
fi
if [ -n "$open" ]; then echo "open: wrote$open"; else echo "blocked: devices.allow is not writable"; fi`},
	// 4b. Device nodes for the host's disks and consoles.
	{"make and open host devices", `open=
for dev in "b 7 0 loop0" "b 253 0 vda" "b 8 0 sda" "c 4 64 ttyS0" "c 4 1 tty1" "c 5 1 console" "c 1 11 kmsg"; do
	set -- $dev
	rm -f /tmp/dev-$4
	if mknod /tmp/dev-$4 $1 $2 $3 2>/dev/null && { head -c1 /tmp/dev-$4 >/dev/null 2>&1 || : >/tmp/dev-$4 2>/dev/null; }; then
		open="$open $4"
	fi
	rm -f /tmp/dev-$4
done
for f in /dev/kmsg /dev/console /dev/ttyS0 /dev/tty1 /dev/mem /dev/kmem /dev/port; do
	[ -e "$f" ] && { head -c1 "$f" >/dev/null 2>&1 || : >"$f" 2>/dev/null; } && open="$open $f"
done
if [ -n "$open" ]; then echo "open: opened$open"; else echo "blocked: no host disk, console or kmsg device opens"; fi`},
	// 6. /sys read-write: THP, block queues, module parameters.
	{"write /sys", `mount -o remount,rw /sys 2>/dev/null && remounted=" (after remounting /sys read-write)"
open=
f=/sys/kernel/mm/transparent_hugepage/enabled
v=$(sed -n 's/.*\[\(.*\)\].*/\1/p' "$f" 2>/dev/null)
[ -n "$v" ] && echo "$v" >"$f" 2>/dev/null && open="$open $f"
for f in /sys/block/*/queue/read_ahead_kb /sys/module/*/parameters/*; do
	[ -f "$f" ] && [ -w "$f" ] || continue
	v=$(cat "$f" 2>/dev/null) && printf '%s\n' "$v" >"$f" 2>/dev/null && { open="$open $f"; break; }
done
[ -n "${remounted:-}" ] && mount -o remount,ro /sys 2>/dev/null
if [ -n "$open" ]; then echo "open: wrote$open${remounted:-}"; else echo "blocked: no host setting under /sys is writable${remounted:-}"; fi`},
	// binfmt_misc does mount in a user namespace (since Linux 6.7), but as an instance of that namespace's own:
	// TestBinfmtMiscIsTheNodesOwn shows a handler registered there is not the host's.
	{"mount tracefs, debugfs, securityfs", `mkdir -p /tmp/k; open=
for fs in tracefs debugfs securityfs; do
	if mount -t $fs none /tmp/k 2>/dev/null; then open="$open $fs"; umount /tmp/k; fi
done
if [ -n "$open" ]; then echo "open: mounted$open"; else echo "blocked: none of them mounts"; fi`},
	{"bpf, perf_event_open system-wide", `python3 - <<'PY'
import ctypes, errno, os, struct
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
open_ = []
attr = ctypes.create_string_buffer(struct.pack("IIII", 1, 4, 4, 1) + bytes(112))  # BPF_MAP_TYPE_HASH
if libc.syscall(321, 0, attr, len(attr)) >= 0: open_.append("bpf map")   # bpf(BPF_MAP_CREATE)
pattr = ctypes.create_string_buffer(struct.pack("IIQ", 1, 128, 0) + bytes(112))  # software cpu-clock
if libc.syscall(298, pattr, -1, 0, -1, 0) >= 0: open_.append("perf event on all of CPU 0")
print("open: " + ", ".join(open_) if open_ else "blocked: " + os.strerror(ctypes.get_errno()))
PY`},
	{"the host's keyrings", `python3 - <<'PY'
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
r = libc.syscall(250, 0, -4, 0)  # keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING)
print("open: root's user keyring is", r) if r >= 0 else print("blocked:", os.strerror(ctypes.get_errno()))
PY`},
	{"a user namespace of its own (unshare -Ur)", `if out=$(unshare -Ur id -u 2>&1); then echo "open: unshare -Ur gave uid $out";
else echo "blocked: $out"; fi`},
}

// labNeeds are what lab exercises do as root in a node: namespaced settings that must keep working.
var labNeeds = []struct{ name, script string }{
	{"net.* sysctls", `sysctl -w net.ipv4.ip_forward=1 && sysctl -w net.ipv4.conf.all.rp_filter=0`},
	{"iptables", `iptables -A INPUT -p tcp --dport 9999 -j DROP && iptables -D INPUT -p tcp --dport 9999 -j DROP &&
iptables -t nat -S >/dev/null`},
	{"ip link", `ip link add sl-probe type bridge && ip link set sl-probe up && ip link del sl-probe &&
ip link add v0 type veth peer name v1 && ip link del v0`},
	{"tc", `tc qdisc add dev lo root tbf rate 1mbit burst 32kbit latency 400ms && tc qdisc del dev lo root`},
	{"inner docker run", `docker run --rm busybox echo ok | grep -qx ok &&
docker run --rm --cap-add NET_ADMIN busybox ip link add b0 type bridge`},
	{"inner docker build", `mkdir -p /tmp/b && printf 'FROM busybox\nRUN echo built >/built\n' >/tmp/b/Dockerfile &&
docker build -q -t probe-built /tmp/b >/dev/null && docker run --rm probe-built cat /built | grep -qx built`},
	{"mount inside the node", `mkdir -p /tmp/m && mount -t tmpfs none /tmp/m && umount /tmp/m`},
}

// In the userns isolation every escape probe is blocked, and what labs need as root in a node still works.
func TestEscapesBlocked(t *testing.T) {
	d := newDriver(t, NetworkBridge, nil)
	if d.Isolation() != IsolationUserns {
		t.Skipf("nodes run with %s isolation; the escape probes are for userns", d.Isolation())
	}
	session, _ := newSession(t, d)
	createNodes(t, d, session, 1)
	for _, p := range escapeProbes {
		t.Run(p.name, func(t *testing.T) {
			r, err := d.Exec(testContext(t), session, "node1", []string{"bash", "-c", p.script}, ExecOptions{})
			if err != nil {
				t.Fatal(err)
			}
			out := string(r.Stdout) + string(r.Stderr)
			verdict := lastLine(string(r.Stdout))
			switch {
			case strings.HasPrefix(verdict, "blocked:"):
				t.Log(verdict)
			case strings.HasPrefix(verdict, "open:"):
				t.Errorf("a node can %s", verdict)
			default:
				t.Errorf("the probe gave no verdict: %q", out)
			}
		})
	}
	for _, n := range labNeeds {
		t.Run("lab needs "+n.name, func(t *testing.T) {
			if code, out := exitCode(t, d, session, "node1", n.script); code != 0 {
				t.Errorf("%s does not work in a node: exit %d: %s", n.name, code, out)
			}
		})
	}
}

// binfmt_misc mounts in a node's user namespace, as that namespace's own instance: a handler registered there is
// not in the host's, so the host never runs an interpreter a node chose.
func TestBinfmtMiscIsTheNodesOwn(t *testing.T) {
	d := newDriver(t, NetworkBridge, nil)
	if d.Isolation() != IsolationUserns {
		t.Skipf("nodes run with %s isolation; this is for userns", d.Isolation())
	}
	session, _ := newSession(t, d)
	createNodes(t, d, session, 1)
	code, out := exitCode(t, d, session, "node1", `mkdir -p /tmp/bf && mount -t binfmt_misc none /tmp/bf &&
echo ':sandlotprobe:E::slprobe::/bin/true:' > /tmp/bf/register && test -e /tmp/bf/sandlotprobe && echo registered`)
	if code != 0 {
		t.Logf("binfmt_misc does not mount in a node, or takes no handler: %s", out)
		return
	}
	defer sh(t, d, session, "node1", "echo -1 > /tmp/bf/sandlotprobe; umount /tmp/bf")
	host := t.TempDir()
	if err := syscall.Mount("none", host, "binfmt_misc", 0, ""); err != nil {
		t.Fatalf("mount the host's binfmt_misc: %v", err)
	}
	defer syscall.Unmount(host, 0)
	if _, err := os.Stat(filepath.Join(host, "sandlotprobe")); err == nil {
		t.Fatal("a handler a node registered is the host's")
	}
}

// A node can neither raise its own limits nor see or touch another node's cgroups, nor leave its own; what its
// engine makes under it stays under its limits.
func TestCgroupConfinement(t *testing.T) {
	d := newDriver(t, NetworkBridge, nil)
	if d.Isolation() != IsolationUserns {
		t.Skipf("nodes run with %s isolation; this is for userns", d.Isolation())
	}
	session, _ := newSession(t, d)
	other, _ := newSession(t, d)
	nodes := createNodes(t, d, session, 1)
	victims := createNodes(t, d, other, 1)

	// Its own limits: the files are the host's root's, so writing even the same value back fails.
	for _, f := range []string{"memory/memory.limit_in_bytes", "memory/memory.memsw.limit_in_bytes", "pids/pids.max",
		"cpu/cpu.cfs_quota_us", "cpu/cpu.shares", "cpuset/cpuset.cpus", "freezer/freezer.state"} {
		path := "/sys/fs/cgroup/" + f
		code, out := exitCode(t, d, session, "node1", fmt.Sprintf(`[ -e %[1]s ] || { echo missing; exit 0; }
v=$(cat %[1]s) && printf '%%s\n' "$v" > %[1]s && echo wrote`, path))
		if strings.Contains(out, "wrote") || (code == 0 && !strings.Contains(out, "missing")) {
			t.Errorf("node1 writes its own %s: %s", f, out)
		}
	}
	// What it can make: a child cgroup of its own, whose limit it sets, under its limits.
	sh(t, d, session, "node1", `mkdir /sys/fs/cgroup/pids/probe && echo 50 > /sys/fs/cgroup/pids/probe/pids.max &&
echo $$ > /sys/fs/cgroup/pids/probe/cgroup.procs && grep -q ':pids:.*/probe$' /proc/self/cgroup`)

	// Nothing of another node is in sight: no directory named for its container anywhere under /sys/fs/cgroup,
	// and its files cannot be reached through ".." either.
	victim := victims[0].ContainerID
	if out := sh(t, d, session, "node1", "find /sys/fs/cgroup -name '*"+victim[:12]+"*' 2>/dev/null | head -3"); out != "" {
		t.Errorf("node1 sees another session's node's cgroups: %s", out)
	}
	if out := sh(t, d, session, "node1", "ls /sys/fs/cgroup/memory/.. /sys/fs/cgroup/memory/../.. 2>&1 | sort -u | tr '\\n' ' '"); strings.Contains(out, victim[:12]) {
		t.Errorf("node1 reaches above its own cgroup: %s", out)
	}
	victimMem := cgroupFiles(t, victim, "memory")
	before := readInt(t, victimMem, "memory.limit_in_bytes", "memory.max")

	// Leaving its cgroup: the node's root cgroup.procs and the host's are not its to write; a process it tries to
	// move stays where it was, under the node's cgroup, as the host sees it.
	marker := fmt.Sprintf("300.%d", time.Now().UnixNano()%1000000)
	sh(t, d, session, "node1", `sleep `+marker+` & p=$!
for f in /sys/fs/cgroup/memory/cgroup.procs /sys/fs/cgroup/memory/../cgroup.procs /proc/1/root/sys/fs/cgroup/memory/cgroup.procs; do
	echo $p > $f 2>/dev/null
done; true`)
	hostPid := hostPidByCmdline(t, "sleep\x00"+marker+"\x00")
	own := cgroupFiles(t, nodes[0].ContainerID, "memory").path
	if got := "/sys/fs/cgroup/memory" + procCgroup(t, hostPid, "memory"); !strings.HasPrefix(got, own) {
		t.Errorf("a node's process left its memory cgroup: it is in %s, the node's is %s", got, own)
	}
	if after := readInt(t, victimMem, "memory.limit_in_bytes", "memory.max"); after != before {
		t.Errorf("another node's memory limit changed from %d to %d", before, after)
	}
}

// A node cannot reach the host over IPv6 either: not after its root turns IPv6 on in its own network namespace,
// not on the host's link-local addresses, not on any other.
func TestNoIPv6ToHost(t *testing.T) {
	ln, err := net.Listen("tcp6", "[::]:0")
	if err != nil {
		t.Skipf("the host has no IPv6: %v", err)
	}
	defer ln.Close()
	go acceptAndClose(ln)
	port := ln.Addr().(*net.TCPAddr).Port
	d := newDriver(t, NetworkBridge, nil)
	session, _ := newSession(t, d)
	createNodes(t, d, session, 1)
	sh(t, d, session, "node1", "sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0 "+
		"net.ipv6.conf.eth0.disable_ipv6=0 && ip -6 addr add fd53:5d::11/64 dev eth0 && sleep 2 && ip -6 addr show dev eth0")
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	tried := 0
	for _, iface := range ifaces {
		addrs, _ := iface.Addrs()
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.To4() != nil || ipn.IP.IsLoopback() {
				continue
			}
			target := ipn.IP.String()
			if ipn.IP.IsLinkLocalUnicast() {
				target += "%eth0" // from the node, the only link it has
			}
			tried++
			if code, out := exitCode(t, d, session, "node1", fmt.Sprintf("nc -6 -z -w2 '%s' %d", target, port)); code == 0 {
				t.Errorf("node1 connects to the host at [%s]:%d (%s): %s", ipn.IP, port, iface.Name, out)
			}
		}
	}
	t.Logf("tried %d IPv6 addresses of the host", tried)
}

// Writing past a node's disk is ENOSPC, in /var/lib/docker and in /root alike (one disk takes both), and the
// host's free space falls by at most the disk's size.
func TestDiskLimit(t *testing.T) {
	const disk = 256 << 20
	d := newDriver(t, NetworkBridge, func(c *Config) { c.Disk = disk })
	if !d.nodeDisks {
		t.Skipf("the engine's runtime makes no node disks (%s)", d.DiskMechanism())
	}
	session, _ := newSession(t, d)
	createNodes(t, d, session, 1)
	info, err := d.docker.Info(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	freeBefore := freeBytes(t, info.DockerRootDir)
	if got := sh(t, d, session, "node1", "df -B1 --output=size / | tail -1"); got == "" || mustAtoi(t, got) > disk {
		t.Errorf("df in the node says / has %s bytes, more than its disk of %d", got, disk)
	}
	for _, dir := range []string{"/var/lib/docker", "/root"} {
		_, out := exitCode(t, d, session, "node1", "dd if=/dev/zero of="+dir+"/fill bs=1M count=400 2>&1 | head -1")
		if !strings.Contains(out, "No space left on device") {
			t.Errorf("writing 400 MiB into %s of a %d MiB disk: %q, want ENOSPC", dir, disk>>20, out)
		}
		if dir == "/var/lib/docker" {
			freeFull := freeBytes(t, info.DockerRootDir)
			if fell := freeBefore - freeFull; fell > disk+16<<20 {
				t.Errorf("the host's free space fell by %d MiB for a disk of %d MiB", fell>>20, disk>>20)
			}
		}
		sh(t, d, session, "node1", "rm -f "+dir+"/fill; sync")
	}
	// The node's engine still works after its disk was full.
	sh(t, d, session, "node1", "docker run --rm busybox true")
}

func freeBytes(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func acceptAndClose(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// hostPidByCmdline finds the host process whose /proc/PID/cmdline is exactly cmdline.
func hostPidByCmdline(t *testing.T, cmdline string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		dirs, _ := os.ReadDir("/proc")
		for _, e := range dirs {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && string(b) == cmdline {
				return pid
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no host process runs %q", cmdline)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// procCgroup is the cgroup of a host process in one controller's hierarchy (v1), or its v2 cgroup.
func procCgroup(t *testing.T, pid int, controller string) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	unified := ""
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		switch {
		case len(parts) != 3:
		case slices.Contains(strings.Split(parts[1], ","), controller):
			return parts[2]
		case parts[0] == "0" && parts[1] == "":
			unified = parts[2]
		}
	}
	if unified != "" {
		return unified
	}
	t.Fatalf("pid %d has no %s cgroup: %s", pid, controller, data)
	return ""
}

func mustAtoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
