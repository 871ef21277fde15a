package instance

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"time"
)

// NetworkKind is the Docker network driver of session networks.
type NetworkKind string

// The network kinds. NetworkAuto picks overlay when the engine is a swarm manager and bridge otherwise.
const (
	NetworkAuto    NetworkKind = "auto"
	NetworkBridge  NetworkKind = "bridge"
	NetworkOverlay NetworkKind = "overlay"
)

// Isolation is how a node is kept from the host (docs/decisions/0014).
type Isolation string

// The isolations.
//
// IsolationUserns (for strangers): the node runs in a user namespace of its own (an engine started with
// --userns-remap, such as the node engine of ops/node-engine), so its root is an unprivileged user on the host; it
// has the capabilities an inner engine needs, but only inside its own namespaces, and a seccomp profile.
//
// IsolationCaps (trusted installs only): the same capabilities without a user namespace. A learner can become root
// on the host.
//
// IsolationPrivileged (trusted installs only): Docker's --privileged, every host device included. A learner can
// become root on the host.
//
// IsolationAuto (the default) is userns wherever the engine can run it; it never chooses caps or privileged.
const (
	IsolationAuto       Isolation = "auto"
	IsolationUserns     Isolation = "userns"
	IsolationCaps       Isolation = "caps"
	IsolationPrivileged Isolation = "privileged"
)

// Storage is what backs a node's /var/lib/docker.
type Storage string

// The storage kinds. StorageVolume is an anonymous Docker volume; where the engine's runtime makes node disks
// (sandlot-runtime), it holds a filesystem of Disk bytes for everything the node writes, else it is not limited.
// StorageTmpfs is a tmpfs of Disk bytes on /var/lib/docker only, which counts against the node's memory.
const (
	StorageVolume Storage = "volume"
	StorageTmpfs  Storage = "tmpfs"
)

// NodeEngineSocket is where ops/node-engine's engine listens.
const NodeEngineSocket = "/run/sandlot/engine.sock"

// DefaultEngine is the engine nodes go to when none is named: $DOCKER_HOST, else the node engine when its socket
// exists, else Docker's default socket ("" means that).
func DefaultEngine() string {
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return h
	}
	if fi, err := os.Stat(NodeEngineSocket); err == nil && fi.Mode()&os.ModeSocket != 0 {
		return "unix://" + NodeEngineSocket
	}
	return ""
}

// DefaultSubnetPool is where session subnets come from: 198.18.0.0/15, reserved for benchmarking (RFC 2544) and
// so never routed, and clear of the ranges tutorials use inside labs (172.17-31/16, 10.0.0.0/8, 192.168.0.0/16).
var DefaultSubnetPool = netip.MustParsePrefix("198.18.0.0/15")

// NodeEngineHostAddr is the host's address on the link to the node engine (sl-engine): what nodes on the node
// engine reach the host at, and so where the host serves them the image cache. It must match host_addr in
// ops/node-engine.
var NodeEngineHostAddr = netip.MustParseAddr("169.254.213.1")

// Config says how nodes are made. The zero value is usable: every field has a default.
type Config struct {
	Engine       string        // the Docker engine's address; default DefaultEngine()
	Image        string        // node image; default "sandlot/node:latest"
	Network      NetworkKind   // default NetworkAuto
	SubnetPool   netip.Prefix  // default DefaultSubnetPool
	SubnetBits   int           // prefix length of one session network; default 26 (52 nodes, 2048 sessions)
	Memory       int64         // memory limit of a node in bytes, inner containers included; default 1 GiB
	CPUs         float64       // CPU limit of a node; default 1
	Pids         int64         // process limit of a node, inner containers included; default 1024
	Storage      Storage       // default StorageVolume
	Disk         int64         // a node's disk in bytes (see Storage); default 10 GiB
	Isolation    Isolation     // default IsolationAuto
	ReadyTimeout time.Duration // how long a node may take to be ready; default 60 s
	Logger       *slog.Logger  // default slog.Default()
	// Owner names the deployment: everything made carries it as sandlot.owner, and GC looks only at objects
	// with the same owner, so that two deployments on one engine never collect each other's nodes. Empty: make
	// objects without an owner and collect regardless of owner (the admin `sandlot gc`).
	Owner string
	// ImageMirror is the image cache nodes' engines use as their Docker Hub mirror (plain HTTP, read-only
	// registry API), such as NodeEngineHostAddr:5000; the host firewall lets nodes open that one TCP address and
	// port of the host and no other. Zero: no mirror, and nodes pull from Docker Hub directly.
	ImageMirror netip.AddrPort
	// KeySecret is what each session's ssh key pair is derived from (at least 32 bytes): drivers with the same
	// secret give the nodes of a session the same key, so every server of a deployment must share it. Empty: New
	// makes a random one, and keys then match only among the nodes this process makes.
	KeySecret []byte
	// Holder is the path of the sandlot-holder binary (static), copied into nodes to hold their terminals' shells
	// so that they outlive this process (HoldTTY). Empty: shells are not held and end with the server.
	Holder string
}

