package swarm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// node comes up when its channel closes.
type node struct {
	name  string
	ready chan struct{}
	err   error
}

func (n *node) Up(ctx context.Context) (string, string, error) {
	select {
	case <-n.ready:
		return n.name, "10.0.0." + strings.TrimPrefix(n.name, "node"), n.err
	case <-ctx.Done():
		return "", "", ctx.Err()
	}
}

// shell records the commands run, answers tokens and "docker node ls" like a swarm of joined nodes would.
type shell struct {
	mu     sync.Mutex
	log    []string
	joined int
}

func (s *shell) run(_ context.Context, n, script string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, n+": "+strings.Fields(script)[2])
	switch {
	case strings.HasPrefix(script, "docker swarm join-token"):
		return "TOKEN\n", nil
	case strings.HasPrefix(script, "docker swarm init"), strings.HasPrefix(script, "docker swarm join"):
		s.joined++
	case strings.HasPrefix(script, "docker node ls"):
		return fmt.Sprint(s.joined), nil
	}
	return "", nil
}

func nodes(n int) []*node {
	out := make([]*node, n)
	for i := range out {
		out[i] = &node{name: fmt.Sprintf("node%d", i+1), ready: make(chan struct{})}
	}
	return out
}

func members(ns []*node) []Node {
	out := make([]Node, len(ns))
	for i, n := range ns {
		out[i] = n
	}
	return out
}

// Workers join as soon as they are up, before a manager that is slower; managers join in order after the init.
func TestFormAsNodesComeUp(t *testing.T) {
	ns := nodes(5)
	sh := &shell{}
	done := make(chan error, 1)
	go func() { done <- Form(context.Background(), sh.run, members(ns), 3) }()
	for _, i := range []int{0, 3, 4} { // node1 and the workers first
		close(ns[i].ready)
	}
	time.Sleep(100 * time.Millisecond)
	close(ns[2].ready) // node3 before node2: it must still wait for node2
	time.Sleep(100 * time.Millisecond)
	sh.mu.Lock()
	early := strings.Join(sh.log, "\n")
	sh.mu.Unlock()
	if !strings.Contains(early, "node4: join") || !strings.Contains(early, "node5: join") {
		t.Errorf("the workers did not join while a manager was still coming up:\n%s", early)
	}
	if strings.Contains(early, "node3: join") {
		t.Errorf("node3 joined before node2, a manager ahead of it:\n%s", early)
	}
	close(ns[1].ready)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	log := strings.Join(sh.log, "\n")
	if !strings.HasPrefix(log, "node1: init") || strings.Index(log, "node2: join") > strings.Index(log, "node3: join") {
		t.Errorf("order:\n%s", log)
	}
}

// A node that fails to come up stops the swarm with its error, without waiting for the rest.
func TestFormStopsOnAFailedNode(t *testing.T) {
	ns := nodes(3)
	close(ns[0].ready)
	ns[1].err = errors.New("node2 did not become ready")
	close(ns[1].ready)
	err := Form(context.Background(), (&shell{}).run, members(ns), 2) // node3 never comes up
	if err == nil || !strings.Contains(err.Error(), "node2 did not become ready") {
		t.Fatalf("err = %v", err)
	}
}
