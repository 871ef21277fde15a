package instance

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// WatchPorts reports the TCP ports a node listens on for others: its own listeners and the ports its containers
// publish (-p, -P), not loopback-only ones, sshd or swarm's own. It reports at once, then whenever they change
// (the node looks every second: ops/node/rootfs/usr/local/sbin/sandlot-ports), until ctx is done or the node
// stops; it returns why it stopped. The watcher in the node ends with it (see supervise.go).
func (d *Driver) WatchPorts(ctx context.Context, session, name string, report func([]int)) error {
	id, err := d.containerID(ctx, session, name)
	if err != nil {
		return err
	}
	created, err := d.docker.ContainerExecCreate(ctx, id, container.ExecOptions{
		Cmd:         supervised([]string{"/usr/local/sbin/sandlot-ports"}, false, 0, 0, ""),
		AttachStdin: true, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return fmt.Errorf("watch ports of %s in session %s: %w", name, session, err)
	}
	hijacked, err := d.docker.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return fmt.Errorf("watch ports of %s in session %s: %w", name, session, err)
	}
	defer hijacked.Close()
	stop := context.AfterFunc(ctx, func() { hijacked.Close() }) // hangs up: the supervisor ends the watcher
	defer stop()
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, io.Discard, hijacked.Reader)
		pw.CloseWithError(err)
	}()
	defer pr.Close()
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "ports"); ok {
			report(parsePorts(rest))
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("watch ports of %s in session %s: %w", name, session, err)
	}
	return fmt.Errorf("watch ports of %s in session %s: the node stopped", name, session)
}

// parsePorts reads "80 8080" (ascending, as the node prints them); anything that is not a port is skipped.
func parsePorts(s string) []int {
	ports := []int{}
	for _, f := range strings.Fields(s) {
		if p, err := strconv.Atoi(f); err == nil && p > 0 && p < 65536 {
			ports = append(ports, p)
		}
	}
	return ports
}
