package instance

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// systemSession labels the short-lived helper containers the driver runs for itself (the probe, the firewall).
const systemSession = "system"

// runHelper runs cmd in a throwaway container of the node image and returns its stdout. It fails, with the
// output, when the command exits non-zero. The container is removed whatever happens.
func (d *Driver) runHelper(ctx context.Context, role string, cmd, env []string, hc *container.HostConfig) (string, error) {
	cfg := &container.Config{
		Image:      d.cfg.Image,
		Entrypoint: cmd,
		Env:        env,
		Labels:     d.labels(systemSession, role),
	}
	created, err := d.docker.ContainerCreate(ctx, cfg, hc, nil, nil, "")
	if err != nil {
		return "", fmt.Errorf("create %s helper: %w", role, err)
	}
	defer func() {
		// Removal must happen even when ctx is done, or the helper would outlive us.
		_ = d.docker.ContainerRemove(context.WithoutCancel(ctx), created.ID,
			container.RemoveOptions{Force: true, RemoveVolumes: true})
	}()
	waitC, errC := d.docker.ContainerWait(ctx, created.ID, container.WaitConditionNextExit)
	if err := d.docker.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return "", fmt.Errorf("start %s helper: %w", role, err)
	}
	var code int64
	select {
	case w := <-waitC:
		code = w.StatusCode
	case err := <-errC:
		return "", fmt.Errorf("wait for %s helper: %w", role, err)
	}
	logs, err := d.docker.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "", fmt.Errorf("read %s helper output: %w", role, err)
	}
	defer logs.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, logs); err != nil {
		return "", fmt.Errorf("read %s helper output: %w", role, err)
	}
	if code != 0 {
		return "", fmt.Errorf("%s helper exited with %d: %s", role, code, strings.TrimSpace(stderr.String()+stdout.String()))
	}
	return stdout.String(), nil
}
