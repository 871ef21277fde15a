package instance

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// droppedCaps are the capabilities nodes never get (of the ALL they otherwise have). CAP_SYS_RESOURCE first: some
// hosts' bounding sets lack it, and a node never needs it. CAP_DAC_READ_SEARCH opens any file of the host's
// filesystems by handle (open_by_handle_at); the rest are powers over the host that no lab exercise uses.
var droppedCaps = []string{
	"SYS_RESOURCE", "DAC_READ_SEARCH", "SYS_MODULE", "SYS_BOOT", "SYS_TIME", "SYS_RAWIO", "SYSLOG", "MAC_ADMIN",
	"MAC_OVERRIDE", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_CONTROL",
}

// nodeDeviceRules let a node create device nodes but use only the character devices an engine and its containers
// need: mem (null, zero, random...), ttys and ptys, tun and fuse. No block device, console or kmsg is usable.
// (In a user namespace the kernel refuses mknod anyway, and the devices cgroup cannot be written.)
var nodeDeviceRules = []string{
	"c *:* m", "b *:* m",
	"c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", // null, zero, full, random, urandom
	"c 5:0 rwm", "c 5:2 rwm", "c 136:* rwm", // tty, ptmx, ptys
	"c 10:200 rwm", "c 10:229 rwm", // tun, fuse
}

// applyIsolation sets the parts of hc that make a Docker-in-Docker node work under the given isolation. Nodes
// never get the host's Docker socket, network, PID namespace or paths: nothing here or in nodeConfig asks for them.
// The user namespace of IsolationUserns is the engine's (--userns-remap): the container asks for nothing more.
func applyIsolation(hc *container.HostConfig, iso Isolation, seccompProfile string) {
	if iso == IsolationPrivileged {
		hc.Privileged = true
		return
	}
	hc.CapAdd = []string{"ALL"}
	hc.CapDrop = droppedCaps
	hc.SecurityOpt = []string{"seccomp=" + seccompProfile, "apparmor=unconfined"}
	// Empty, not nil: the API form of systempaths=unconfined. The inner engine writes /proc/sys/net/*; in a user
	// namespace the host-wide files there belong to the host's root, so the node cannot write them.
	hc.MaskedPaths = []string{}
	hc.ReadonlyPaths = []string{}
	hc.DeviceCgroupRules = nodeDeviceRules
}

// Syscall arguments the node's seccomp profile looks at.
const (
	cloneNewUser = 0x10000000 // CLONE_NEWUSER
	enosys       = 38
)

// nodeSeccomp is the seccomp profile of nodes: Docker's default (which the engine narrows by the node's
// capabilities), with what an inner engine needs and without what it does not:
//   - no new user namespaces (clone and unshare without CLONE_NEWUSER; clone3, whose flags a filter cannot read,
//     says ENOSYS so that the C library falls back to clone): a nested user namespace gives namespaced
//     CAP_SYS_ADMIN over even more kernel code, and no lab needs one;
//   - no bpf and no perf_event_open, even with CAP_SYS_ADMIN: kernel programs and system-wide tracing;
//   - the kernel keyring, which is not namespaced, answers ENOSYS, which the inner runc takes for "no keyrings
//     here" (EPERM would stop it from starting containers);
//   - pivot_root, which the inner runc needs to enter a container's root (Docker's default leaves it out).
func nodeSeccomp() (string, error) {
	p := seccomp.DefaultProfile()
	banned := []string{"bpf", "perf_event_open", "clone", "clone3", "unshare"}
	var kept []*seccomp.Syscall
	for _, s := range p.Syscalls {
		s.Names = slices.DeleteFunc(s.Names, func(n string) bool { return slices.Contains(banned, n) })
		if len(s.Names) > 0 {
			kept = append(kept, s)
		}
	}
	noNewUser := func(index uint) []specs.LinuxSeccompArg {
		return []specs.LinuxSeccompArg{{Index: index, Value: cloneNewUser, ValueTwo: 0, Op: specs.OpMaskedEqual}}
	}
	s390 := []string{"s390", "s390x"}
	errno := uint(enosys)
	kept = append(kept,
		&seccomp.Syscall{LinuxSyscall: specs.LinuxSyscall{Names: []string{"clone", "unshare"},
			Action: specs.ActAllow, Args: noNewUser(0)}, Excludes: &seccomp.Filter{Arches: s390}},
		&seccomp.Syscall{LinuxSyscall: specs.LinuxSyscall{Names: []string{"clone"},
			Action: specs.ActAllow, Args: noNewUser(1)}, Includes: &seccomp.Filter{Arches: s390}},
		&seccomp.Syscall{LinuxSyscall: specs.LinuxSyscall{Names: []string{"unshare"},
			Action: specs.ActAllow, Args: noNewUser(0)}, Includes: &seccomp.Filter{Arches: s390}},
		&seccomp.Syscall{LinuxSyscall: specs.LinuxSyscall{Names: []string{"clone3", "keyctl", "add_key", "request_key"},
			Action: specs.ActErrno, ErrnoRet: &errno}},
		&seccomp.Syscall{LinuxSyscall: specs.LinuxSyscall{Names: []string{"pivot_root"}, Action: specs.ActAllow},
			Includes: &seccomp.Filter{Caps: []string{"CAP_SYS_ADMIN"}}},
	)
	p.Syscalls = kept
	data, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("node seccomp profile: %w", err)
	}
	return string(data), nil
}

