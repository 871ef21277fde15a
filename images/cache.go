// Package images is Sandlot's image cache: what nodes pull from instead of going to Docker Hub each on their own.
//
// Two real registries (Debian's docker-registry, distribution 2.8, as child processes) share one storage on the
// host, on loopback: a pull-through cache of the upstream (Docker Hub), which answers for manifests, and a plain
// registry, which holds what Sandlot puts in (imports of `docker save` archives, and blobs fetched from the
// upstream). In front of them, on the one address nodes can reach, a read-only front (front.go) fetches each
// missing blob from the upstream once, however many nodes ask for it at the same moment, and stores it as it
// streams it to the first of them. See docs/decisions/0019-image-cache.md for why it is built this way.
package images

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sandlot/sandlot/internal/registryproc"
)

// DockerHub is the default upstream.
const DockerHub = "https://registry-1.docker.io"

// Config says how to run the cache.
type Config struct {
	Dir    string // data directory: the registries' storage and configuration, and when images were last used
	Listen string // host:port of the front, the one address nodes reach
	// Upstream is the registry cached (DockerHub by default); "" caches nothing and serves only what was put in
	// (a host without internet).
	Upstream           string
	Username, Password string        // for the upstream, if any (an account lifts Docker Hub's rate limit)
	MaxBytes           int64         // size cap of the stored content; 0: no cap
	UpstreamTimeout    time.Duration // how long a node waits for the upstream before the cache answers from what it has; default 20 s
	Log                *slog.Logger
	Registerer         prometheus.Registerer // where its metrics go; nil: nowhere
}

// Cache is a running image cache.
type Cache struct {
	cfg     Config
	storage string
	front   *front
	server  *http.Server
	uses    *uses
	metrics *metrics

	mu           sync.RWMutex // held for writing while the registries are down for garbage collection
	proxy, store *registryproc.Server
	collecting   sync.Mutex
	stop         chan struct{}
	done         sync.WaitGroup
	closed       sync.Once
}

// Start runs the registries and the front. The front listens before Start returns.
func Start(ctx context.Context, cfg Config) (*Cache, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.UpstreamTimeout == 0 {
		cfg.UpstreamTimeout = 20 * time.Second
	}
	if cfg.Upstream != "" {
		u, err := url.Parse(cfg.Upstream)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("image upstream %q: want a registry's URL, such as %s", cfg.Upstream, DockerHub)
		}
	}
	c := &Cache{cfg: cfg, storage: filepath.Join(cfg.Dir, "storage"), stop: make(chan struct{}),
		metrics: newMetrics(cfg.Registerer)}
	var err error
	if c.uses, err = loadUses(filepath.Join(cfg.Dir, "uses.json")); err != nil {
		return nil, err
	}
	if err := c.startRegistries(ctx); err != nil {
		return nil, err
	}
	var up *upstream
	if cfg.Upstream != "" {
		auth := authn.Anonymous
		if cfg.Username != "" {
			auth = &authn.Basic{Username: cfg.Username, Password: cfg.Password}
		}
		up = newUpstream(cfg.Upstream, auth, cfg.UpstreamTimeout)
	}
	c.front = newFront(c, up)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		c.stopRegistries()
		return nil, fmt.Errorf("image cache: listen on %s: %w", cfg.Listen, err)
	}
	c.server = &http.Server{Handler: c.front, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	c.done.Add(2)
	go func() {
		defer c.done.Done()
		if err := c.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Log.Error("image cache: serve", "err", err)
		}
	}()
	go func() {
		defer c.done.Done()
		c.keep()
	}()
	return c, nil
}

// MirrorURL is what nodes' engines use as their registry mirror.
func (c *Cache) MirrorURL() string { return "http://" + c.cfg.Listen }

// Upstream is the registry cached, "" for none.
func (c *Cache) Upstream() string { return c.cfg.Upstream }

// Close stops the front and the registries and saves when images were last used. It may be called again.
func (c *Cache) Close() { c.closed.Do(c.close) }

