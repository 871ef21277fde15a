// Package memnodes is an in-memory session.Nodes: nodes that exist only as entries in a map, for testing the
// service and the HTTP layer without an engine, in milliseconds. It checks what instance checks of its arguments
// (hostnames, paths) and answers with the same errors; it runs nothing. Commands answer what the Answer function
// says; terminals echo what is typed; files are kept per node.
package memnodes

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sandlot/sandlot/instance"
	"github.com/sandlot/sandlot/session"
)

// Nodes is an in-memory session.Nodes. The zero value is not usable: call New.
type Nodes struct {
	// IP is the address every node gets (say 127.0.0.1, so that the lab proxy reaches a test server).
	IP netip.Addr
	// Answer, if set, answers commands (but a swarm init, which answers join tokens); by default every command
	// succeeds with no output.
	Answer func(ctx context.Context, session, name string, cmd []string) (instance.ExecResult, error)

	mu       sync.Mutex
	sessions map[string]map[string]*node // session -> name -> node
	networks map[string]bool
	faults   map[string][]byte // session -> note
}

type node struct {
	in      instance.Instance
	files   map[string][]byte
	preload []string
}

// New returns Nodes whose nodes all have the address ip.
func New(ip netip.Addr) *Nodes {
	return &Nodes{IP: ip, sessions: map[string]map[string]*node{}, networks: map[string]bool{}}
}

var _ session.Nodes = (*Nodes)(nil)

var hostnameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func (n *Nodes) CreateNetwork(_ context.Context, s string) (instance.Network, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.networks[s] = true
	return instance.Network{Session: s, Name: "sandlot-" + s, Kind: instance.NetworkBridge,
		Subnet: netip.MustParsePrefix("198.18.0.0/26"), Gateway: netip.MustParseAddr("198.18.0.1")}, nil
}

func (n *Nodes) Create(_ context.Context, s string, spec instance.Spec) (instance.Instance, error) {
	if spec.Hostname == "" {
		spec.Hostname = spec.Name
	}
	if !hostnameRE.MatchString(spec.Hostname) {
		return instance.Instance{}, fmt.Errorf("%w: hostname %q", instance.ErrInvalid, spec.Hostname)
	}
	n.mu.Lock()
	if !n.networks[s] {
		n.mu.Unlock()
		return instance.Instance{}, fmt.Errorf("%w: network of session %s", instance.ErrNotFound, s)
	}
	if n.sessions[s] == nil {
		n.sessions[s] = map[string]*node{}
	}
	if _, ok := n.sessions[s][spec.Name]; ok {
		n.mu.Unlock()
		return instance.Instance{}, fmt.Errorf("%w: %s in session %s", instance.ErrExists, spec.Name, s)
	}
	in := instance.Instance{Session: s, Name: spec.Name, Hostname: spec.Hostname, IP: n.IP, Status: "running",
		ContainerID: "mem-" + s + "-" + spec.Name, Created: time.Now()}
	n.sessions[s][spec.Name] = &node{in: in, files: map[string][]byte{}, preload: spec.Preload}
	n.mu.Unlock()
	if spec.Started != nil {
		spec.Started()
	}
	return in, nil
}

// Preloaded is what the node was made to have in its engine (instance.Spec.Preload).
func (n *Nodes) Preloaded(session, name string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if nd := n.sessions[session][name]; nd != nil {
		return nd.preload
	}
	return nil
}

// node finds a node; running says it must be running.
func (n *Nodes) node(s, name string, running bool) (*node, error) {
	nd := n.sessions[s][name]
	switch {
	case nd == nil:
		return nil, fmt.Errorf("%w: %s in session %s", instance.ErrNotFound, name, s)
	case running && nd.in.Status != "running":
		return nil, fmt.Errorf("%w: %s in session %s", instance.ErrNotRunning, name, s)
	}
	return nd, nil
}

