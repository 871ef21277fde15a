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

// shell records the commands run (node: verb), answers tokens and waits for Ready like a swarm of joined nodes would.
type shell struct {
	mu     sync.Mutex
	log    []string
	joined int
}

func (s *shell) run(_ context.Context, n, script string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case strings.HasPrefix(script, "docker swarm init"):
		s.log = append(s.log, n+": init")
		s.joined++
		return "MANAGER-TOKEN\nWORKER-TOKEN\n", nil
	case strings.HasPrefix(script, "docker swarm join "):
		token := strings.Fields(script)[6]
		s.log = append(s.log, n+": join "+token)
		s.joined++
	case strings.Contains(script, "docker node ls"):
		var want int
		fmt.Sscanf(script[strings.Index(script, "-ge ")+4:], "%d", &want)
		if s.joined < want {
			return "", fmt.Errorf("%d of %d nodes Ready", s.joined, want)
		}
		s.log = append(s.log, n+": ready")
	default:
		return "", fmt.Errorf("unexpected script %q", script)
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

// Every node joins as soon as it is up, a manager too without waiting for a slower manager ahead of it, each with
// its role's token; the swarm is formed once all have joined.
func TestFormAsNodesComeUp(t *testing.T) {
	ns := nodes(5)
	sh := &shell{}
	done := make(chan error, 1)
	go func() { done <- Form(context.Background(), sh.run, members(ns), 3) }()
	for _, i := range []int{0, 2, 4} { // node1, node3 (a manager) and node5 (a worker) first
		close(ns[i].ready)
	}
	time.Sleep(100 * time.Millisecond)
	sh.mu.Lock()
	early := strings.Join(sh.log, "\n")
	sh.mu.Unlock()
	if want := "node1: init"; !strings.HasPrefix(early, want) {
		t.Errorf("the first node did not init first:\n%s", early)
	}
	for _, want := range []string{"node3: join MANAGER-TOKEN", "node5: join WORKER-TOKEN"} {
		if !strings.Contains(early, want) {
			t.Errorf("no %q while node2 and node4 were still coming up:\n%s", want, early)
		}
	}
	if strings.Contains(early, "ready") {
		t.Errorf("ready before every node joined:\n%s", early)
	}
	close(ns[1].ready)
	close(ns[3].ready)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	log := strings.Join(sh.log, "\n")
	for _, want := range []string{"node2: join MANAGER-TOKEN", "node4: join WORKER-TOKEN"} {
		if !strings.Contains(log, want) {
			t.Errorf("no %q:\n%s", want, log)
		}
	}
	if !strings.HasSuffix(log, "node1: ready") {
		t.Errorf("not waited for Ready on node1 last:\n%s", log)
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
