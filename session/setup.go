package session

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sandlot/sandlot/instance"
	"github.com/sandlot/sandlot/session/swarm"
	"github.com/sandlot/sandlot/session/templates"
)

// setup makes a template's nodes in parallel and forms its swarm; quota is reserved already. While it runs it
// keeps renewing the session's setup lease, so that if this process dies the session is ended (reason error)
// rather than left half made. When releaseOnFailure is set, nodes that were not made give their quota back.
func (s *Service) setup(ctx context.Context, id string, t templates.Template, releaseOnFailure bool) error {
	start := time.Now()
	leaseCtx, stopLease := context.WithCancel(ctx)
	defer stopLease()
	go func() {
		tick := time.NewTicker(setupLease / 3)
		defer tick.Stop()
		for {
			select {
			case <-leaseCtx.Done():
				return
			case <-tick.C:
				_ = s.store.RenewSetup(leaseCtx, id, setupLease)
			}
		}
	}()
	release := func(n int) {
		if releaseOnFailure {
			for range n {
				_ = s.quota.ReleaseInstance(context.WithoutCancel(ctx), id)
			}
		}
	}
	if _, err := s.nodes.CreateNetwork(ctx, id); err != nil {
		release(t.Nodes())
		return fmt.Errorf("session network: %w", err)
	}
	// Names first (node1 is the first manager), then every node at once.
	names := make([]string, t.Nodes())
	for i := range names {
		name, err := s.store.AllocateName(ctx, id, "")
		if err != nil {
			for _, n := range names[:i] {
				_ = s.store.DeleteInstance(context.WithoutCancel(ctx), id, n)
			}
			release(t.Nodes())
			return err
		}
		names[i] = name
	}
	nodes := make([]*pendingNode, len(names))
	for i, name := range names {
		nodes[i] = &pendingNode{done: make(chan struct{})}
		go func() {
			defer close(nodes[i].done)
			if nodes[i].in, nodes[i].err = s.makeInstance(ctx, id, name, "", t.NodeImages()); nodes[i].err != nil {
				release(1)
			}
		}()
	}
	var swarmErr error
	if t.Swarm {
		members := make([]swarm.Node, len(nodes))
		for i, n := range nodes {
			members[i] = n
		}
		sh := func(ctx context.Context, name, script string) (string, error) { return s.sh(ctx, id, name, script) }
		swarmErr = swarm.Form(ctx, sh, members, t.Managers)
	}
	var nodeErrs []error
	for _, n := range nodes { // every node made or failed, whatever happened to the swarm
		<-n.done
		nodeErrs = append(nodeErrs, n.err)
	}
	if err := errors.Join(nodeErrs...); err != nil {
		return err // the cause: the swarm failed for it, if it did
	}
	if swarmErr != nil {
		return fmt.Errorf("form the swarm: %w", swarmErr)
	}
	s.metrics.setupSeconds.WithLabelValues(t.Name).Observe(time.Since(start).Seconds())
	return nil
}

// pendingNode is a node being made: done is closed once in or err is set.
type pendingNode struct {
	done chan struct{}
	in   Instance
	err  error
}

// Up waits until the node is made (or failed to be).
func (n *pendingNode) Up(ctx context.Context) (name, ip string, err error) {
	select {
	case <-n.done:
		return n.in.Name, n.in.IP, n.err
	case <-ctx.Done():
		return "", "", context.Cause(ctx)
	}
}

// sh runs a shell command in a node and fails unless it exits 0.
func (s *Service) sh(ctx context.Context, id, name, script string) (string, error) {
	r, err := s.nodes.Exec(ctx, id, name, []string{"sh", "-c", script}, instance.ExecOptions{})
	if err != nil {
		return "", err
	}
	if r.ExitCode != 0 {
		return "", fmt.Errorf("%s: %q exited %d: %s", name, script, r.ExitCode, strings.TrimSpace(string(r.Stderr)))
	}
	return string(r.Stdout), nil
}
