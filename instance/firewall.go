package instance

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
)

// The host firewall keeps nodes away from the host itself and from link-local addresses (cloud metadata at
// 169.254.169.254), except for the one address and port of the image mirror (Config.ImageMirror), when there is
// one. Two chains of Sandlot's own, flushed and refilled on every start so that the rules always match the
// configuration:
//
//	SANDLOT-INPUT   (jumped to first from INPUT): replies pass; new TCP connections from nodes to the image mirror
//	                pass; every other new connection from nodes to any host address is rejected.
//	SANDLOT-FORWARD (jumped to first from DOCKER-USER): replies pass (the node engine's host reaches nodes from a
//	                link-local address through the engine's network namespace); new TCP connections from nodes to
//	                the image mirror pass on to the engine's own rules (the node engine's host serves the mirror
//	                at a link-local address); otherwise nodes may not reach link-local addresses, nor anything the
//	                host publishes through DNAT; and no packet for a pool address is forwarded anywhere but
//	                onto a Sandlot bridge (sl-*), so that a node on an overlay network, whose default route is the
//	                host, cannot reach another session's addresses through it, nor send them off the host.
//
// For IPv6 (which a node's root can turn on in its own network namespace, and so reach the host's link-local
// addresses), nothing from or to a Sandlot bridge passes at all.
//
// Nodes are recognised by their source address (the subnet pool). On overlay session networks a node's traffic
// leaves through the host's docker_gwbridge with another address, so when the engine is in swarm mode the rules
// match that interface too: on such a Sandlot host, no container on an overlay network reaches the host's ports.
//
// The rules are applied by a helper container of the node image on the host's network, so that Sandlot needs no
// iptables of its own and works the same when it runs in a container.
const (
	firewallInput   = "SANDLOT-INPUT"
	firewallForward = "SANDLOT-FORWARD"
)

// firewallScript is the shell script that puts the rules in place, for nodes in pool, on an engine in swarm mode
// or not, with the image mirror nodes may reach (zero: none).
func firewallScript(pool string, swarm bool, mirror netip.AddrPort) string {
	var b strings.Builder
	b.WriteString("set -e\n" + pickBackend)
	// The mirror's exemption goes before each chain's rejections: RETURN hands its packets back to the rules after
	// the jump (the engine's own), as for any traffic these chains do not reject.
	// Nodes on overlay networks come through docker_gwbridge with other addresses: in swarm mode, they are let
	// through to the mirror as such.
	allowMirrorFrom := func(chain, from string) {
		if mirror.IsValid() {
			fmt.Fprintf(&b, "$ipt -A %s %s -d %s -p tcp --dport %d -j RETURN\n", chain, from, mirror.Addr(), mirror.Port())
		}
	}
	allowMirror := func(chain string) { allowMirrorFrom(chain, "-s "+pool) }
	fmt.Fprintf(&b, `for c in %[1]s %[2]s; do $ipt -N $c 2>/dev/null || true; $ipt -F $c; done
$ipt -A %[1]s -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
`, firewallInput, firewallForward)
	allowMirror(firewallInput)
	fmt.Fprintf(&b, `$ipt -A %[1]s -s %[3]s -j REJECT
$ipt -A %[2]s -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
`, firewallInput, firewallForward, pool)
	allowMirror(firewallForward)
	fmt.Fprintf(&b, `$ipt -A %[1]s -s %[2]s -d 169.254.0.0/16 -j REJECT
$ipt -A %[1]s -s %[2]s -m conntrack --ctstate DNAT -j REJECT
$ipt -A %[1]s -d %[2]s ! -o sl-+ -j REJECT
`, firewallForward, pool)
	if swarm {
		allowMirrorFrom(firewallInput, "-i docker_gwbridge")
		allowMirrorFrom(firewallForward, "-i docker_gwbridge")
		fmt.Fprintf(&b, `$ipt -A %[1]s -i docker_gwbridge -j REJECT
$ipt -A %[2]s -i docker_gwbridge -d 169.254.0.0/16 -j REJECT
`, firewallInput, firewallForward)
	}
	fmt.Fprintf(&b, `$ipt -C INPUT -j %[1]s 2>/dev/null || $ipt -I INPUT 1 -j %[1]s
hook=FORWARD
$ipt -n -L DOCKER-USER >/dev/null 2>&1 && hook=DOCKER-USER
$ipt -C $hook -j %[2]s 2>/dev/null || $ipt -I $hook 1 -j %[2]s
for c in %[1]s %[2]s; do $ip6t -N $c 2>/dev/null || true; $ip6t -F $c; done
$ip6t -A %[1]s -i sl-+ -j DROP
$ip6t -A %[2]s -i sl-+ -j DROP
$ip6t -A %[2]s -o sl-+ -j DROP
`, firewallInput, firewallForward)
	if swarm {
		fmt.Fprintf(&b, `$ip6t -A %[1]s -i docker_gwbridge -j DROP
$ip6t -A %[2]s -i docker_gwbridge -j DROP
`, firewallInput, firewallForward)
	}
	fmt.Fprintf(&b, `$ip6t -C INPUT -j %[1]s 2>/dev/null || $ip6t -I INPUT 1 -j %[1]s
$ip6t -C FORWARD -j %[2]s 2>/dev/null || $ip6t -I FORWARD 1 -j %[2]s
`, firewallInput, firewallForward)
	b.WriteString(listRules)
	return b.String()
}

// pickBackend sets $ipt and $ip6t to the iptables backend the engine uses: the one where Docker's own chain exists.
const pickBackend = `ipt=iptables-nft ip6t=ip6tables-nft
iptables-legacy -n -L DOCKER-USER >/dev/null 2>&1 && ! iptables-nft -n -L DOCKER-USER >/dev/null 2>&1 &&
	ipt=iptables-legacy ip6t=ip6tables-legacy
`

// listRules prints the chains that matter, with $ipt and $ip6t set (IPv6 rules with the prefix "ip6 ").
const listRules = `$ipt -S INPUT; $ipt -S DOCKER-USER 2>/dev/null || $ipt -S FORWARD
$ipt -S ` + firewallInput + `; $ipt -S ` + firewallForward + `
{ $ip6t -S INPUT; $ip6t -S FORWARD; $ip6t -S ` + firewallInput + `; $ip6t -S ` + firewallForward + `; } | sed 's/^/ip6 /'
`

func (d *Driver) applyFirewall(ctx context.Context) error {
	out, err := d.runFirewallHelper(ctx, "firewall", firewallScript(d.cfg.SubnetPool.String(), d.swarm, d.cfg.ImageMirror))
	if err != nil {
		return fmt.Errorf("host firewall for nodes: %w", err)
	}
	d.log.Debug("host firewall in place", "rules", out)
	return nil
}

// FirewallRules lists the host's INPUT and DOCKER-USER chains and Sandlot's own, in iptables -S form, so that a
// caller (a readiness check, a test) can see the rules are in place.
func (d *Driver) FirewallRules(ctx context.Context) (string, error) {
	return d.runFirewallHelper(ctx, "firewall-list", pickBackend+listRules)
}

func (d *Driver) runFirewallHelper(ctx context.Context, role, script string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hc := &container.HostConfig{NetworkMode: "host", CapAdd: []string{"NET_ADMIN", "NET_RAW"}}
	if d.isolation == IsolationUserns {
		hc.UsernsMode = "host" // an engine that remaps users shares its network namespace only so
	}
	return d.runHelper(ctx, role, []string{"/bin/sh", "-c", script}, nil, hc)
}