func (c *Cache) close() {
	close(c.stop)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.server.Shutdown(ctx)
	c.done.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopRegistries()
	if err := c.uses.save(); err != nil {
		c.cfg.Log.Warn("image cache: save last uses", "err", err)
	}
}

// keep saves last uses every minute and keeps the cache under its cap every ten.
func (c *Cache) keep() {
	save := time.NewTicker(time.Minute)
	defer save.Stop()
	collect := time.NewTicker(10 * time.Minute)
	defer collect.Stop()
	retry := time.NewTicker(30 * time.Second)
	defer retry.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-save.C:
			if err := c.uses.save(); err != nil {
				c.cfg.Log.Warn("image cache: save last uses", "err", err)
			}
		case <-retry.C:
			c.retryProxy()
		case <-collect.C:
			if _, err := c.Collect(context.Background()); err != nil {
				c.cfg.Log.Warn("image cache: keep under its size cap", "err", err)
			}
		}
	}
}

func (c *Cache) startRegistries(ctx context.Context) error {
	storeAddr, err := registryproc.FreeLoopbackAddr()
	if err != nil {
		return err
	}
	c.store, err = registryproc.Start(ctx, registryproc.Config{
		Dir: filepath.Join(c.cfg.Dir, "store"), Storage: c.storage, Addr: storeAddr})
	if err != nil {
		return fmt.Errorf("image cache: %w", err)
	}
	if c.cfg.Upstream == "" {
		return nil
	}
	if c.proxy, err = c.startProxy(ctx); err != nil { // the cache serves what it has; keep tries again
		c.cfg.Log.Warn("image cache: the pull-through cache does not start (is the upstream down?); serving what "+
			"the cache holds, trying again every 30 s", "upstream", c.cfg.Upstream, "err", err)
	}
	return nil
}

// startProxy starts the pull-through cache. distribution 2.8 asks the upstream at start, and exits if it does not
// answer: offline, the cache runs without it.
func (c *Cache) startProxy(ctx context.Context) (*registryproc.Server, error) {
	addr, err := registryproc.FreeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	return registryproc.Start(ctx, registryproc.Config{
		Dir: filepath.Join(c.cfg.Dir, "proxy"), Storage: c.storage, Addr: addr,
		Upstream: c.cfg.Upstream, Username: c.cfg.Username, Password: c.cfg.Password})
}

// proxyRunning says whether the pull-through cache runs (it does not while the upstream is down).
func (c *Cache) proxyRunning() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.proxy != nil
}

// retryProxy starts the pull-through cache if it is not running (the upstream was down).
func (c *Cache) retryProxy() {
	c.mu.RLock()
	missing := c.cfg.Upstream != "" && c.proxy == nil
	c.mu.RUnlock()
	if !missing {
		return
	}
	p, err := c.startProxy(context.Background())
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proxy != nil { // collecting started one meanwhile
		p.Stop()
		return
	}
	c.proxy = p
	c.cfg.Log.Info("image cache: the upstream answers again", "upstream", c.cfg.Upstream)
}

func (c *Cache) stopRegistries() {
	for _, r := range []*registryproc.Server{c.proxy, c.store} {
		if r != nil {
			r.Stop()
		}
	}
	c.proxy, c.store = nil, nil
}

// registries returns the base URLs of the pull-through cache ("" when there is no upstream) and of the store, and
// a function to call when done with them; while they are held, garbage collection waits.
func (c *Cache) registries() (proxy, store string, release func()) {
	c.mu.RLock()
	if c.proxy != nil {
		proxy = c.proxy.URL()
	}
	if c.store != nil { // nil only if it failed to start again after collecting
		store = c.store.URL()
	}
	return proxy, store, c.mu.RUnlock
}

// ensureDir is MkdirAll with the cache's permissions.
func ensureDir(dir string) error { return os.MkdirAll(dir, 0o700) }
