// Package swarm forms a Docker swarm of lab nodes as they come up: the first manager inits, the other managers join
// one at a time, the workers beside them, through nothing but a shell in each node.
package swarm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Node is a node being made: Up returns its name and address once it is up, or why it will not be.
type Node interface {
	Up(ctx context.Context) (name, ip string, err error)
}

// Shell runs a shell script in a node and returns its output; it fails unless the script exits 0.
type Shell func(ctx context.Context, node, script string) (string, error)

// Form forms a swarm of the nodes (the first managers first) as they come up, without waiting for all of them:
// the first inits as soon as it is up; the other managers join one at a time (raft admits one member at a time),
// each as soon as it is up and the one before has joined; workers join as soon as they are up, beside the
// managers. Then it waits until the first sees every node Ready. A node that fails to come up stops the swarm.
func Form(ctx context.Context, sh Shell, nodes []Node, managers int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type member struct{ name, ip string }
	up := func(n Node) (member, error) {
		name, ip, err := n.Up(ctx)
		if err != nil {
			cancel(err)
		}
		return member{name, ip}, err
	}
	first, err := up(nodes[0])
	if err != nil {
		return err
	}
	if _, err := sh(ctx, first.name, "docker swarm init --advertise-addr "+first.ip); err != nil {
		return err
	}
	tokens := map[string]string{}
	for _, role := range []string{"manager", "worker"} {
		out, err := sh(ctx, first.name, "docker swarm join-token -q "+role)
		if err != nil {
			return err
		}
		tokens[role] = strings.TrimSpace(out)
	}
	join := func(n Node, role string) error {
		m, err := up(n)
		if err == nil {
			_, err = sh(ctx, m.name, fmt.Sprintf("docker swarm join --advertise-addr %s --token %s %s:2377",
				m.ip, tokens[role], first.ip))
		}
		if err != nil {
			cancel(err)
		}
		return err
	}
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i := managers; i < len(nodes); i++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = join(nodes[i], "worker") }()
	}
	for i := 1; i < managers && errs[i-1] == nil; i++ {
		errs[i] = join(nodes[i], "manager")
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for {
		out, err := sh(ctx, first.name, "docker node ls --format '{{.Status}}' | grep -c '^Ready$' || true")
		if err == nil && strings.TrimSpace(out) == fmt.Sprint(len(nodes)) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not every node became Ready: %w", context.Cause(ctx))
		case <-time.After(100 * time.Millisecond):
		}
	}
}
