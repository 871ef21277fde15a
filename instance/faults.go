package instance

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Network faults between the nodes of a session are applied on the host side of every node's link, in the network
// namespace of the engine that holds the session's bridge (the host's for the local engine, sandlot-engine for the
// node engine), where root in a node can neither see nor change them:
//
//   - a partition or a loss is a DROP rule (with iptables' statistic match for a loss) in the session's own chain
//     of the filter table, matching the bridge ports the packets come in on and go out on (iptables' physdev
//     match, through bridge netfilter), never addresses, which a node's root may change;
//   - a rate (and, where the kernel has sch_netem, a latency, jitter, duplication or corruption) is an HTB class,
//     with a netem leaf when needed, on the receiving node's port, and a CLASSIFY rule in the session's chain of the
//     mangle table puts the sender's packets into it. Unclassified packets pass HTB's direct queue, untouched.
//
// The session's chains are named SLNF-<hash of the session id> and jumped to from SANDLOT-FAULTS (which is jumped
// to first from DOCKER-USER, or FORWARD, and from mangle's FORWARD) for the packets bridged on the session's
// bridge only, so that another session's packets pass one interface comparison per faulted session. Each chain ends with rules that match nothing
// but carry, as comments, the session id and owner (so that the garbage collector can tell whose they are) and the
// caller's note (the fault document, so that any Sandlot process reads back what is in place). A chain is
// replaced in one iptables-restore: the picture is applied whole or, if the engine fails midway, cleared.
//
// The rules run in a long-lived helper container (role "netfault") of the node image on the engine's host network,
// with the host's PID namespace, so that a node's link can be found from the kernel (the node's interface whose
// peer is a port of the session's bridge) without asking anything inside the node.
const (
	faultRoot   = "SANDLOT-FAULTS"
	faultHandle = 0x5d // the HTB qdisc's handle on a node's port
)

// LinkFault is what happens, on the host side, to the packets one node of a session sends to another.
type LinkFault struct {
	From, To  string        // node names
	Drop      bool          // every packet is dropped (a partition)
	Loss      float64       // fraction of packets dropped, 0 to 1
	Rate      uint64        // bits per second; 0: not limited
	Latency   time.Duration // needs sch_netem
	Jitter    time.Duration // needs sch_netem, and a latency
	Duplicate float64       // fraction duplicated; needs sch_netem
	Corrupt   float64       // fraction corrupted; needs sch_netem
}

// shaped says whether the fault needs a class on the receiving node's port.
func (f LinkFault) shaped() bool { return f.Rate > 0 || f.netem() }

// netem says whether the fault needs a netem qdisc.
func (f LinkFault) netem() bool {
	return f.Latency > 0 || f.Jitter > 0 || f.Duplicate > 0 || f.Corrupt > 0
}

// FaultSupport is what the kernel lets Sandlot do to the links between nodes, as the driver's probe found.
type FaultSupport struct {
	Filter bool // drops and losses: iptables' physdev and statistic matches
	Shape  bool // rates: HTB and iptables' CLASSIFY
	Netem  bool // latency, jitter, duplication, corruption: sch_netem
}

// FaultSupport says which faults this engine's kernel allows.
func (d *Driver) FaultSupport() FaultSupport {
	f := d.features
	return FaultSupport{
		Filter: f["iptables-physdev"] && f["iptables-statistic"],
		Shape:  f["htb"] && f["iptables-classify"],
		Netem:  f["netem"],
	}
}

// Missing names the kernel feature that fault needs and the kernel lacks, or "".
func (s FaultSupport) Missing(f LinkFault) string {
	switch {
	case (f.Drop || f.Loss > 0) && !s.Filter:
		return "iptables physdev and statistic matches (xt_physdev, xt_statistic)"
	case f.shaped() && !s.Shape:
		return "sch_htb and the iptables CLASSIFY target"
	case f.netem() && !s.Netem:
		return "sch_netem"
	}
	return ""
}

// faultChain is the name of a session's chains (iptables allows 28 characters).
func faultChain(session string) string {
	sum := sha256.Sum256([]byte(session))
	return "SLNF-" + hex.EncodeToString(sum[:11])
}