func (n *Nodes) setStatus(s, name, status string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	nd, err := n.node(s, name, false)
	if err == nil {
		nd.in.Status = status
	}
	return err
}

func (n *Nodes) Start(_ context.Context, s, name string) error {
	return n.setStatus(s, name, "running")
}
func (n *Nodes) Stop(_ context.Context, s, name string) error { return n.setStatus(s, name, "exited") }
func (n *Nodes) Restart(_ context.Context, s, name string) error {
	return n.setStatus(s, name, "running")
}

func (n *Nodes) Delete(_ context.Context, s, name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, err := n.node(s, name, false); err != nil {
		return err
	}
	delete(n.sessions[s], name)
	return nil
}

func (n *Nodes) List(_ context.Context, s string) ([]instance.Instance, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []instance.Instance
	for _, nd := range n.sessions[s] {
		out = append(out, nd.in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (n *Nodes) DeleteSession(_ context.Context, s string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.sessions, s)
	delete(n.networks, s)
	delete(n.faults, s)
	return nil
}

func (n *Nodes) GC(ctx context.Context, live instance.LiveFunc) (instance.GCReport, error) {
	n.mu.Lock()
	var ids []string
	for s := range n.networks {
		ids = append(ids, s)
	}
	n.mu.Unlock()
	var r instance.GCReport
	for _, s := range ids {
		if ok, err := live(ctx, s); err == nil && !ok {
			_ = n.DeleteSession(ctx, s)
			r.Sessions = append(r.Sessions, s)
		}
	}
	return r, nil
}

// Count is how many nodes exist, in every session.
func (n *Nodes) Count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, nodes := range n.sessions {
		c += len(nodes)
	}
	return c
}

func (n *Nodes) Exec(ctx context.Context, s, name string, cmd []string, opts instance.ExecOptions) (instance.ExecResult, error) {
	n.mu.Lock()
	_, err := n.node(s, name, true)
	n.mu.Unlock()
	if err != nil {
		return instance.ExecResult{}, err
	}
	if len(cmd) == 3 && strings.HasPrefix(cmd[2], "docker swarm init") {
		// A swarm forms at once: the init answers with the join tokens asked for after it (see session/swarm).
		return instance.ExecResult{Stdout: []byte("SWMTKN-manager\nSWMTKN-worker\n")}, nil
	}
	if n.Answer == nil {
		return instance.ExecResult{}, nil
	}
	r, err := n.Answer(ctx, s, name, cmd)
	limit := opts.MaxOutput
	if limit <= 0 {
		limit = instance.DefaultMaxOutput
	}
	for _, b := range []*[]byte{&r.Stdout, &r.Stderr} {
		if len(*b) > limit {
			*b, r.Truncated = (*b)[:limit], true
		}
	}
	return r, err
}

func (n *Nodes) OpenTTY(_ context.Context, s, name string, _ instance.TTYOptions) (session.TTY, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, err := n.node(s, name, true); err != nil {
		return nil, err
	}
	return newEcho(), nil
}

func (n *Nodes) WatchPorts(ctx context.Context, s, name string, report func([]int)) error {
	report([]int{})
	<-ctx.Done()
	return ctx.Err()
}

func (n *Nodes) WriteFile(_ context.Context, s, name, p string, _ fs.FileMode, size int64, r io.Reader) error {
	p, err := instance.CleanPath(p)
	if err != nil {
		return err
	}
	data, err := io.ReadAll(io.LimitReader(r, size+1))
	if err != nil {
		return err
	}
	if int64(len(data)) != size {
		return fmt.Errorf("%w: %d bytes announced, %d sent", instance.ErrInvalid, size, len(data))
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	nd, err := n.node(s, name, true)
	if err != nil {
		return err
	}
	nd.files[p] = data
	return nil
}

func (n *Nodes) ReadFile(_ context.Context, s, name, p string) (io.ReadCloser, instance.FileInfo, error) {
	p, err := instance.CleanPath(p)
	if err != nil {
		return nil, instance.FileInfo{}, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	nd, err := n.node(s, name, false)
	if err != nil {
		return nil, instance.FileInfo{}, err
	}
	data, ok := nd.files[p]
	if !ok {
		return nil, instance.FileInfo{}, fmt.Errorf("%w: %s in %s", instance.ErrNotFound, p, name)
	}
	return io.NopCloser(bytes.NewReader(data)), instance.FileInfo{Path: p, Size: int64(len(data)), Mode: 0o644,
		ModTime: time.Now()}, nil
}

func (n *Nodes) ListDir(_ context.Context, s, name, p string, _, _ int) ([]instance.FileEntry, bool, error) {
	p, err := instance.CleanPath(p)
	if err != nil {
		return nil, false, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	nd, err := n.node(s, name, true)
	if err != nil {
		return nil, false, err
	}
	out := []instance.FileEntry{}
	for path, data := range nd.files {
		if strings.HasPrefix(path, strings.TrimSuffix(p, "/")+"/") {
			out = append(out, instance.FileEntry{Path: path, Type: "file", Size: int64(len(data))})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, false, nil
}

func (n *Nodes) Ping(context.Context) error { return nil }

func (n *Nodes) Limits() instance.Limits {
	return instance.Limits{Memory: 1 << 30, CPUs: 1, Pids: 1024, Disk: 10 << 30}
}

// echo is a terminal that prints back what is typed, until closed.
type echo struct {
	mu     sync.Mutex
	cond   *sync.Cond
	buf    bytes.Buffer
	closed bool
}

func newEcho() *echo {
	e := &echo{}
	e.cond = sync.NewCond(&e.mu)
	return e
}

func (e *echo) Read(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for e.buf.Len() == 0 && !e.closed {
		e.cond.Wait()
	}
	if e.buf.Len() == 0 {
		return 0, io.EOF
	}
	return e.buf.Read(p)
}

func (e *echo) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return 0, io.ErrClosedPipe
	}
	e.buf.Write(p)
	e.cond.Broadcast()
	return len(p), nil
}

func (e *echo) Close() error {
	e.mu.Lock()
	e.closed = true
	e.cond.Broadcast()
	e.mu.Unlock()
	return nil
}

func (e *echo) Resize(context.Context, uint, uint) error { return nil }

func (e *echo) ExitCode(context.Context) (int, bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return 0, e.closed, nil
}

// SetFaults keeps the note, after the checks instance makes of the faults' nodes; it applies nothing. The kernel
// it pretends to have lacks sch_netem, like the machines Sandlot is tested on.
func (n *Nodes) SetFaults(_ context.Context, s string, faults []instance.LinkFault, note []byte) error {
	support := n.FaultSupport()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, f := range faults {
		if m := support.Missing(f); m != "" {
			return fmt.Errorf("%w: %s", instance.ErrKernelFeature, m)
		}
		for _, name := range []string{f.From, f.To} {
			if n.sessions[s][name] == nil {
				return fmt.Errorf("%w: %s in session %s", instance.ErrNotFound, name, s)
			}
		}
	}
	if n.faults == nil {
		n.faults = map[string][]byte{}
	}
	if len(faults) == 0 && len(note) == 0 {
		delete(n.faults, s)
		return nil
	}
	n.faults[s] = append([]byte(nil), note...)
	return nil
}

// Faults returns the note SetFaults kept.
func (n *Nodes) Faults(_ context.Context, s string) ([]byte, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.faults[s], nil
}

// ClearFaults forgets the session's note.
func (n *Nodes) ClearFaults(_ context.Context, s string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.faults, s)
	return nil
}

// FaultSupport is a kernel without sch_netem.
func (n *Nodes) FaultSupport() instance.FaultSupport {
	return instance.FaultSupport{Filter: true, Shape: true}
}
