package instance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
)

// Driver makes and manages nodes on one Docker engine. It is safe for concurrent use.
type Driver struct {
	cfg       Config
	docker    *client.Client
	log       *slog.Logger
	isolation Isolation   // the isolation in use (never IsolationAuto)
	network   NetworkKind // the kind in use (never NetworkAuto)
	swarm     bool        // the engine is in swarm mode, so containers on overlays leave through docker_gwbridge
	nodeDisks bool        // the engine's runtime gives each node a disk of cfg.Disk bytes (sandlot-runtime)
	seccomp   string      // the nodes' seccomp profile, JSON
	features  Features
	holder    *holderBinary // nil: shells are not held

	applyMu sync.Mutex          // one change of faults at a time (SANDLOT-FAULTS is shared by every session)
	faultMu sync.Mutex          // guards the two below
	links   map[string]nodeLink // nodes' ports on their session bridges, by container id
	faulter string              // the netfault helper's container id, once made
}

// subnetMu serialises the choice of session subnets among all drivers of this process: overlay networks meet
// their local conflicts only when the first node attaches, too late to pick another subnet. Other processes on the
// same engine are caught by the engine when they create a bridge or an overlay over a taken subnet.
var subnetMu sync.Mutex

// New connects to the engine (Config.Engine), checks that it answers and has the node image, chooses the
// isolation and checks with a probe that the engine runs it and what the kernel offers, and puts the host firewall
// rules in place. Every failure says what is wrong and how to fix it; none of them hangs.
func New(ctx context.Context, cfg Config) (*Driver, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if cfg.Engine != "" {
		opts = append(opts, client.WithHost(cfg.Engine))
	}
	docker, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client for %s: %w", cfg.Engine, err)
	}
	profile, err := nodeSeccomp()
	if err != nil {
		return nil, err
	}
	d := &Driver{cfg: cfg, docker: docker, log: cfg.Logger, seccomp: profile}
	if cfg.Holder != "" {
		if d.holder, err = loadHolder(cfg.Holder); err != nil {
			docker.Close()
			return nil, err
		}
	}
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
	info, err := d.docker.Info(ctx)
	if err != nil {
		return fmt.Errorf("engine info: %w", err)
	}
	if err := d.chooseNetwork(info); err != nil {
		return err
	}
	remapped := slices.Contains(info.SecurityOptions, "name=userns")
	nodeDisks := d.cfg.Storage == StorageVolume && info.DefaultRuntime == nodeRuntime
	if err := d.chooseIsolation(ctx, remapped, nodeDisks); err != nil {
		return err
	}
	if err := d.applyFirewall(ctx); err != nil {
		return err
	}
	d.log.Info("node driver ready", "engine", d.docker.DaemonHost(), "image", d.cfg.Image,
		"network", d.network, "isolation", d.isolation, "subnet_pool", d.cfg.SubnetPool.String(),
		"storage", d.cfg.Storage, "disk", d.DiskMechanism())
	if w := IsolationWarning(d.isolation); w != "" {
		d.log.Warn(w)
	}
	return nil
}

// nodeRuntime is the name the node engine gives sandlot-runtime (ops/node-engine).
const nodeRuntime = "sandlot"

func (d *Driver) chooseNetwork(info system.Info) error {
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

// Close removes the driver's netfault helper, if it made one, and releases the connection to the engine. Nodes
// keep running, and so do the faults between them.
func (d *Driver) Close() error {
	d.removeFaulter()
	return d.docker.Close()
}

// NetworkKind is the kind of network sessions get on this engine.
func (d *Driver) NetworkKind() NetworkKind { return d.network }

// Isolation is how nodes are isolated from the host on this engine.
func (d *Driver) Isolation() Isolation { return d.isolation }

// Features is what the probe found in the kernel.
func (d *Driver) Features() Features { return d.features }

// Limits is what each node is limited to.
func (d *Driver) Limits() Limits {
	return Limits{Memory: d.cfg.Memory, CPUs: d.cfg.CPUs, Pids: d.cfg.Pids, Disk: d.DiskLimit()}
}

// DiskLimit is the size of a node's disk in bytes, or 0 where nothing limits it.
func (d *Driver) DiskLimit() int64 {
	if d.cfg.Storage == StorageTmpfs || d.nodeDisks {
		return d.cfg.Disk
	}
	return 0
}

// DiskMechanism says in a few words what limits a node's disk, if anything does.
func (d *Driver) DiskMechanism() string {
	switch {
	case d.nodeDisks:
		return fmt.Sprintf("%d MiB per node for everything it writes (its own ext4 filesystem, made by sandlot-runtime)",
			d.cfg.Disk>>20)
	case d.cfg.Storage == StorageTmpfs:
		return fmt.Sprintf("%d MiB tmpfs on /var/lib/docker, counted against the node's memory; the root filesystem "+
			"is not limited", d.cfg.Disk>>20)
	}
	return "not limited (the engine's runtime makes no node disks: use the node engine, or --storage tmpfs)"
}

// Limits are the resources of one node. A zero Disk means its disk is not limited.
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

// Engine is the address of the engine nodes run on.
func (d *Driver) Engine() string { return d.docker.DaemonHost() }

// SeccompProfile is the seccomp profile nodes run with, as JSON (for tools that start nodes by hand, such as the
// benchmarks' plain paths).
func (d *Driver) SeccompProfile() string { return d.seccomp }