func (c Config) withDefaults() (Config, error) {
	if c.Image == "" {
		c.Image = "sandlot/node:latest"
	}
	if c.Network == "" {
		c.Network = NetworkAuto
	}
	if !c.SubnetPool.IsValid() {
		c.SubnetPool = DefaultSubnetPool
	}
	if c.SubnetBits == 0 {
		c.SubnetBits = 26
	}
	if c.Memory == 0 {
		c.Memory = 1 << 30
	}
	if c.CPUs == 0 {
		c.CPUs = 1
	}
	if c.Pids == 0 {
		c.Pids = 1024
	}
	if c.Storage == "" {
		c.Storage = StorageVolume
	}
	if c.Disk == 0 {
		c.Disk = 10 << 30
	}
	if c.Isolation == "" {
		c.Isolation = IsolationAuto
	}
	if c.Engine == "" {
		c.Engine = DefaultEngine()
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 60 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if len(c.KeySecret) == 0 {
		c.KeySecret = make([]byte, 32)
		_, _ = rand.Read(c.KeySecret) // never fails (crypto/rand crashes the program instead)
	}
	switch {
	case c.Network != NetworkAuto && c.Network != NetworkBridge && c.Network != NetworkOverlay:
		return c, fmt.Errorf("unknown network kind %q (auto, bridge or overlay)", c.Network)
	case c.Isolation != IsolationAuto && c.Isolation != IsolationUserns && c.Isolation != IsolationCaps &&
		c.Isolation != IsolationPrivileged:
		return c, fmt.Errorf("unknown isolation %q (auto, userns, caps or privileged)", c.Isolation)
	case c.Storage != StorageVolume && c.Storage != StorageTmpfs:
		return c, fmt.Errorf("unknown storage %q (volume or tmpfs)", c.Storage)
	case !c.SubnetPool.Addr().Is4():
		return c, fmt.Errorf("subnet pool %s is not IPv4", c.SubnetPool)
	case c.SubnetBits < c.SubnetPool.Bits() || c.SubnetBits > 29:
		return c, fmt.Errorf("session subnets of /%d do not fit pool %s (between /%d and /29)",
			c.SubnetBits, c.SubnetPool, c.SubnetPool.Bits())
	case c.Memory < 64<<20:
		return c, fmt.Errorf("node memory %d bytes is below the 64 MiB a node's engine needs", c.Memory)
	case c.Disk < 64<<20:
		return c, fmt.Errorf("node disk %d bytes is below the 64 MiB a node's engine needs", c.Disk)
	case c.CPUs < 0 || c.Pids < 64:
		return c, fmt.Errorf("node limits too small: %v CPUs, %d pids (at least 64 pids)", c.CPUs, c.Pids)
	case c.ImageMirror.IsValid() && (!c.ImageMirror.Addr().Is4() || c.ImageMirror.Port() == 0):
		return c, fmt.Errorf("image mirror %s is not an IPv4 address and port", c.ImageMirror)
	case len(c.KeySecret) < 32:
		return c, fmt.Errorf("the ssh key secret has %d bytes, fewer than 32", len(c.KeySecret))
	}
	c.SubnetPool = c.SubnetPool.Masked()
	return c, nil
}
