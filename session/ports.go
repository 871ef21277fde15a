package session

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
)

// portsIdle is how long the ports of a node are watched after anyone last asked for them.
const portsIdle = time.Minute

// portWatch keeps the listening ports of the nodes someone looks at. The first ask for a node starts a watcher
// (one docker exec that reports changes, see instance.Driver.WatchPorts); it stops when nobody asked for a
// minute, or when the node stops or goes, and its process in the node ends with it (cancelling the watch's
// context is enough). Each server keeps its own: nothing about ports is stored.
type portWatch struct {
	watch func(ctx context.Context, id, name string, report func([]int)) error
	mu    sync.Mutex
	nodes map[string]*watchedNode // by "id/name"
	wg    sync.WaitGroup
}

type watchedNode struct {
	ports  []int
	asked  time.Time
	cancel context.CancelFunc
}

func newPortWatch(watch func(ctx context.Context, id, name string, report func([]int)) error) *portWatch {
	return &portWatch{watch: watch, nodes: map[string]*watchedNode{}}
}

// Ports returns what is known of a running node's ports (nothing yet on the first ask) and keeps watching them.
func (p *portWatch) Ports(id, name string) []int {
	key := id + "/" + name
	p.mu.Lock()
	defer p.mu.Unlock()
	n, ok := p.nodes[key]
	if !ok {
		ctx, cancel := context.WithCancel(context.Background())
		n = &watchedNode{ports: []int{}, cancel: cancel}
		p.nodes[key] = n
		p.wg.Add(1)
		go p.run(ctx, key, id, name, n)
	}
	n.asked = time.Now()
	return slices.Clone(n.ports)
}

func (p *portWatch) run(ctx context.Context, key, id, name string, n *watchedNode) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		if p.nodes[key] == n {
			delete(p.nodes, key) // the next ask starts afresh (after a restart of the node, say)
		}
		p.mu.Unlock()
		n.cancel()
	}()
	go every(ctx, portsIdle/4, func() { // stop when nobody looks
		p.mu.Lock()
		idle := time.Since(n.asked) > portsIdle
		p.mu.Unlock()
		if idle {
			n.cancel()
		}
	})
	_ = p.watch(ctx, id, name, func(ports []int) {
		p.mu.Lock()
		n.ports = ports
		p.mu.Unlock()
	})
}

// Forget stops watching a node, or every node of a session when name is "".
func (p *portWatch) Forget(id, name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, n := range p.nodes {
		if k == id+"/"+name || (name == "" && strings.HasPrefix(k, id+"/")) {
			n.cancel()
			delete(p.nodes, k)
		}
	}
}

// Close stops every watcher and waits for them.
func (p *portWatch) Close() {
	p.mu.Lock()
	for k, n := range p.nodes {
		n.cancel()
		delete(p.nodes, k)
	}
	p.mu.Unlock()
	p.wg.Wait()
}