// nodeLink is a node's link on the session bridge, as the kernel says.
type nodeLink struct {
	pid  int    // the node's first process, whose network namespace holds the node's end
	port string // the host end: a port of the session's bridge
}

// SetFaults replaces the session's whole fault picture with faults (none: clears it), and keeps note with it for
// Faults to return. Every node a fault names must exist; faults touching a node that is not running are kept in
// the note but have no link to act on until the caller applies them again. Invalid faults and faults the kernel
// does not allow (FaultSupport) are ErrInvalid and ErrKernelFeature, with nothing changed.
func (d *Driver) SetFaults(ctx context.Context, session string, faults []LinkFault, note []byte) error {
	if err := checkSession(session); err != nil {
		return err
	}
	if d.network != NetworkBridge {
		return fmt.Errorf("%w: network faults need bridge session networks (this engine uses %s)", ErrKernelFeature, d.network)
	}
	if len(note) > maxFaultNote {
		return fmt.Errorf("%w: fault document of %d bytes (at most %d)", ErrInvalid, len(note), maxFaultNote)
	}
	support := d.FaultSupport()
	seen := map[[2]string]bool{}
	for _, f := range faults {
		if err := checkLinkFault(f); err != nil {
			return err
		}
		if seen[[2]string{f.From, f.To}] {
			return fmt.Errorf("%w: two faults from %s to %s", ErrInvalid, f.From, f.To)
		}
		seen[[2]string{f.From, f.To}] = true
		if m := support.Missing(f); m != "" {
			return fmt.Errorf("%w: %s (needed for the fault from %s to %s)", ErrKernelFeature, m, f.From, f.To)
		}
	}
	nodes, err := d.List(ctx, session)
	if err != nil {
		return err
	}
	known := map[string]Instance{}
	for _, n := range nodes {
		known[n.Name] = n
	}
	for _, f := range faults {
		for _, name := range []string{f.From, f.To} {
			if _, ok := known[name]; !ok {
				return fmt.Errorf("%w: %s in session %s", ErrNotFound, name, session)
			}
		}
	}
	links, err := d.nodeLinks(ctx, session, nodes)
	if err != nil {
		return err
	}
	script := faultScript(session, d.cfg.Owner, bridgeName(session), links, faults, note)
	if len(faults) == 0 && len(note) == 0 {
		script = faultClearScript(session, bridgeName(session))
	}
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	if _, err := d.netfault(ctx, script); err != nil {
		return fmt.Errorf("network faults of session %s: %w", session, err)
	}
	return nil
}

// ClearFaults removes every fault of the session from the engine's namespace. Nothing there is not an error.
func (d *Driver) ClearFaults(ctx context.Context, session string) error {
	if err := checkSession(session); err != nil {
		return err
	}
	if d.network != NetworkBridge {
		return nil
	}
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	if _, err := d.netfault(ctx, faultClearScript(session, bridgeName(session))); err != nil {
		return fmt.Errorf("clear network faults of session %s: %w", session, err)
	}
	return nil
}

// Faults returns the note kept with the session's faults, or nil when it has none.
func (d *Driver) Faults(ctx context.Context, session string) ([]byte, error) {
	if err := checkSession(session); err != nil {
		return nil, err
	}
	if d.network != NetworkBridge {
		return nil, nil
	}
	out, err := d.netfault(ctx, pickBackend+"$ipt -S "+faultChain(session)+" 2>/dev/null || true\n")
	if err != nil {
		return nil, fmt.Errorf("read network faults of session %s: %w", session, err)
	}
	return parseFaultNote(out)
}

// FaultRules lists, in iptables-save form and tc's words, everything Sandlot's faults have in the engine's
// network namespace: its chains in the filter and mangle tables and the qdiscs and classes on session bridge ports
// (for tests and operators: after every session has ended, nothing but the empty SANDLOT-FAULTS chains remains).
func (d *Driver) FaultRules(ctx context.Context) (string, error) {
	return d.netfault(ctx, pickBackend+`for t in filter mangle; do $ipt-save -t $t | grep -E 'SANDLOT-FAULTS|SLNF-' || true; done
for p in $(ip -o link show | sed -n 's/^[0-9]*: \([^@:]*\).* master sl-.*/\1/p'); do
	tc qdisc show dev "$p" | grep -v 'qdisc noqueue' | sed "s/^/$p: /"
	tc class show dev "$p" | sed "s/^/$p: /"
done
`)
}

