package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sandlot/sandlot/instance"
)

// RestoreNodes makes again the nodes of active sessions that the engine no longer has, with the names and
// hostnames they had, and returns how many it made. Nodes go missing when a deployment is taken down
// (`docker-compose down` removes every node; the sessions stay in Redis) and brought up again: the sessions then
// carry on with fresh nodes, on a fresh network, whose files, inner containers and swarm are gone. A node Sandlot
// removed is not in the store, so it is not made again; sessions still being set up or pooled are left to their
// own leases and to the pool, and sessions past their deadline to the reaper.
func (s *Service) RestoreNodes(ctx context.Context) (int, error) {
	ids, err := s.store.Live(ctx)
	if err != nil {
		return 0, fmt.Errorf("restore nodes: list sessions: %w", err)
	}
	made := 0
	var errs []error
	for _, id := range ids {
		n, err := s.restoreSession(ctx, id)
		made += n
		if err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return made, errors.Join(errs...)
}

// RunRestore runs RestoreNodes once at a server's start, and again (up to 10 passes, 3 s apart) while a pass
// fails, as on an engine busy making networks for others; each pass makes only what is still missing. It returns
// when a pass succeeded, after the last, or when ctx is done.
func (s *Service) RunRestore(ctx context.Context) {
	for attempt := 1; attempt <= 10; attempt++ {
		made, err := s.RestoreNodes(ctx)
		if made > 0 {
			s.log.Info("restored the missing nodes of sessions", "nodes", made)
		}
		if err == nil || ctx.Err() != nil {
			return
		}
		s.log.Error("restoring the nodes of sessions", "err", err, "attempt", attempt)
		select {
		case <-ctx.Done():
			return
		case <-time.After(3 * time.Second):
		}
	}
}

func (s *Service) restoreSession(ctx context.Context, id string) (int, error) {
	sess, err := s.store.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return 0, nil // ended meanwhile
	} else if err != nil {
		return 0, fmt.Errorf("restore session %s: %w", id, err)
	}
	if sess.State != StateActive || len(sess.Instances) == 0 || !time.Now().Before(sess.ExpiresAt) {
		return 0, nil // the reaper ends one past its deadline; no node is made for that
	}
	running, err := s.nodes.List(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("restore session %s: %w", id, err)
	}
	have := map[string]bool{}
	for _, in := range running {
		have[in.Name] = true
	}
	var missing []Instance
	for _, in := range sess.Instances {
		if !have[in.Name] && in.Status != NodeCreating {
			missing = append(missing, in)
		}
	}
	if len(missing) == 0 {
		return 0, nil
	}
	if _, err := s.nodes.CreateNetwork(ctx, id); err != nil {
		return 0, fmt.Errorf("restore session %s: %w", id, err)
	}
	made := 0
	for _, in := range missing {
		node, err := s.nodes.Create(ctx, id, instance.Spec{Name: in.Name, Hostname: in.Hostname})
		if errors.Is(err, instance.ErrExists) {
			continue // another Sandlot of the deployment made it at the same moment
		}
		if err != nil {
			return made, fmt.Errorf("restore %s of session %s: %w", in.Name, id, err)
		}
		fresh := Instance{Name: in.Name, Hostname: node.Hostname, IP: node.IP.String(), Status: NodeStatus(node.Status),
			Ports: []int{}, CreatedAt: time.Now().UTC()}
		if err := s.store.PutInstance(ctx, id, fresh); err != nil {
			return made, err
		}
		// The session may have ended while the node was being made; its teardown may have missed this node.
		if live, err := s.store.IsLive(ctx, id); err == nil && !live {
			_ = s.nodes.Delete(context.WithoutCancel(ctx), id, in.Name)
			return made, nil
		}
		made++
		s.log.Info("node made again: the engine no longer had it", "session", id, "node", in.Name,
			"ip", fresh.IP)
	}
	return made, nil
}