// Features is what the kernel offers nodes, as found by the probe.
type Features map[string]bool

// requiredFeatures are what a node's engine cannot work without; the others only limit some exercises.
var requiredFeatures = []string{"bridge", "veth", "iptables-nat", "overlayfs"}

// featureNotes say what a missing optional feature costs learners.
var featureNotes = map[string]string{
	"vxlan":            "inner swarm overlay networks will not work",
	"ipvs":             "the swarm routing mesh and VIP load balancing will not work inside labs (use --endpoint-mode dnsrr)",
	"netem":            "tc netem (latency, jitter, duplication, corruption) will not work inside labs, nor as network faults",
	"htb":              "rates between nodes (network faults) will not work",
	"iptables-physdev": "losses and partitions between nodes (network faults) will not work",
}

// probeScript runs in a throwaway node container with no network: each line says name=value.
const probeScript = `
check() { n=$1; shift; if "$@" >/dev/null 2>&1; then echo "$n=yes"; else echo "$n=no"; fi; }
check bridge ip link add sandlot-br type bridge
check veth ip link add sandlot-v0 type veth peer name sandlot-v1
check vxlan ip link add sandlot-vx type vxlan id 42 dstport 4789 dev lo
check overlayfs grep -qw overlay /proc/filesystems
check iptables-nat iptables -t nat -S
check ipvs test -e /proc/net/ip_vs
check netem tc qdisc add dev lo root netem delay 1ms
check htb tc qdisc add dev sandlot-v0 root handle 1: htb
check iptables-statistic iptables -A OUTPUT -m statistic --mode random --probability 0.5 -j ACCEPT
check iptables-physdev iptables -A FORWARD -m physdev --physdev-in sandlot-v0 -j ACCEPT
check iptables-classify iptables -t mangle -A FORWARD -j CLASSIFY --set-class 1:2
read -r inside outside _ </proc/self/uid_map
echo "userns-root=$outside"
echo "cgroups-own=$(stat -c %u /sys/fs/cgroup/pids 2>/dev/null)"
echo "disk-bytes=$(( $(stat -f -c '%b * %S' /) ))"
echo "store-bytes=$(( $(stat -f -c '%b * %S' /var/lib/docker) ))"
echo probe=done
`

// probe is what the probe container found.
type probe struct {
	features   Features
	usernsRoot int   // the host uid of the container's root (0: no user namespace)
	cgroupsOwn bool  // the container's root owns its cgroup directories (handed over by sandlot-runtime)
	disk       int64 // the size of the container's root filesystem
	store      int64 // ... and of its /var/lib/docker
}

// parseProbe reads the probe's output. It fails unless the probe ran to its end.
func parseProbe(out string) (probe, error) {
	p := probe{features: Features{}}
	done := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		name, value, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		switch {
		case !ok:
			continue
		case name == "probe":
			done = value == "done"
		case name == "userns-root":
			p.usernsRoot, _ = strconv.Atoi(value)
		case name == "cgroups-own":
			p.cgroupsOwn = value == "0"
		case name == "disk-bytes":
			p.disk, _ = strconv.ParseInt(value, 10, 64)
		case name == "store-bytes":
			p.store, _ = strconv.ParseInt(value, 10, 64)
		default:
			p.features[name] = value == "yes"
		}
	}
	if !done {
		return p, fmt.Errorf("kernel probe did not finish; it printed %q", out)
	}
	return p, nil
}

