// Package swarm forms a Docker swarm of lab nodes as they come up: the first manager inits, every other node joins
// as soon as it is up, through nothing but a shell in each node.
package swarm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// Node is a node being made: Up returns its name and address once it is up, or why it will not be.
type Node interface {
	Up(ctx context.Context) (name, ip string, err error)
}

// Shell runs a shell script in a node and returns its output; it fails unless the script exits 0.
type Shell func(ctx context.Context, node, script string) (string, error)

// readyScript waits in the first manager until it sees %d nodes Ready: one exec polling every 50 ms, rather than
// an exec per look. It gives up after a minute (the caller's context usually ends it sooner).
const readyScript = `i=0; until [ "$(docker node ls --format '{{.Status}}' | grep -c '^Ready$')" -ge %d ]; do
  i=$((i+1)); [ $i -lt 1200 ] || { echo "not every node became Ready" >&2; exit 1; }; sleep 0.05; done`

// Form forms a swarm of the nodes (the first managers first) as they come up, without waiting for all of them:
// the first inits as soon as it is up (and hands out the join tokens in the same exec); every other node joins as
// soon as it is up, managers too: the leader admits one raft member at a time by itself (swarmkit serialises
// joins), so a manager need not wait for the one before it. Then it waits until the first sees every node Ready.
// A node that fails to come up stops the swarm.
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
	out, err := sh(ctx, first.name, "docker swarm init --advertise-addr "+first.ip+
		" >/dev/null && docker swarm join-token -q manager && docker swarm join-token -q worker")
	if err != nil {
		return err
	}
	tokens := strings.Fields(out)
	if len(tokens) != 2 {
		return fmt.Errorf("swarm init on %s: no join tokens in %q", first.name, out)
	}
	join := func(n Node, token string) error {
		m, err := up(n)
		if err == nil {
			_, err = sh(ctx, m.name, fmt.Sprintf("docker swarm join --advertise-addr %s --token %s %s:2377",
				m.ip, token, first.ip))
		}
		if err != nil {
			cancel(err)
		}
		return err
	}
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i := 1; i < len(nodes); i++ {
		token := tokens[0]
		if i >= managers {
			token = tokens[1]
		}
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = join(nodes[i], token) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if _, err := sh(ctx, first.name, fmt.Sprintf(readyScript, len(nodes))); err != nil {
		return fmt.Errorf("not every node became Ready: %w", err)
	}
	return nil
}
