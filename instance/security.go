package instance

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
)

// droppedCaps are the capabilities the caps profile removes from ALL. CAP_SYS_RESOURCE first: some hosts' bounding
// sets lack it, and a node never needs it. The rest are powers over the host that no lab exercise uses.
var droppedCaps = []string{
	"SYS_RESOURCE", "SYS_MODULE", "SYS_BOOT", "SYS_TIME", "SYS_RAWIO", "SYSLOG", "MAC_ADMIN", "MAC_OVERRIDE",
	"WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_CONTROL",
}

// nodeDeviceRules let a node create device nodes but use only the character devices an engine and its containers
// need: mem (null, zero, random...), ttys and ptys, tun and fuse. No block device is usable, so no host disk can be
// mounted from a node (--privileged would allow exactly that).
var nodeDeviceRules = []string{
	"c *:* m", "b *:* m",
	"c 1:* rwm", "c 4:* rwm", "c 5:* rwm", "c 136:* rwm",
	"c 10:200 rwm", "c 10:229 rwm",
}

// applySecurity sets the parts of hc that make a Docker-in-Docker node work under the given profile. Nodes never
// get the host's Docker socket, network, PID namespace or paths: nothing here or in createNode asks for them.
func applySecurity(hc *container.HostConfig, profile Security) {
	switch profile {
	case SecurityPrivileged:
		hc.Privileged = true
	default:
		hc.CapAdd = []string{"ALL"}
		hc.CapDrop = droppedCaps
		hc.SecurityOpt = []string{"seccomp=unconfined", "apparmor=unconfined"}
		// Empty, not nil: the API form of systempaths=unconfined. The inner engine writes /proc/sys/net/*.
		hc.MaskedPaths = []string{}
		hc.ReadonlyPaths = []string{}
		hc.DeviceCgroupRules = nodeDeviceRules
	}
}

// Features is what the kernel offers nodes, as found by the probe.
type Features map[string]bool

// requiredFeatures are what a node's engine cannot work without; the others only limit some exercises.
var requiredFeatures = []string{"bridge", "veth", "iptables-nat", "overlayfs"}

// featureNotes say what a missing optional feature costs learners.
var featureNotes = map[string]string{
	"vxlan": "inner swarm overlay networks will not work",
	"ipvs":  "the swarm routing mesh and VIP load balancing will not work inside labs (use --endpoint-mode dnsrr)",
	"netem": "tc netem (latency, loss, jitter emulation) will not work inside labs",
}

// probeScript runs in a throwaway node container with no network: each line says name=yes or name=no.
const probeScript = `
check() { n=$1; shift; if "$@" >/dev/null 2>&1; then echo "$n=yes"; else echo "$n=no"; fi; }
check bridge ip link add sandlot-br type bridge
check veth ip link add sandlot-v0 type veth peer name sandlot-v1
check vxlan ip link add sandlot-vx type vxlan id 42 dstport 4789 dev lo
check overlayfs grep -qw overlay /proc/filesystems
check iptables-nat iptables -t nat -S
check ipvs test -e /proc/net/ip_vs
check netem tc qdisc add dev lo root netem delay 1ms
echo probe=done
`

// parseFeatures reads the probe's output. It fails unless the probe ran to its end.
func parseFeatures(out string) (Features, error) {
	f := Features{}
	done := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		name, value, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		switch {
		case !ok:
			continue
		case name == "probe":
			done = value == "done"
		default:
			f[name] = value == "yes"
		}
	}
	if !done {
		return nil, fmt.Errorf("kernel probe did not finish; it printed %q", out)
	}
	return f, nil
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

// probe finds the security profile the engine runs (auto tries caps first: it is the safer one) and what the
// kernel offers, by running one throwaway node container.
func (d *Driver) probe(ctx context.Context) error {
	candidates := []Security{d.cfg.Security}
	if d.cfg.Security == SecurityAuto {
		candidates = []Security{SecurityCaps, SecurityPrivileged}
	}
	var failures []string
	for _, profile := range candidates {
		out, err := d.runProbe(ctx, profile)
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", profile, err))
			continue
		}
		features, err := parseFeatures(out)
		if err != nil {
			return err
		}
		notes, err := features.Check()
		if err != nil {
			return err
		}
		for _, n := range notes {
			d.log.Warn(n)
		}
		if len(failures) > 0 {
			d.log.Warn("node security profile fell back", "chosen", profile, "because", strings.Join(failures, "; "))
		} else {
			d.log.Info("node security profile", "chosen", profile, "asked", d.cfg.Security)
		}
		d.security, d.features = profile, features
		return nil
	}
	return fmt.Errorf("the engine runs no node security profile: %s", strings.Join(failures, "; "))
}

func (d *Driver) runProbe(ctx context.Context, profile Security) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hc := &container.HostConfig{NetworkMode: "none"}
	applySecurity(hc, profile)
	return d.runHelper(ctx, "probe", []string{"/bin/sh", "-c", probeScript}, hc)
}
