package instance

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
)

// Network is the private network of one session.
type Network struct {
	Session string
	ID      string
	Name    string
	Kind    NetworkKind
	Subnet  netip.Prefix
	Gateway netip.Addr
}

// CreateNetwork makes the session's private network, with a subnet from the pool that no other network on the
// engine uses. If the session has one already, that one is returned.
func (d *Driver) CreateNetwork(ctx context.Context, session string) (Network, error) {
	if err := checkSession(session); err != nil {
		return Network{}, err
	}
	if n, err := d.sessionNetwork(ctx, session); err == nil {
		return n, nil
	} else if !isNotFound(err) {
		return Network{}, err
	}
	subnetMu.Lock()
	defer subnetMu.Unlock()
	// Another Sandlot process on the same engine may take the same subnet at the same moment: the engine refuses
	// the second, and we try the next free one.
	for attempt := 0; attempt < 8; attempt++ {
		used, err := d.usedSubnets(ctx)
		if err != nil {
			return Network{}, err
		}
		subnet, err := freeSubnet(d.cfg.SubnetPool, d.cfg.SubnetBits, used)
		if err != nil {
			return Network{}, err
		}
		n, err := d.createNetwork(ctx, session, subnet)
		if err == nil {
			return n, nil
		}
		if cerrdefs.IsConflict(err) || strings.Contains(err.Error(), "already exists") {
			if n, err := d.sessionNetwork(ctx, session); err == nil {
				return n, nil // made concurrently for the same session
			}
		}
		if !strings.Contains(err.Error(), "overlap") {
			return Network{}, fmt.Errorf("create network for session %s: %w", session, err)
		}
	}
	return Network{}, fmt.Errorf("create network for session %s: %w: subnets kept colliding", session, ErrNoSubnet)
}

func (d *Driver) createNetwork(ctx context.Context, session string, subnet netip.Prefix) (Network, error) {
	opts := network.CreateOptions{
		Driver:     string(d.network),
		Attachable: d.network == NetworkOverlay,
		IPAM: &network.IPAM{Config: []network.IPAMConfig{{
			Subnet:  subnet.String(),
			Gateway: gatewayAddr(subnet).String(),
		}}},
		Labels: d.labels(session, ""),
	}
	opts.Labels[labelSubnet] = subnet.String()
	if d.network == NetworkBridge {
		opts.Options = map[string]string{"com.docker.network.bridge.name": bridgeName(session)}
	}
	created, err := d.docker.NetworkCreate(ctx, networkName(session), opts)
	if err != nil {
		return Network{}, err
	}
	return Network{Session: session, ID: created.ID, Name: networkName(session), Kind: d.network,
		Subnet: subnet, Gateway: gatewayAddr(subnet)}, nil
}

// sessionNetwork finds the session's network by its labels.
func (d *Driver) sessionNetwork(ctx context.Context, session string) (Network, error) {
	list, err := d.docker.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", LabelSession+"="+session), filters.Arg("name", networkName(session)))})
	if err != nil {
		return Network{}, fmt.Errorf("list networks of session %s: %w", session, err)
	}
	for _, n := range list {
		if n.Name != networkName(session) || n.Labels[LabelSession] != session {
			continue
		}
		subnet, gateway, err := d.networkIPAM(ctx, n)
		if err != nil {
			return Network{}, fmt.Errorf("network %s of session %s: %w", n.Name, session, err)
		}
		return Network{Session: session, ID: n.ID, Name: n.Name, Kind: NetworkKind(n.Driver),
			Subnet: subnet, Gateway: gateway}, nil
	}
	return Network{}, fmt.Errorf("%w: network of session %s", ErrNotFound, session)
}

// usedSubnets are the IPv4 subnets of every network on the engine, Sandlot's or not.
func (d *Driver) usedSubnets(ctx context.Context) ([]netip.Prefix, error) {
	list, err := d.docker.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	var used []netip.Prefix
	for _, n := range list {
		if subnet, _, err := d.networkIPAM(ctx, n); err == nil {
			used = append(used, subnet)
		}
	}
	return used, nil
}

// networkIPAM is a network's IPv4 subnet and gateway. A swarm network may lack its IPAM configuration for a
// moment after it was made, so Sandlot's networks carry their subnet in a label too.
func (d *Driver) networkIPAM(ctx context.Context, n network.Summary) (netip.Prefix, netip.Addr, error) {
	if subnet, err := netip.ParsePrefix(n.Labels[labelSubnet]); err == nil {
		return subnet, gatewayAddr(subnet), nil
	}
	for attempt := 0; ; attempt++ {
		for _, c := range n.IPAM.Config {
			subnet, err := netip.ParsePrefix(c.Subnet)
			if err != nil || !subnet.Addr().Is4() {
				continue
			}
			gateway, err := netip.ParseAddr(c.Gateway)
			if err != nil {
				gateway = gatewayAddr(subnet)
			}
			return subnet, gateway, nil
		}
		if attempt > 0 {
			return netip.Prefix{}, netip.Addr{}, fmt.Errorf("no IPv4 subnet")
		}
		inspected, err := d.docker.NetworkInspect(ctx, n.ID, network.InspectOptions{})
		if err != nil {
			return netip.Prefix{}, netip.Addr{}, err
		}
		n = inspected
	}
}