// Check returns an error naming the required features that are missing, and notes on the optional ones.
func (f Features) Check() (notes []string, err error) {
	var missing []string
	for _, name := range requiredFeatures {
		if !f[name] {
			missing = append(missing, name)
		}
	}
	for name, note := range featureNotes {
		if !f[name] {
			notes = append(notes, fmt.Sprintf("kernel lacks %s: %s", name, note))
		}
	}
	if len(missing) > 0 {
		return notes, fmt.Errorf("%w: the host kernel lacks %s, which nodes need", ErrKernelFeature,
			strings.Join(missing, ", "))
	}
	return notes, nil
}

// probeDisk is the disk the probe asks for: small, so that making it costs the start-up a few ms.
const probeDisk = 64 << 20

// chooseIsolation decides how nodes are isolated on this engine and checks, with one throwaway node container,
// that it works: the engine runs the profile, the kernel has what nodes need, a user-namespaced node owns its
// cgroups, and a node's disk has the size asked for. remapped says the engine runs --userns-remap; nodeDisks says
// its default runtime makes node disks (sandlot-runtime).
func (d *Driver) chooseIsolation(ctx context.Context, remapped, nodeDisks bool) error {
	engine := d.docker.DaemonHost()
	iso := d.cfg.Isolation
	switch {
	case iso == IsolationAuto && !remapped:
		return fmt.Errorf("%w: the engine at %s does not run user namespaces, which nodes for strangers need: "+
			"start the node engine (`sudo ops/node-engine start`, which `make run` does) and use it, or choose "+
			"--isolation caps for a trusted install (learners can become root on the host)", ErrIsolation, engine)
	case iso == IsolationAuto:
		iso = IsolationUserns
	case iso == IsolationUserns && !remapped:
		return fmt.Errorf("%w: --isolation userns needs an engine started with --userns-remap (the node engine: "+
			"`sudo ops/node-engine start`); the engine at %s has none", ErrIsolation, engine)
	case iso != IsolationUserns && remapped:
		return fmt.Errorf("%w: --isolation %s needs an engine without --userns-remap (the engine at %s remaps "+
			"users, and files of its images would not belong to the node's root); use --engine "+
			"unix:///var/run/docker.sock", ErrIsolation, iso, engine)
	}
	p, err := d.runProbe(ctx, iso, nodeDisks)
	if err != nil {
		return fmt.Errorf("%w: the engine at %s cannot run nodes with %s isolation: %v", ErrIsolation, engine, iso, err)
	}
	notes, err := p.features.Check()
	if err != nil {
		return err
	}
	for _, n := range notes {
		d.log.Warn(n)
	}
	if iso == IsolationUserns {
		switch {
		case p.usernsRoot == 0:
			return fmt.Errorf("%w: a node on %s still runs as the host's root", ErrIsolation, engine)
		case !p.cgroupsOwn:
			return fmt.Errorf("%w: a node on %s does not own its cgroups, so its engine cannot start containers: "+
				"the engine must run sandlot-runtime (ops/node-engine sets it up)", ErrIsolation, engine)
		}
	}
	if nodeDisks && (p.disk <= 0 || p.disk > probeDisk || p.store != p.disk) {
		return fmt.Errorf("%w: the engine at %s was to give a node a disk of %d bytes; the node saw %d (root) and "+
			"%d (/var/lib/docker)", ErrIsolation, engine, probeDisk, p.disk, p.store)
	}
	d.isolation, d.features, d.nodeDisks = iso, p.features, nodeDisks
	return nil
}

func (d *Driver) runProbe(ctx context.Context, iso Isolation, nodeDisks bool) (probe, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hc := &container.HostConfig{NetworkMode: "none"}
	applyIsolation(hc, iso, d.seccomp)
	var env []string
	if nodeDisks {
		env = []string{diskEnv + "=" + strconv.Itoa(probeDisk)}
		hc.Mounts = []mount.Mount{{Type: mount.TypeVolume, Target: "/var/lib/docker",
			VolumeOptions: &mount.VolumeOptions{Labels: d.labels(systemSession, "probe")}}}
	}
	out, err := d.runHelper(ctx, "probe", []string{"/bin/sh", "-c", probeScript}, env, hc)
	if err != nil {
		return probe{}, err
	}
	return parseProbe(out)
}

// diskEnv asks sandlot-runtime for a node disk of that many bytes (internal/noderuntime).
const diskEnv = "SANDLOT_DISK_BYTES"

// IsolationWarning is the one sentence an operator must read about an isolation, or "" for userns.
func IsolationWarning(iso Isolation) string {
	switch iso {
	case IsolationCaps, IsolationPrivileged:
		return fmt.Sprintf("nodes run with %s isolation, for trusted installs only: a learner can become root "+
			"on the host", iso)
	}
	return ""
}
