package instance

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
)

// LiveFunc says whether a session is still alive. GC removes what belongs to sessions it says are not.
type LiveFunc func(ctx context.Context, session string) (bool, error)

// GCReport is what one collection removed.
type GCReport struct {
	Sessions   []string // the dead sessions whose objects were removed
	Containers int
	Networks   int
	Volumes    int
	Faults     int // sessions whose network faults were removed
}

// helperMaxAge is how old a helper container must be before GC takes it for a leftover of a killed process.
const helperMaxAge = 5 * time.Minute

// DeleteSession removes every container, network and volume labelled for the session. Objects already gone are
// not an error.
func (d *Driver) DeleteSession(ctx context.Context, session string) error {
	if err := checkSession(session); err != nil {
		return err
	}
	_, err := d.deleteSession(ctx, session)
	return err
}

func (d *Driver) deleteSession(ctx context.Context, session string) (GCReport, error) {
	var r GCReport
	// Faults go first, while the nodes' ports still say where they were. A driver that has never applied faults
	// leaves any another process made to the garbage collector.
	if d.hasFaulter() {
		if err := d.ClearFaults(ctx, session); err != nil {
			d.log.Warn("clear network faults", "session", session, "err", err)
		}
	}
	byLabel := filters.NewArgs(filters.Arg("label", LabelSession+"="+session))
	containers, err := d.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: byLabel})
	if err != nil {
		return r, fmt.Errorf("list containers of session %s: %w", session, err)
	}
	var errs []error
	removeContainers := func(containers []container.Summary) {
		for _, c := range containers {
			if c.Labels[LabelSession] != session {
				continue
			}
			err := d.removeContainer(ctx, c.ID)
			switch {
			case err == nil:
				r.Containers++
			case !cerrdefs.IsNotFound(err):
				errs = append(errs, fmt.Errorf("remove container %s: %w", c.ID[:12], err))
			}
		}
	}
	removeContainers(containers)
	networks, err := d.docker.NetworkList(ctx, network.ListOptions{Filters: byLabel})
	if err != nil {
		return r, fmt.Errorf("list networks of session %s: %w", session, err)
	}
	for _, n := range networks {
		if n.Labels[LabelSession] != session {
			continue
		}
		err := d.removeNetwork(ctx, n.ID)
		switch {
		case err == nil:
			r.Networks++
		case !cerrdefs.IsNotFound(err):
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
		}
	}
	volumes, err := d.docker.VolumeList(ctx, volume.ListOptions{Filters: byLabel})
	if err != nil {
		return r, fmt.Errorf("list volumes of session %s: %w", session, err)
	}
	for _, v := range volumes.Volumes {
		if v.Labels[LabelSession] != session {
			continue
		}
		err := d.docker.VolumeRemove(ctx, v.Name, true)
		// A container the engine was still making when it was listed (its maker killed midway) holds the volume:
		// remove what the session has now, and try again.
		for attempt := 0; err != nil && strings.Contains(err.Error(), "volume is in use") && attempt < 20; attempt++ {
			if now, lerr := d.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: byLabel}); lerr == nil {
				removeContainers(now)
			}
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
			err = d.docker.VolumeRemove(ctx, v.Name, true)
		}
		switch {
		case err == nil:
			r.Volumes++
		case !cerrdefs.IsNotFound(err):
			errs = append(errs, fmt.Errorf("remove volume %s: %w", v.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return r, fmt.Errorf("delete session %s: %w", session, err)
	}
	return r, nil
}

// removeContainer removes a container and its anonymous volumes. When another caller is removing it already (GC
// and a session's ending may meet), it waits for that removal rather than failing.
func (d *Driver) removeContainer(ctx context.Context, id string) error {
	err := d.docker.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err == nil || !strings.Contains(err.Error(), "already in progress") {
		return err
	}
	for range 120 {
		if _, ierr := d.docker.ContainerInspect(ctx, id); cerrdefs.IsNotFound(ierr) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return err
}

// GC removes the containers, networks and volumes of every session that live says is dead, and helper
// containers left by a process that was killed while running one. Objects without the sandlot.session label, or
// of another owner (when the driver has one), are never looked at. A session whose liveness cannot be told is left alone and reported in the error.
func (d *Driver) GC(ctx context.Context, live LiveFunc) (GCReport, error) {
	var report GCReport
	sessions, err := d.labelledSessions(ctx)
	if err != nil {
		return report, err
	}
	var errs []error
	for _, s := range sessions {
		if s == systemSession {
			n, err := d.collectHelpers(ctx)
			report.Containers += n
			errs = append(errs, err)
			continue
		}
		alive, err := live(ctx, s)
		if err != nil {
			errs = append(errs, fmt.Errorf("is session %s alive: %w", s, err))
			continue
		}
		if alive {
			continue
		}
		r, err := d.deleteSession(ctx, s)
		report.Sessions = append(report.Sessions, s)
		report.Containers += r.Containers
		report.Networks += r.Networks
		report.Volumes += r.Volumes
		errs = append(errs, err)
	}
	if d.network == NetworkBridge {
		n, err := d.collectFaults(ctx, live)
		report.Faults += n
		errs = append(errs, err)
	}
	if report.Containers+report.Networks+report.Volumes+report.Faults > 0 {
		d.log.Info("collected garbage", "sessions", report.Sessions, "containers", report.Containers,
			"networks", report.Networks, "volumes", report.Volumes, "faults", report.Faults)
	}
	return report, errors.Join(errs...)
}

// labelledSessions are the session ids found on any container, network or volume, sorted.
func (d *Driver) labelledSessions(ctx context.Context) ([]string, error) {
	hasLabel := d.ownedBy(filters.NewArgs(filters.Arg("label", LabelSession)))
	seen := map[string]bool{}
	containers, err := d.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: hasLabel})
	if err != nil {
		return nil, fmt.Errorf("list labelled containers: %w", err)
	}
	for _, c := range containers {
		seen[c.Labels[LabelSession]] = true
	}
	networks, err := d.docker.NetworkList(ctx, network.ListOptions{Filters: hasLabel})
	if err != nil {
		return nil, fmt.Errorf("list labelled networks: %w", err)
	}
	for _, n := range networks {
		seen[n.Labels[LabelSession]] = true
	}
	volumes, err := d.docker.VolumeList(ctx, volume.ListOptions{Filters: hasLabel})
	if err != nil {
		return nil, fmt.Errorf("list labelled volumes: %w", err)
	}
	for _, v := range volumes.Volumes {
		seen[v.Labels[LabelSession]] = true
	}
	var out []string
	for s := range seen {
		if s == systemSession || checkSession(s) == nil {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (d *Driver) collectHelpers(ctx context.Context) (int, error) {
	f := d.ownedBy(filters.NewArgs(filters.Arg("label", LabelSession+"="+systemSession)))
	helpers, err := d.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return 0, fmt.Errorf("list helper containers: %w", err)
	}
	removed := 0
	for _, h := range helpers {
		if h.Labels[LabelInstance] == faulterRole && h.State == "running" {
			continue // in use, or soon gone by itself (faulterIdle)
		}
		if time.Since(time.Unix(h.Created, 0)) < helperMaxAge {
			continue // may still be in use by a running Sandlot
		}
		if err := d.docker.ContainerRemove(ctx, h.ID, container.RemoveOptions{Force: true}); err == nil {
			removed++
		}
	}
	return removed, nil
}

// removeNetwork removes a network, waiting a little for the engine to release the endpoints of containers that
// were just removed (overlay networks release them asynchronously).
func (d *Driver) removeNetwork(ctx context.Context, id string) error {
	for attempt := 0; ; attempt++ {
		err := d.docker.NetworkRemove(ctx, id)
		if err == nil || attempt == 20 || !strings.Contains(err.Error(), "active endpoints") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}