// maxFaultNote is the largest note SetFaults keeps (it is stored in comments of 256 characters at most).
const maxFaultNote = 16 << 10

func checkLinkFault(f LinkFault) error {
	if _, err := nodeIndex(f.From); err != nil {
		return err
	}
	if _, err := nodeIndex(f.To); err != nil {
		return err
	}
	switch {
	case f.From == f.To:
		return fmt.Errorf("%w: a fault from %s to itself", ErrInvalid, f.From)
	case f.Loss < 0 || f.Loss > 1, f.Duplicate < 0 || f.Duplicate > 1, f.Corrupt < 0 || f.Corrupt > 1:
		return fmt.Errorf("%w: fractions are between 0 and 1", ErrInvalid)
	case f.Latency < 0 || f.Jitter < 0 || f.Latency > time.Minute || f.Jitter > time.Minute:
		return fmt.Errorf("%w: latency and jitter are between 0 and 1m", ErrInvalid)
	case f.Jitter > 0 && f.Latency == 0:
		return fmt.Errorf("%w: a jitter needs a latency", ErrInvalid)
	}
	return nil
}

// portName is what a port's name may be to be written into a script.
var portName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)

// linkPattern reads one line of `ip -o link show`: index, name, the peer's index (a veth's), and the rest.
var linkPattern = regexp.MustCompile(`^(\d+): ([^@: ]+)@if(\d+): (.*)$`)

// nodeLinks finds each running node's port on the session bridge: the host end of the node's interface whose
// peer is a port of that bridge, each end naming the other by index. A port claimed by two nodes (a node's root
// can make interfaces with any indices in namespaces of its own) is an error rather than a guess.
func (d *Driver) nodeLinks(ctx context.Context, session string, nodes []Instance) (map[string]nodeLink, error) {
	links := map[string]nodeLink{}
	var pids []string
	byPid := map[int]string{}
	keys := map[string]string{} // node name -> cache key (container and first process: a restart changes both)
	for _, n := range nodes {
		if n.Status != "running" {
			continue
		}
		c, err := d.docker.ContainerInspect(ctx, n.ContainerID)
		if err != nil || c.State == nil || !c.State.Running || c.State.Pid <= 0 {
			continue // gone or stopped since it was listed
		}
		key := n.ContainerID + "/" + strconv.Itoa(c.State.Pid)
		if l, ok := d.cachedLink(key); ok {
			links[n.Name] = l
			continue
		}
		keys[n.Name] = key
		pids = append(pids, strconv.Itoa(c.State.Pid))
		byPid[c.State.Pid] = n.Name
	}
	if len(pids) == 0 {
		return links, nil
	}
	script := `br=$1; shift
echo "bridge $br"; ip -o link show master "$br"
for pid; do echo "pid $pid"; nsenter -t "$pid" -n ip -o link show || true; done
`
	out, err := d.netfault(ctx, script, append([]string{bridgeName(session)}, pids...)...)
	if err != nil {
		return nil, fmt.Errorf("links of session %s: %w", session, err)
	}
	found, err := parseNodeLinks(out)
	if err != nil {
		return nil, fmt.Errorf("links of session %s: %w", session, err)
	}
	for pid, port := range found {
		name, ok := byPid[pid]
		if !ok {
			continue
		}
		l := nodeLink{pid: pid, port: port}
		links[name] = l
		d.cacheLink(keys[name], l)
	}
	return links, nil
}

