package instance

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// faulterRole labels the long-lived helper container that applies network faults: one per driver, made on first
// use, removed by Close, and gone by itself (it is removed when it exits) once unused for faulterIdle, should its
// process die without Close or keep it for nothing. The driver makes another whenever the one it had is gone.
const faulterRole = "netfault"

// faulterIdle is how long a netfault helper waits for its next command before it exits.
const faulterIdle = 10 * time.Minute

// faulterScript is the helper's main process: it exits once /tmp/used (touched by every command) is faulterIdle old.
var faulterScript = fmt.Sprintf(`touch /tmp/used
while [ $(( $(date +%%s) - $(stat -c %%Y /tmp/used) )) -lt %d ]; do sleep 5; done`, int(faulterIdle.Seconds()))

// netfault runs a shell script in the netfault helper, with args as $1..., and returns its stdout. It fails, with
// the output, when the script exits non-zero.
func (d *Driver) netfault(ctx context.Context, script string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for attempt := 0; ; attempt++ {
		id, err := d.faulterID(ctx)
		if err != nil {
			return "", err
		}
		out, err := d.execHelper(ctx, id, append([]string{"/bin/sh", "-c", "touch /tmp/used\n" + script, "sh"}, args...))
		if err == nil || attempt > 0 || !(cerrdefs.IsNotFound(err) || cerrdefs.IsConflict(err) ||
			strings.Contains(err.Error(), "is not running")) {
			return out, err
		}
		d.faultMu.Lock() // gone (collected, or its hour is over): make another
		if d.faulter == id {
			d.faulter = ""
		}
		d.faultMu.Unlock()
	}
}

// faulterID is the driver's netfault helper, made if it has none running.
func (d *Driver) faulterID(ctx context.Context) (string, error) {
	d.faultMu.Lock()
	defer d.faultMu.Unlock()
	if d.faulter != "" {
		return d.faulter, nil
	}
	cfg := &container.Config{
		Image:      d.cfg.Image,
		Entrypoint: []string{"/bin/sh", "-c", faulterScript},
		Labels:     d.labels(systemSession, faulterRole),
	}
	// The engine's network namespace (where the session bridges are), the host's PID namespace (to reach a node's
	// namespace from its first process) and what tc, iptables and nsenter need there.
	hc := &container.HostConfig{NetworkMode: "host", PidMode: "host", AutoRemove: true,
		CapAdd: []string{"NET_ADMIN", "NET_RAW", "SYS_ADMIN", "SYS_PTRACE"}}
	if d.isolation == IsolationUserns {
		hc.UsernsMode = "host"
	}
	created, err := d.docker.ContainerCreate(ctx, cfg, hc, nil, nil, "")
	if err != nil {
		return "", fmt.Errorf("create netfault helper: %w", err)
	}
	if err := d.docker.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		_ = d.docker.ContainerRemove(context.WithoutCancel(ctx), created.ID, container.RemoveOptions{Force: true})
		return "", fmt.Errorf("start netfault helper: %w", err)
	}
	d.faulter = created.ID
	return created.ID, nil
}

// removeFaulter removes the driver's netfault helper, if any.
func (d *Driver) removeFaulter() {
	d.faultMu.Lock()
	id := d.faulter
	d.faulter = ""
	d.faultMu.Unlock()
	if id != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.docker.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
	}
}

// execHelper runs cmd in a helper container and returns its stdout, or an error with its output.
func (d *Driver) execHelper(ctx context.Context, id string, cmd []string) (string, error) {
	created, err := d.docker.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd,
		AttachStdout: true, AttachStderr: true})
	if err != nil {
		return "", err
	}
	hijacked, err := d.docker.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", err
	}
	defer hijacked.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, hijacked.Reader); err != nil {
		return "", fmt.Errorf("read helper output: %w", err)
	}
	inspect, err := d.docker.ContainerExecInspect(ctx, created.ID)
	if err != nil {
		return "", fmt.Errorf("helper exit code: %w", err)
	}
	if inspect.ExitCode != 0 {
		return "", fmt.Errorf("helper exited with %d: %s", inspect.ExitCode,
			strings.TrimSpace(stderr.String()+stdout.String()))
	}
	return stdout.String(), nil
}
