package instance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"time"
)

// A terminal's short way: its supervisor (sandlot-run --socket) serves the terminal on a unix socket in the node,
// and Sandlot, on the same host, connects to it through the node's root directory as the host sees it,
// /proc/<pid>/root. Keystrokes and output then pass between Sandlot and the supervisor directly, not through the
// engine, its shim and the exec's streams: the way a terminal's echo is fastest. The exec stays the command's
// lifeline (closing it still ends the command). Where the node's files are out of reach (Sandlot in a container
// without the host's PID namespace, an engine on another host), terminals take the engine's way, as before.

// nodeRoot is the node's root directory as this process sees it, if it can.
func (d *Driver) nodeRoot(ctx context.Context, id string) (string, bool) {
	inspect, err := d.docker.ContainerInspect(ctx, id)
	if err != nil || inspect.State == nil || inspect.State.Pid <= 0 {
		return "", false
	}
	root := fmt.Sprintf("/proc/%d/root", inspect.State.Pid)
	if _, err := os.Stat(root + "/run"); err != nil {
		return "", false
	}
	return root, true
}

// shortWaySocket is a fresh path in the node for one terminal's socket.
func shortWaySocket() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "/run/sandlot/tty/" + hex.EncodeToString(b) + ".sock"
}

// dialShortWay connects to a terminal's socket (a supervisor's, or a holder's), waiting for it to be made (a few
// milliseconds after the exec starts; at most 2 s). The path is resolved inside the node's root (dialInNode): a
// learner who swaps it for a symlink reaches nothing of the host's.
func dialShortWay(ctx context.Context, root, path string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for {
		c, err := dialInNode(ctx, root, path)
		if err == nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the terminal's socket %s: %w", path, err)
		case <-time.After(3 * time.Millisecond):
		}
	}
}