// parseNodeLinks reads the output of nodeLinks' script: the bridge's ports, then each process's interfaces.
func parseNodeLinks(out string) (map[int]string, error) {
	type port struct {
		name string
		peer string // the index of the other end, in the node's namespace
	}
	ports := map[string]port{} // by index in the engine's namespace
	claims := map[string][]int{}
	section, pid := "", 0
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "bridge "); ok && rest != "" {
			section = "bridge"
			continue
		}
		if rest, ok := strings.CutPrefix(line, "pid "); ok {
			section = "pid"
			pid, _ = strconv.Atoi(rest)
			continue
		}
		m := linkPattern.FindStringSubmatch(line)
		if m == nil || !strings.Contains(m[4], "link-netnsid") {
			continue
		}
		switch section {
		case "bridge":
			if portName.MatchString(m[2]) { // the engine names them (vethXXXX); anything else goes in no script
				ports[m[1]] = port{name: m[2], peer: m[3]}
			}
		case "pid":
			// m[1] is the interface's index in the node, m[3] its peer's in the engine's namespace.
			if p, ok := ports[m[3]]; ok && p.peer == m[1] && pid > 0 {
				claims[m[3]] = append(claims[m[3]], pid)
			}
		}
	}
	links := map[int]string{}
	for index, pids := range claims {
		if len(pids) > 1 {
			return nil, fmt.Errorf("port %s of the session bridge is claimed by several nodes", ports[index].name)
		}
		if other, ok := links[pids[0]]; ok {
			return nil, fmt.Errorf("a node has two ports on the session bridge (%s, %s)", other, ports[index].name)
		}
		links[pids[0]] = ports[index].name
	}
	return links, nil
}

// cachedLink is the link found for a node's container and first process (key "container/pid").
func (d *Driver) cachedLink(key string) (nodeLink, bool) {
	d.faultMu.Lock()
	defer d.faultMu.Unlock()
	l, ok := d.links[key]
	return l, ok
}

func (d *Driver) cacheLink(key string, l nodeLink) {
	d.faultMu.Lock()
	defer d.faultMu.Unlock()
	if d.links == nil || len(d.links) > 4096 {
		d.links = map[string]nodeLink{}
	}
	d.links[key] = l
}

// forgetLink drops the cached links of a node's container (it is stopped or removed).
func (d *Driver) forgetLink(container string) {
	d.faultMu.Lock()
	defer d.faultMu.Unlock()
	for key := range d.links {
		if strings.HasPrefix(key, container+"/") {
			delete(d.links, key)
		}
	}
}

// faultPlan is a shell function that reads iptables-save and writes the iptables-restore batch that, for the
// session's chain $c on bridge $br, in the filter and mangle tables: "apply" makes SANDLOT-FAULTS and its jumps if
// missing, replaces $c with the rules in $dir/filter and $dir/mangle and jumps to it for packets bridged on $br;
// "clear" removes $c and the jump to it; "unhook" does too, and removes SANDLOT-FAULTS and its jumps when no other
// session's chain is jumped to from it. One save and one restore (atomic) whatever the session holds.
var faultPlan = `plan() {
	awk -v c="$c" -v br="$br" -v root=` + faultRoot + ` -v mode="$1" -v dir="$dir" '
/^\*/ { t = substr($0, 2); next }
t != "filter" && t != "mangle" { next }
/^:/ { has[t, substr($1, 2)] = 1; next }
$0 == "-A " root " -o " br " -j " c { ours[t]++; next }
$1 == "-A" && $2 == root { others[t]++; next }
$1 == "-A" && $(NF-1) == "-j" && $NF == root { hooks[t] = hooks[t] "-D" substr($0, 3) "\n"; hooked[t] = 1; next }
END {
	for (i = 1; i <= 2; i++) {
		t = i == 1 ? "filter" : "mangle"
		printf "*%s\n", t
		if (mode == "apply") {
			if (!has[t, root]) printf ":%s - [0:0]\n", root
			printf ":%s - [0:0]\n", c
			if (!hooked[t]) printf "-I %s 1 -j %s\n", (t == "filter" && has[t, "DOCKER-USER"]) ? "DOCKER-USER" : "FORWARD", root
			while ((getline line < (dir "/" t)) > 0) print line
			if (!ours[t]) printf "-A %s -o %s -j %s\n", root, br, c
		} else {
			for (k = 0; k < ours[t]; k++) printf "-D %s -o %s -j %s\n", root, br, c
			if (has[t, c]) printf "-F %s\n-X %s\n", c, c
			if (mode == "unhook" && has[t, root] && !others[t]) printf "%s-X %s\n", hooks[t], root
		}
		print "COMMIT"
	}
}'
}
# untc removes Sandlot's HTB qdiscs from the ports of $br.
untc() {
	ports=" $(ip -o link show master "$br" 2>/dev/null | sed -n 's/^[0-9]*: \([^@:]*\).*/\1/p' | tr '\n' ' ') "
	for p in $(tc qdisc show | awk '$2 == "htb" && $3 == "` + fmt.Sprintf("%x", faultHandle) + `:" && $4 == "dev" && $6 == "root" { print $5 }'); do
		case "$ports" in *" $p "*) tc qdisc del dev "$p" root || true ;; esac
	done
}
# clear removes the session's chains (and SANDLOT-FAULTS when unused, if $1 is unhook) and qdiscs.
clear() {
	$ipt-save | plan "$1" | $ipt-restore --noflush || $ipt-save | plan clear | $ipt-restore --noflush
	untc
}
`

