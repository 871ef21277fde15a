package instance

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/pkg/stdcopy"
)

// Instance is one node of a session as the engine sees it.
type Instance struct {
	Session     string
	Name        string // node1, node2, ...
	Hostname    string
	IP          netip.Addr // the node's address on the session network
	Status      string     // the container state: created, running, exited, restarting, ...
	ContainerID string
	Created     time.Time
}

// Spec says what node to make. Name is required (nodeN); Hostname defaults to Name.
type Spec struct {
	Name     string
	Hostname string
	// Started, if set, is called once while Create waits for the node's engine, as soon as the node can take
	// shells: a caller may open the first one then, so that it is waiting when the engine is ready.
	Started func()
	// Preload are image references (busybox:1.36, registry.example/team/app:2) that the node's own engine pulls,
	// all at once, before the node counts as ready; through the image mirror when the driver has one. A pull that
	// fails or takes more than two thirds of the ready timeout is a warning in the node's log, not a failure: the
	// node is ready without that image. A node pulls them at its first boot only.
	Preload []string
}

// preloadPattern is what a preloaded image reference may look like: the characters of Docker's reference grammar,
// starting with a letter or digit (so that it never reads as an option).
var preloadPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$`)

func checkPreload(refs []string) error {
	for _, ref := range refs {
		if !preloadPattern.MatchString(ref) {
			return fmt.Errorf("%w: image reference %q to preload", ErrInvalid, ref)
		}
	}
	return nil
}

// The lines the node's entrypoint prints: one of them ends every boot.
const (
	readyLine   = "sandlot-node: ready"
	startedLine = "sandlot-node: started"
	errorLine   = "sandlot-node: error: "
)

// Create makes a node in the session's network (which must exist) and returns when its inner Docker engine
// answers. A node that fails to become ready is removed, and the error carries the end of its log. Root on the
// node has the session's ssh key, so it can ssh to the other nodes of the session, and they to it.
func (d *Driver) Create(ctx context.Context, session string, spec Spec) (Instance, error) {
	if err := checkSession(session); err != nil {
		return Instance{}, err
	}
	index, err := nodeIndex(spec.Name)
	if err != nil {
		return Instance{}, err
	}
	if spec.Hostname == "" {
		spec.Hostname = spec.Name
	}
	if err := checkHostname(spec.Hostname); err != nil {
		return Instance{}, err
	}
	if err := checkPreload(spec.Preload); err != nil {
		return Instance{}, err
	}
	net, err := d.sessionNetwork(ctx, session)
	if err != nil {
		return Instance{}, err
	}
	ip, err := nodeAddr(net.Subnet, index)
	if err != nil {
		return Instance{}, err
	}
	cfg, hc, nc := d.nodeConfig(session, spec, net, ip)
	created, err := d.docker.ContainerCreate(ctx, cfg, hc, nc, nil, containerName(session, spec.Name))
	if err != nil {
		if cerrdefs.IsConflict(err) {
			return Instance{}, fmt.Errorf("%w: %s in session %s", ErrExists, spec.Name, session)
		}
		return Instance{}, fmt.Errorf("create %s in session %s: %w", spec.Name, session, err)
	}
	// The session's ssh keys are copied in while the node boots, not before: a copy takes the engine some 60 ms
	// (it unpacks in a chroot of its own), which before the start would add to every node's time to ready.
	copyKeys := func(ctx context.Context) error { return d.copySSHKeys(ctx, created.ID, session) }
	if err := d.startAndWait(ctx, created.ID, spec.Started, copyKeys); err != nil {
		// Removal must happen even when ctx is done: a half-made node is worse than none.
		_ = d.docker.ContainerRemove(context.WithoutCancel(ctx), created.ID,
			container.RemoveOptions{Force: true, RemoveVolumes: true})
		return Instance{}, fmt.Errorf("%s in session %s: %w", spec.Name, session, err)
	}
	return Instance{Session: session, Name: spec.Name, Hostname: spec.Hostname, IP: ip, Status: "running",
		ContainerID: created.ID, Created: time.Now()}, nil
}

func (d *Driver) nodeConfig(session string, spec Spec, net Network, ip netip.Addr) (
	*container.Config, *container.HostConfig, *network.NetworkingConfig) {
	labels := d.labels(session, spec.Name)
	containerLabels := d.labels(session, spec.Name)
	containerLabels[labelHostname] = spec.Hostname
	cfg := &container.Config{
		Image:    d.cfg.Image,
		Hostname: spec.Hostname,
		Labels:   containerLabels,
		Env: []string{
			"SANDLOT_NODE=" + spec.Name,
			"SANDLOT_SESSION=" + session,
			"SANDLOT_IP=" + ip.String(),
			// Registries on the session's network (node1:5000) need no TLS; nothing else is exempt.
			"SANDLOT_INSECURE_REGISTRIES=" + net.Subnet.Masked().String(),
		},
	}
	if d.cfg.ImageMirror.IsValid() {
		cfg.Env = append(cfg.Env, "SANDLOT_REGISTRY_MIRROR=http://"+d.cfg.ImageMirror.String())
	}
	if len(spec.Preload) > 0 {
		cfg.Env = append(cfg.Env, "SANDLOT_PRELOAD="+strings.Join(spec.Preload, " "),
			"SANDLOT_PRELOAD_TIMEOUT="+strconv.Itoa(max(1, int(d.cfg.ReadyTimeout*2/3/time.Second))))
	}
	if d.nodeDisks {
		cfg.Env = append(cfg.Env, diskEnv+"="+strconv.FormatInt(d.cfg.Disk, 10))
	}
	pids := d.cfg.Pids
	hc := &container.HostConfig{
		NetworkMode: container.NetworkMode(net.Name),
		Resources: container.Resources{
			Memory:     d.cfg.Memory,
			MemorySwap: d.cfg.Memory, // no swap beyond the limit
			NanoCPUs:   int64(d.cfg.CPUs * 1e9),
			PidsLimit:  &pids,
		},
		// The host's OOM killer should pick a node before Sandlot, Redis or the engine.
		OomScoreAdj: 500,
		// /run is fresh at every boot, so a restarted node's engine finds no stale pid files or sockets.
		Tmpfs: map[string]string{"/run": "rw,nosuid,nodev,exec,size=64m"},
	}
	applyIsolation(hc, d.isolation, d.seccomp)
	// /var/lib/docker must not be on the container's overlay root: the inner overlay2 cannot stack on overlay.
	if d.cfg.Storage == StorageTmpfs {
		hc.Mounts = []mount.Mount{{Type: mount.TypeTmpfs, Target: "/var/lib/docker",
			TmpfsOptions: &mount.TmpfsOptions{SizeBytes: d.cfg.Disk}}}
	} else {
		hc.Mounts = []mount.Mount{{Type: mount.TypeVolume, Target: "/var/lib/docker",
			VolumeOptions: &mount.VolumeOptions{Labels: labels}}}
	}
	nc := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		net.Name: {
			IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: ip.String()},
			Aliases:    []string{spec.Hostname, spec.Name},
		},
	}}
	return cfg, hc, nc
}

// startAndWait starts a container and waits for its entrypoint to say it is ready. beside, if set, runs once the
// container has started, while its boot is awaited; the container counts as ready only when beside is done too.
func (d *Driver) startAndWait(ctx context.Context, id string, started func(), beside func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.ReadyTimeout)
	defer cancel()
	if err := d.docker.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	besideDone := make(chan error, 1)
	if beside != nil {
		go func() { besideDone <- beside(ctx) }()
	} else {
		besideDone <- nil
	}
	if err := d.waitReady(ctx, id, started); err != nil {
		cancel()
		<-besideDone
		return err
	}
	return <-besideDone
}

// waitReady waits for a started container's entrypoint to say it is ready. Output is followed from the moment the
// container started, so the ready line of an earlier boot is not mistaken for this one's.
func (d *Driver) waitReady(ctx context.Context, id string, started func()) error {
	inspect, err := d.docker.ContainerInspect(ctx, id)
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	logs, err := d.docker.ContainerLogs(ctx, id, container.LogsOptions{
		ShowStdout: true, ShowStderr: true, Follow: true, Since: inspect.State.StartedAt})
	if err != nil {
		return fmt.Errorf("follow output: %w", err)
	}
	defer logs.Close()
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, pw, logs)
		pw.CloseWithError(err)
	}()
	defer pr.Close()
	var tail []string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == readyLine:
			return nil
		case line == startedLine && started != nil:
			started()
		case strings.HasPrefix(line, errorLine):
			return fmt.Errorf("%w: %s", ErrNotReady, strings.TrimPrefix(line, errorLine))
		}
		if tail = append(tail, line); len(tail) > 10 {
			tail = tail[1:]
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w within %s: %v; last output: %q", ErrNotReady, d.cfg.ReadyTimeout, ctx.Err(), tail)
	}
	return fmt.Errorf("%w: the node stopped; last output: %q", ErrNotReady, tail)
}

// Start starts a stopped node and waits until it is ready again. Its inner images and containers survive.
func (d *Driver) Start(ctx context.Context, session, name string) error {
	id, err := d.containerID(ctx, session, name)
	if err != nil {
		return err
	}
	return d.startAndWait(ctx, id, nil, nil)
}

// Stop stops a node (its engine gets 10 s to shut down cleanly) without removing it.
func (d *Driver) Stop(ctx context.Context, session, name string) error {
	id, err := d.containerID(ctx, session, name)
	if err != nil {
		return err
	}
	d.forgetLink(id)
	timeout := 10
	if err := d.docker.ContainerStop(ctx, id, container.StopOptions{Timeout: &timeout}); err != nil {
		return fmt.Errorf("stop %s in session %s: %w", name, session, err)
	}
	return nil
}

// Restart stops and starts a node and waits until it is ready.
func (d *Driver) Restart(ctx context.Context, session, name string) error {
	if err := d.Stop(ctx, session, name); err != nil {
		return err
	}
	return d.Start(ctx, session, name)
}

// Delete removes a node and its storage.
func (d *Driver) Delete(ctx context.Context, session, name string) error {
	id, err := d.containerID(ctx, session, name)
	if err != nil {
		return err
	}
	d.forgetLink(id)
	err = d.docker.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove %s in session %s: %w", name, session, err)
	}
	return nil
}

// Get returns one node of a session.
func (d *Driver) Get(ctx context.Context, session, name string) (Instance, error) {
	list, err := d.list(ctx, session, name)
	if err != nil {
		return Instance{}, err
	}
	if len(list) == 0 {
		return Instance{}, fmt.Errorf("%w: %s in session %s", ErrNotFound, name, session)
	}
	return list[0], nil
}

// List returns the nodes of a session, in the order of their names' numbers.
func (d *Driver) List(ctx context.Context, session string) ([]Instance, error) {
	if err := checkSession(session); err != nil {
		return nil, err
	}
	return d.list(ctx, session, "")
}

func (d *Driver) list(ctx context.Context, session, name string) ([]Instance, error) {
	f := filters.NewArgs(filters.Arg("label", LabelSession+"="+session))
	if name != "" {
		if _, err := nodeIndex(name); err != nil {
			return nil, err
		}
		f.Add("label", LabelInstance+"="+name)
	}
	containers, err := d.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list nodes of session %s: %w", session, err)
	}
	var out []Instance
	for _, c := range containers {
		in := Instance{Session: session, Name: c.Labels[LabelInstance], Hostname: c.Labels[labelHostname],
			Status: c.State, ContainerID: c.ID, Created: time.Unix(c.Created, 0)}
		if _, err := nodeIndex(in.Name); err != nil || c.Labels[LabelSession] != session {
			continue
		}
		if c.NetworkSettings != nil {
			if ep := c.NetworkSettings.Networks[networkName(session)]; ep != nil {
				if ep.IPAMConfig != nil {
					in.IP, _ = netip.ParseAddr(ep.IPAMConfig.IPv4Address)
				}
			}
		}
		if in.Hostname == "" {
			in.Hostname = in.Name
		}
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool {
		a, _ := nodeIndex(out[i].Name)
		b, _ := nodeIndex(out[j].Name)
		return a < b
	})
	return out, nil
}

func (d *Driver) containerID(ctx context.Context, session, name string) (string, error) {
	if err := checkSession(session); err != nil {
		return "", err
	}
	in, err := d.Get(ctx, session, name)
	if err != nil {
		return "", err
	}
	return in.ContainerID, nil
}
