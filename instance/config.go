package instance

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/netip"
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

// Security is how much of the host a node's container may use.
type Security string

// The security profiles. SecurityCaps is every capability but a few a lab never needs, no seccomp or AppArmor
// confinement, and a device allowlist without block devices. SecurityPrivileged is Docker's --privileged: every
// host device included. SecurityAuto (the default) uses caps where the engine runs it and privileged otherwise.
const (
	SecurityAuto       Security = "auto"
	SecurityCaps       Security = "caps"
	SecurityPrivileged Security = "privileged"
)

// Storage is what backs a node's /var/lib/docker.
type Storage string

// The storage kinds. StorageVolume is an anonymous Docker volume (no size limit: the engine's local volume driver
// cannot enforce one); StorageTmpfs is a tmpfs of DiskSize bytes, which counts against the node's memory.
const (
	StorageVolume Storage = "volume"
	StorageTmpfs  Storage = "tmpfs"
)

// DefaultSubnetPool is where session subnets come from: 198.18.0.0/15, reserved for benchmarking (RFC 2544) and
// so never routed, and clear of the ranges tutorials use inside labs (172.17-31/16, 10.0.0.0/8, 192.168.0.0/16).
var DefaultSubnetPool = netip.MustParsePrefix("198.18.0.0/15")

// Config says how nodes are made. The zero value is usable: every field has a default.
type Config struct {
	Image        string        // node image; default "sandlot/node:latest"
	Network      NetworkKind   // default NetworkAuto
	SubnetPool   netip.Prefix  // default DefaultSubnetPool
	SubnetBits   int           // prefix length of one session network; default 26 (52 nodes, 2048 sessions)
	Memory       int64         // memory limit of a node in bytes, inner containers included; default 1 GiB
	CPUs         float64       // CPU limit of a node; default 1
	Pids         int64         // process limit of a node, inner containers included; default 1024
	Storage      Storage       // default StorageVolume
	DiskSize     int64         // size of /var/lib/docker with StorageTmpfs; default 2 GiB
	Security     Security      // default SecurityAuto
	ReadyTimeout time.Duration // how long a node may take to be ready; default 60 s
	Logger       *slog.Logger  // default slog.Default()
	// Owner names the deployment: everything made carries it as sandlot.owner, and GC looks only at objects
	// with the same owner, so that two deployments on one engine never collect each other's nodes. Empty: make
	// objects without an owner and collect regardless of owner (the admin `sandlot gc`).
	Owner string
	// KeySecret is what each session's ssh key pair is derived from (at least 32 bytes): drivers with the same
	// secret give the nodes of a session the same key, so every server of a deployment must share it. Empty: New
	// makes a random one, and keys then match only among the nodes this process makes.
	KeySecret []byte
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
	if c.DiskSize == 0 {
		c.DiskSize = 2 << 30
	}
	if c.Security == "" {
		c.Security = SecurityAuto
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
	case c.Security != SecurityAuto && c.Security != SecurityCaps && c.Security != SecurityPrivileged:
		return c, fmt.Errorf("unknown security profile %q (auto, caps or privileged)", c.Security)
	case c.Storage != StorageVolume && c.Storage != StorageTmpfs:
		return c, fmt.Errorf("unknown storage %q (volume or tmpfs)", c.Storage)
	case !c.SubnetPool.Addr().Is4():
		return c, fmt.Errorf("subnet pool %s is not IPv4", c.SubnetPool)
	case c.SubnetBits < c.SubnetPool.Bits() || c.SubnetBits > 29:
		return c, fmt.Errorf("session subnets of /%d do not fit pool %s (between /%d and /29)",
			c.SubnetBits, c.SubnetPool, c.SubnetPool.Bits())
	case c.Memory < 64<<20:
		return c, fmt.Errorf("node memory %d bytes is below the 64 MiB a node's engine needs", c.Memory)
	case c.CPUs < 0 || c.Pids < 64:
		return c, fmt.Errorf("node limits too small: %v CPUs, %d pids (at least 64 pids)", c.CPUs, c.Pids)
	case len(c.KeySecret) < 32:
		return c, fmt.Errorf("the ssh key secret has %d bytes, fewer than 32", len(c.KeySecret))
	}
	c.SubnetPool = c.SubnetPool.Masked()
	return c, nil
}