// faultVars sets the variables faultPlan's functions use.
func faultVars(session, bridge string) string {
	return pickBackend + fmt.Sprintf("c=%s br=%s dir=$(mktemp -d)\ntrap 'rm -rf \"$dir\"' EXIT\n", faultChain(session), bridge) +
		faultPlan
}

// faultClearScript removes the session's faults, and SANDLOT-FAULTS if no other session has any.
func faultClearScript(session, bridge string) string {
	return faultVars(session, bridge) + "clear unhook\n"
}

// faultScript makes the session's picture in the engine's namespace: the chains in one iptables-restore, then the
// classes on the receiving ports in one tc batch. If a step fails, the session's faults are cleared.
func faultScript(session, owner, bridge string, links map[string]nodeLink, faults []LinkFault, note []byte) string {
	c := faultChain(session)
	var filter, mangle strings.Builder
	shaped := map[string][]LinkFault{} // by receiving port
	for _, f := range faults {
		from, okFrom := links[f.From]
		to, okTo := links[f.To]
		if !okFrom || !okTo {
			continue // a node not running: no link to act on
		}
		match := fmt.Sprintf("-A %s -m physdev --physdev-in %s --physdev-out %s", c, from.port, to.port)
		switch {
		case f.Drop || f.Loss >= 1:
			fmt.Fprintf(&filter, "%s -j DROP\n", match)
		case f.Loss > 0:
			fmt.Fprintf(&filter, "%s -m statistic --mode random --probability %.6f -j DROP\n", match, f.Loss)
		}
		if f.shaped() && !f.Drop {
			fmt.Fprintf(&mangle, "%s -j CLASSIFY --set-class %x:%x\n", match, faultHandle, classOf(f.From))
			shaped[to.port] = append(shaped[to.port], f)
		}
	}
	fmt.Fprintf(&filter, "-A %s -m comment --comment \"sandlot session=%s owner=%s\"\n", c, session, commentOwner(owner))
	enc := base64.StdEncoding.EncodeToString(note)
	for i := 0; len(note) > 0 && i*noteChunk < len(enc); i++ {
		chunk := enc[i*noteChunk : min(len(enc), (i+1)*noteChunk)]
		fmt.Fprintf(&filter, "-A %s -m comment --comment \"note %d %s\"\n", c, i, chunk)
	}
	var b strings.Builder
	b.WriteString("set -e\n" + faultVars(session, bridge))
	fmt.Fprintf(&b, `nf=$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo 0)
[ "$nf" = 1 ] || { echo "bridge netfilter is off in the engine's namespace (net.bridge.bridge-nf-call-iptables)" >&2; exit 1; }
cat >"$dir/filter" <<'EOF'
%sEOF
cat >"$dir/mangle" <<'EOF'
%sEOF
$ipt-save | plan apply | $ipt-restore --noflush
trap 'clear clear; rm -rf "$dir"' EXIT
untc
`, filter.String(), mangle.String())
	ports := make([]string, 0, len(shaped))
	for p := range shaped {
		ports = append(ports, p)
	}
	sort.Strings(ports)
	if len(ports) > 0 {
		b.WriteString("tc -batch - <<'EOF'\n")
	}
	for _, p := range ports {
		fmt.Fprintf(&b, "qdisc add dev %s root handle %x: htb\n", p, faultHandle)
		for _, f := range shaped[p] {
			class := classOf(f.From)
			rate := "10gbit"
			if f.Rate > 0 {
				rate = strconv.FormatUint(f.Rate, 10) + "bit"
			}
			fmt.Fprintf(&b, "class add dev %s parent %x: classid %x:%x htb rate %s ceil %s\n",
				p, faultHandle, faultHandle, class, rate, rate)
			if f.netem() {
				fmt.Fprintf(&b, "qdisc add dev %s parent %x:%x handle %x: netem%s\n",
					p, faultHandle, class, 0x100+class, netemArgs(f))
			}
		}
	}
	if len(ports) > 0 {
		b.WriteString("EOF\n")
	}
	b.WriteString("trap 'rm -rf \"$dir\"' EXIT\n")
	return b.String()
}

