package testengine

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// mirrorAddr is where Sandlot serves the image cache to nodes on the node engine: instance.NodeEngineHostAddr
// (which this package cannot import) at port 5000, as ops/node-engine opens it.
var mirrorAddr = netip.AddrPortFrom(netip.MustParseAddr("169.254.213.1"), 5000)

// mirrorLock is the lock file MirrorPort takes.
const mirrorLock = "/run/sandlot/test-mirror-port.lock"

// MirrorPort returns the image cache's address for nodes (169.254.213.1:5000) once t may bind it: it holds an
// exclusive lock on /run/sandlot/test-mirror-port.lock until t's cleanup, so that tests of different packages running at once (go test
// ./...) never listen there at the same time. It waits for a test holding the lock. It skips t when 169.254.213.1
// is not an address of this host (the node engine is not running).
func MirrorPort(t testing.TB) netip.AddrPort {
	t.Helper()
	if !hostHas(mirrorAddr.Addr()) {
		t.Skipf("%s is not an address of this host: the image cache's tests need the node engine (ops/node-engine start)",
			mirrorAddr.Addr())
	}
	if err := os.MkdirAll(filepath.Dir(mirrorLock), 0o755); err != nil {
		t.Fatalf("lock for the mirror port: %v", err)
	}
	f, err := os.OpenFile(mirrorLock, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatalf("lock for the mirror port: %v", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		t.Fatalf("lock %s: %v", mirrorLock, err)
	}
	// Closing the file releases the lock, also when the test process dies.
	t.Cleanup(func() { f.Close() })
	return mirrorAddr
}

// hostHas says whether addr is an address of one of this host's interfaces.
func hostHas(addr netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if got, ok := netip.AddrFromSlice(ipn.IP); ok && got.Unmap() == addr {
				return true
			}
		}
	}
	return false
}
