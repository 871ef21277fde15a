package instance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
)

// Driver makes and manages nodes on one Docker engine. It is safe for concurrent use.
type Driver struct {
	cfg      Config
	docker   *client.Client
	log      *slog.Logger
	security Security    // the profile in use (never SecurityAuto)
	network  NetworkKind // the kind in use (never NetworkAuto)
	swarm    bool        // the engine is in swarm mode, so containers on overlays leave through docker_gwbridge
	features Features
}

// subnetMu serialises the choice of session subnets among all drivers of this process: overlay networks meet
// their local conflicts only when the first node attaches, too late to pick another subnet. Other processes on the
// same engine are caught by the engine when they create a bridge or an overlay over a taken subnet.
var subnetMu sync.Mutex

// New connects to the engine at DOCKER_HOST (or the default socket), checks that it answers and has the node
// image, probes which security profile it runs and what the kernel offers, and puts the host firewall rules in
// place. Every failure says what is wrong and how to fix it; none of them hangs.
func New(ctx context.Context, cfg Config) (*Driver, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	d := &Driver{cfg: cfg, docker: docker, log: cfg.Logger}
	if err := d.init(ctx); err != nil {
		docker.Close()
		return nil, err
	}
	return d, nil
}

func (d *Driver) init(ctx context.Context) error {
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := d.docker.Ping(pingCtx); err != nil {
		return fmt.Errorf("%w at %s: %v (start one with `sudo ops/bootstrap-host`, or set DOCKER_HOST)",
			ErrEngineUnreachable, d.docker.DaemonHost(), err)
	}
	d.docker.NegotiateAPIVersion(ctx)
	if _, err := d.docker.ImageInspect(ctx, d.cfg.Image); err != nil {
		if cerrdefs.IsNotFound(err) {
			return fmt.Errorf("%w: %s is not in the engine at %s (build it with `make images`)",
				ErrImageMissing, d.cfg.Image, d.docker.DaemonHost())
		}
		return fmt.Errorf("inspect node image %s: %w", d.cfg.Image, err)
	}
	if err := d.chooseNetwork(ctx); err != nil {
		return err
	}
	if err := d.probe(ctx); err != nil {
		return err
	}
	if err := d.applyFirewall(ctx); err != nil {
		return err
	}
	d.log.Info("node driver ready", "engine", d.docker.DaemonHost(), "image", d.cfg.Image,
		"network", d.network, "security", d.security, "subnet_pool", d.cfg.SubnetPool.String(),
		"storage", d.cfg.Storage, "disk_limit", d.DiskLimit() > 0)
	return nil
}

func (d *Driver) chooseNetwork(ctx context.Context) error {
	info, err := d.docker.Info(ctx)
	if err != nil {
		return fmt.Errorf("engine info: %w", err)
	}
	d.swarm = info.Swarm.LocalNodeState == swarm.LocalNodeStateActive
	manager := d.swarm && info.Swarm.ControlAvailable
	switch {
	case d.cfg.Network == NetworkOverlay && !manager:
		return fmt.Errorf("%w: overlay session networks need an engine that is a swarm manager "+
			"(run `docker swarm init --advertise-addr <host address>`) or use network kind bridge", ErrInvalid)
	case d.cfg.Network == NetworkAuto && manager:
		d.network = NetworkOverlay
	case d.cfg.Network == NetworkAuto:
		d.network = NetworkBridge
	default:
		d.network = d.cfg.Network
	}
	return nil
}

// Close releases the connection to the engine. Nodes keep running.
func (d *Driver) Close() error { return d.docker.Close() }

// NetworkKind is the kind of network sessions get on this engine.
func (d *Driver) NetworkKind() NetworkKind { return d.network }

// Security is the profile nodes run with on this engine.
func (d *Driver) Security() Security { return d.security }

// Features is what the probe found in the kernel.
func (d *Driver) Features() Features { return d.features }

// Limits is what each node is limited to.
func (d *Driver) Limits() Limits {
	return Limits{Memory: d.cfg.Memory, CPUs: d.cfg.CPUs, Pids: d.cfg.Pids, Disk: d.DiskLimit()}
}

// DiskLimit is the size limit of a node's /var/lib/docker in bytes, or 0 where the storage cannot enforce one.
func (d *Driver) DiskLimit() int64 {
	if d.cfg.Storage == StorageTmpfs {
		return d.cfg.DiskSize
	}
	return 0
}

// Limits are the resources of one node. A zero Disk means the size of /var/lib/docker is not limited.
type Limits struct {
	Memory int64   `json:"memory_bytes"`
	CPUs   float64 `json:"cpus"`
	Pids   int64   `json:"pids"`
	Disk   int64   `json:"disk_bytes"`
}

// labels are the labels of an object of session (and instance, "" for a network), with the owner if any.
func (d *Driver) labels(session, instance string) map[string]string {
	l := map[string]string{LabelSession: session, LabelInstance: instance}
	if d.cfg.Owner != "" {
		l[LabelOwner] = d.cfg.Owner
	}
	return l
}

// ownedBy narrows a label filter to this driver's owner, if it has one.
func (d *Driver) ownedBy(f filters.Args) filters.Args {
	if d.cfg.Owner != "" {
		f.Add("label", LabelOwner+"="+d.cfg.Owner)
	}
	return f
}

// isNotFound reports whether err is the engine saying an object does not exist.
func isNotFound(err error) bool { return cerrdefs.IsNotFound(err) || errors.Is(err, ErrNotFound) }

// Ping checks that the engine answers.
func (d *Driver) Ping(ctx context.Context) error {
	if _, err := d.docker.Ping(ctx); err != nil {
		return fmt.Errorf("%w: %v", ErrEngineUnreachable, err)
	}
	return nil
}

// HostMemory is the memory of the engine's host in bytes.
func (d *Driver) HostMemory(ctx context.Context) (int64, error) {
	info, err := d.docker.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("engine info: %w", err)
	}
	return info.MemTotal, nil
}