// noteChunk is how many base64 characters of the note one comment carries (iptables allows 255 in all).
const noteChunk = 240

// classOf is the HTB class (minor number) of the packets a node sends: its index.
func classOf(name string) int {
	i, _ := nodeIndex(name)
	return i
}

func netemArgs(f LinkFault) string {
	var b strings.Builder
	if f.Latency > 0 {
		fmt.Fprintf(&b, " delay %dus", f.Latency.Microseconds())
		if f.Jitter > 0 {
			fmt.Fprintf(&b, " %dus", f.Jitter.Microseconds())
		}
	}
	if f.Duplicate > 0 {
		fmt.Fprintf(&b, " duplicate %.4f%%", f.Duplicate*100)
	}
	if f.Corrupt > 0 {
		fmt.Fprintf(&b, " corrupt %.4f%%", f.Corrupt*100)
	}
	return b.String()
}

// notePattern reads a note comment in `iptables -S` output.
var notePattern = regexp.MustCompile(`--comment "?note (\d+) ([A-Za-z0-9+/=]+)"?`)

// parseFaultNote puts the note back together from the chain's comments.
func parseFaultNote(out string) ([]byte, error) {
	chunks := map[int]string{}
	for _, line := range strings.Split(out, "\n") {
		if m := notePattern.FindStringSubmatch(line); m != nil {
			i, _ := strconv.Atoi(m[1])
			chunks[i] = m[2]
		}
	}
	if len(chunks) == 0 {
		return nil, nil
	}
	var enc strings.Builder
	for i := 0; i < len(chunks); i++ {
		c, ok := chunks[i]
		if !ok {
			return nil, fmt.Errorf("fault note: chunk %d of %d missing", i, len(chunks))
		}
		enc.WriteString(c)
	}
	return base64.StdEncoding.DecodeString(enc.String())
}

// hasFaulter says whether the driver has a netfault helper (it has applied faults since it started).
func (d *Driver) hasFaulter() bool {
	d.faultMu.Lock()
	defer d.faultMu.Unlock()
	return d.faulter != ""
}

// ownerPattern reads the comment that says whose a session's chain is.
var ownerPattern = regexp.MustCompile(`-A (SLNF-[0-9a-f]+) -m comment --comment "sandlot session=([a-z0-9]+) owner=([^" ]*)"`)

// collectFaults removes the fault chains (and qdiscs) of this driver's owner's sessions that live says are dead,
// left by a process that died before it could: the number of sessions whose faults it removed.
func (d *Driver) collectFaults(ctx context.Context, live LiveFunc) (int, error) {
	// A throwaway helper lists them, so that a process that never applies faults keeps no netfault helper.
	out, err := d.runFirewallHelper(ctx, "netfault-gc", pickBackend+"$ipt-save -t filter | grep -E '^-A SLNF-' | grep 'sandlot session=' || true\n")
	if err != nil {
		return 0, fmt.Errorf("list network fault chains: %w", err)
	}
	removed := 0
	var errs []error
	for _, m := range ownerPattern.FindAllStringSubmatch(out, -1) {
		chain, session, owner := m[1], m[2], m[3]
		if owner != commentOwner(d.cfg.Owner) || faultChain(session) != chain {
			continue
		}
		alive, err := live(ctx, session)
		if err != nil || alive {
			continue
		}
		if err := d.ClearFaults(ctx, session); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	return removed, errors.Join(errs...)
}

// commentOwner is the owner as a fault chain's comment carries it: characters that could end the comment or the
// rule become '_'.
func commentOwner(owner string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x80 && (r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, owner)
}
