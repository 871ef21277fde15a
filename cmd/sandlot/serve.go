package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sandlot/sandlot/instance"
	"github.com/sandlot/sandlot/internal/redisproc"
	"github.com/sandlot/sandlot/quota"
	"github.com/sandlot/sandlot/session"
	"github.com/sandlot/sandlot/session/api"
	"github.com/sandlot/sandlot/session/labproxy"
	"github.com/sandlot/sandlot/session/redisstore"
	"github.com/sandlot/sandlot/session/templates"
	"github.com/sandlot/sandlot/session/workshop"
	"github.com/sandlot/sandlot/stackfetch"
	"github.com/sandlot/sandlot/terminal"
)

type serveOptions struct {
	listen, data, redisURL, adminToken, signingKey, integrators, trustedProxies *string
	defaultDuration, maxDuration                                                *time.Duration
	maxInstances, sessionsPerClient, sessionsPerHour, joinsPerHour, capacity    *int
	sessionsPerOrigin                                                           *int
	pwdCompat                                                                   *bool
	maxUploadMiB                                                                *int64
	images                                                                      imageSettings
	secureCookies                                                               *bool
	origins, labDomain                                                          *string
	scrollbackKiB                                                               *int
	terminalIdle                                                                *time.Duration
	holder                                                                      *string
	pool                                                                        *string
	stackMaxKiB, stacksPerClient                                                *int
	stackAllowLoopback                                                          *bool
	tlsCert, tlsKey                                                             *string
}

func serveFlags(fs *flag.FlagSet) serveOptions {
	return serveOptions{
		listen:            fs.String("listen", ":8080", "address to serve HTTP on"),
		data:              fs.String("data", defaultDataDir(), "data directory (the embedded Redis keeps its files here)"),
		redisURL:          fs.String("redis", "", "Redis URL (redis://host:6379/0, unix:///path); empty: run a private redis-server"),
		adminToken:        fs.String("admin-token", "", "token that may list and end any session (at least 16 characters)"),
		signingKey:        fs.String("signing-key", "", "hex key (32+ bytes) to sign session tokens; empty: made once and kept in Redis"),
		integrators:       fs.String("integrator-keys", "", "launch token keys: id=hexsecret,id2=hexsecret2"),
		trustedProxies:    fs.String("trusted-proxies", "", "CIDRs whose X-Forwarded-For is believed, comma separated"),
		defaultDuration:   fs.Duration("default-duration", 4*time.Hour, "how long a session lives unless it asks otherwise"),
		maxDuration:       fs.Duration("max-duration", 8*time.Hour, "the longest a session may live, extensions included"),
		maxInstances:      fs.Int("max-instances", 5, "nodes a session may have"),
		sessionsPerClient: fs.Int("max-sessions-per-client", 5, "sessions one client may have at once"),
		sessionsPerHour:   fs.Int("sessions-per-hour", 30, "sessions one client may start in an hour"),
		joinsPerHour:      fs.Int("joins-per-client", 300, "workshop joins from one address in an hour (a room may share one)"),
		capacity:          fs.Int("capacity", 0, "nodes this host runs at once; 0: 90% of host memory / node memory"),
		secureCookies:     fs.Bool("secure-cookies", false, "mark session cookies Secure (serve behind TLS)"),
		origins:           fs.String("public-origins", "", "origins (documentation sites) whose pages may use the API, with CORS: start sessions, open terminals (https://docs.example.com,...); empty: same host only"),
		sessionsPerOrigin: fs.Int("sessions-per-origin", 50, "sessions started anonymously from the pages of one --public-origins origin that may run at once"),
		pwdCompat:         fs.Bool("pwd-compat", false, "serve Play-with-Docker's HTTP API and terminal WebSocket (POST /, /sessions/...; see docs/pwd-compat.md)"),
		labDomain:         fs.String("lab-domain", "localhost", "lab links are <node>-<port>-<session>.<lab-domain> (needs wildcard DNS and, with TLS, a wildcard certificate)"),
		scrollbackKiB:     fs.Int("scrollback", 1024, "KiB of terminal output kept for reconnecting clients (at least 1024)"),
		terminalIdle:      fs.Duration("terminal-idle", 30*time.Minute, "close a terminal with no client for this long"),
		holder:            fs.String("holder", "", "the sandlot-holder binary copied into nodes so that shells outlive a restart of the server; empty: sandlot-holder beside this binary, if there is one; none: shells end with the server"),
		maxUploadMiB:      fs.Int64("max-upload", 32, "MiB of files one request may upload or save into a node"),
		images:            imageFlags(fs),
		stackMaxKiB:       fs.Int("stack-max-size", 256, "KiB of a compose file that Try in Sandlot (/?stack=<url>) fetches"),
		stacksPerClient:   fs.Int("stacks-per-client", 30, "compose files one client address may have fetched (Try in Sandlot) in an hour"),
		stackAllowLoopback: fs.Bool("stack-allow-loopback", false, "FOR TESTS ONLY: let Try in Sandlot fetch compose files from loopback addresses "+
			"(any local service could then be fetched by a stranger's link)"),
		pool:    fs.String("pool", "", "warm pool: ready sessions kept per template, like 1-node=3,swarm-3m2w=1; empty: none"),
		tlsCert: fs.String("tls-cert", "", "PEM certificate chain to serve HTTPS with (with --tls-key; cookies become Secure, HSTS is sent); reread when the file changes"),
		tlsKey:  fs.String("tls-key", "", "PEM private key of --tls-cert"),
	}
}

// sandlotAddresses are the addresses of this Sandlot's own making that Try in Sandlot must never fetch from, even
// where they are not in a non-public range: the node subnets, and the image cache's address.
func sandlotAddresses(nodeCfg instance.Config) []netip.Prefix {
	pool := nodeCfg.SubnetPool
	if !pool.IsValid() {
		pool = instance.DefaultSubnetPool
	}
	out := []netip.Prefix{pool}
	if m := nodeCfg.ImageMirror; m.IsValid() && !m.Addr().IsLoopback() {
		out = append(out, netip.PrefixFrom(m.Addr(), m.Addr().BitLen()))
	}
	return out
}

func defaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/sandlot"
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "sandlot")
	}
	return ".sandlot"
}

// serve runs the server until ctx is done, then stops accepting, lets calls in flight finish (30 s at most) and
// stops its Redis. Sessions live on in Redis and their nodes keep running.
func serve(ctx context.Context, o serveOptions, nodeCfg instance.Config, stdout, stderr io.Writer) error {
	if *o.sessionsPerOrigin < 1 {
		return fmt.Errorf("--sessions-per-origin %d: at least 1", *o.sessionsPerOrigin)
	}
	if *o.maxUploadMiB < 1 {
		return fmt.Errorf("--max-upload %d: at least 1 (MiB)", *o.maxUploadMiB)
	}
	pool, err := session.ParsePool(*o.pool)
	if err != nil {
		return fmt.Errorf("--pool: %w", err)
	}
	// TLS is checked before anything starts: a wrong path must not leave a half-started server behind.
	certs, err := loadTLS(*o.tlsCert, *o.tlsKey)
	if err != nil {
		return err
	}
	secureCookies := *o.secureCookies || certs != nil
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	if certs != nil {
		certs.log = log
	}
	redisURL := *o.redisURL
	if redisURL == "" {
		srv, err := redisproc.Start(ctx, filepath.Join(*o.data, "redis"))
		if err != nil {
			return err
		}
		defer srv.Stop()
		redisURL = srv.URL()
		log.Info("embedded redis-server started", "url", redisURL)
	}
	redisOpts, err := redis.ParseURL(redisURL)
	if err != nil {
		return fmt.Errorf("--redis %q: %w", redisURL, err)
	}
	// Every API call makes a few Redis round trips; a pool as large as the concurrency we expect keeps calls from
	// queueing for a connection (go-redis defaults to 10 per CPU).
	redisOpts.PoolSize = max(redisOpts.PoolSize, 128)
	rdb := redis.NewClient(redisOpts)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis at %s does not answer: %w", redisURL, err)
	}

	store := redisstore.New(rdb, 24*time.Hour)
	if nodeCfg.Owner, err = store.Owner(ctx); err != nil {
		return err
	}
	tokens, err := newTokens(ctx, o, store)
	if err != nil {
		return err
	}
	nodeCfg.Logger = log
	metricsReg := prometheus.NewRegistry()
	cache, err := startImages(ctx, o.images, *o.data, &nodeCfg, metricsReg, log)
	if err != nil {
		return err
	}
	var imageCache api.ImageCache
	if cache != nil {
		defer cache.Close()
		imageCache = cache
	}
	// Every server of the deployment shares the signing key, so all of them give a session the same ssh key.
	nodeCfg.KeySecret = tokens.Subkey("node ssh keys")
	if nodeCfg.Holder, err = holderPath(*o.holder); err != nil {
		return err
	}
	driver, err := instance.New(ctx, nodeCfg)
	if err != nil {
		return err
	}
	defer driver.Close()
	capacity := *o.capacity
	if capacity == 0 {
		mem, err := driver.HostMemory(ctx)
		if err != nil {
			return err
		}
		capacity = max(1, int(float64(mem)*0.9)/int(driver.Limits().Memory))
	}
	q, err := quota.New(rdb, quota.Limits{SessionsPerClient: *o.sessionsPerClient,
		CreationsPerClient: *o.sessionsPerHour, JoinsPerClient: *o.joinsPerHour, RateWindow: time.Hour,
		InstancesPerSession: *o.maxInstances, SessionsPerOrigin: *o.sessionsPerOrigin,
		Capacity: capacity})
	if err != nil {
		return err
	}
	tmpls, err := templates.Load()
	if err != nil {
		return err
	}
	proxies, err := parsePrefixes(*o.trustedProxies)
	if err != nil {
		return err
	}
	for name := range pool {
		if _, ok := tmpls[name]; !ok {
			return fmt.Errorf("--pool: no template %q (see GET /api/v1/templates)", name)
		}
	}
	if nodeCfg.Holder == "" {
		log.Warn("no shell holder (--holder): terminals' shells end when the server stops")
	}
	terminals := terminal.NewManager(terminal.Options{Scrollback: *o.scrollbackKiB << 10}, *o.terminalIdle)
	svc := session.NewService(session.Config{DefaultDuration: *o.defaultDuration, MaxDuration: *o.maxDuration,
		Pool: pool, ShellKeep: *o.scrollbackKiB << 10, ShellOrphan: *o.terminalIdle},
		session.Deps{Store: store, Quota: q, Nodes: session.EngineNodes(driver), Templates: tmpls,
			Tokens: tokens, Terminals: terminals, Metrics: session.NewMetrics(metricsReg, store, q), Log: log})
	workshops := workshop.New(redisstore.NewWorkshops(rdb), svc, q, log)
	proxy := labproxy.New(svc, labproxy.Config{Domain: *o.labDomain, SecureCookies: secureCookies}, log)
	if *o.stackMaxKiB < 1 {
		return fmt.Errorf("--stack-max-size %d: at least 1 (KiB)", *o.stackMaxKiB)
	}
	if *o.stackAllowLoopback {
		log.Warn("--stack-allow-loopback: Try in Sandlot fetches compose files from loopback addresses; for tests only")
	}
	handler := api.NewHandler(svc, workshops, proxy, api.Config{TrustedProxies: proxies, SecureCookies: secureCookies,
		Origins: splitList(*o.origins), MaxUpload: *o.maxUploadMiB << 20, Images: imageCache,
		Stacks: stackfetch.Config{MaxSize: int64(*o.stackMaxKiB) << 10, AllowLoopback: *o.stackAllowLoopback,
			Blocked: sandlotAddresses(nodeCfg)},
		StacksPerClient: *o.stacksPerClient, PWDCompat: *o.pwdCompat}, log)

	ln, err := net.Listen("tcp", *o.listen)
	if err != nil {
		return err
	}
	// Bodies have their own pace limits (session/api); a connection idle between requests is closed after a while.
	server := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		// The server's own complaints (failed TLS handshakes, bad requests) in the same JSON log as the rest.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	if certs != nil {
		server.Handler = strictTransport(handler)
		server.TLSConfig = certs.config()
	}
	var wg sync.WaitGroup
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	wg.Add(3)
	go func() { defer wg.Done(); svc.RunReaper(workCtx) }()
	go func() { defer wg.Done(); workshops.Run(workCtx) }()
	go func() { defer wg.Done(); terminals.Run(workCtx) }()
	if cache != nil {
		wg.Add(1)
		go func() { defer wg.Done(); preloadTemplates(workCtx, cache, tmpls, log) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); svc.RunRestore(workCtx) }()
	served := make(chan error, 1)
	go func() {
		if certs != nil {
			served <- server.ServeTLS(ln, "", "")
			return
		}
		served <- server.Serve(ln)
	}()
	log.Info("serving", "addr", ln.Addr().String(), "capacity", capacity, "network", driver.NetworkKind(),
		"isolation", driver.Isolation())
	fmt.Fprintf(stdout, "Sandlot is serving on %s\n", publicURL(ln.Addr(), certs != nil))

	select {
	case err = <-served:
	case <-ctx.Done():
		log.Info("shutting down: finishing calls in flight")
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = server.Shutdown(shutdownCtx)
		cancel()
	}
	stopWork()
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func newTokens(ctx context.Context, o serveOptions, store *redisstore.Store) (*session.Tokens, error) {
	var key []byte
	var err error
	if *o.signingKey != "" {
		if key, err = hex.DecodeString(*o.signingKey); err != nil {
			return nil, fmt.Errorf("--signing-key is not hex: %w", err)
		}
	} else if key, err = store.SigningKey(ctx); err != nil {
		return nil, err
	}
	integrators := map[string][]byte{}
	for _, pair := range strings.Split(*o.integrators, ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		id, secret, ok := strings.Cut(pair, "=")
		b, err := hex.DecodeString(secret)
		if !ok || id == "" || err != nil {
			return nil, fmt.Errorf("--integrator-keys: %q is not id=hexsecret", pair)
		}
		integrators[id] = b
	}
	return session.NewTokens(key, integrators, *o.adminToken)
}

func splitList(list string) []string {
	var out []string
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func parsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			addr, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("--trusted-proxies: %q is not a CIDR or address", s)
			}
			p = netip.PrefixFrom(addr, addr.BitLen())
		}
		out = append(out, p)
	}
	return out, nil
}

func publicURL(addr net.Addr, tls bool) string {
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	scheme := "http://"
	if tls {
		scheme = "https://"
	}
	return scheme + net.JoinHostPort(host, port) + "/"
}

// holderPath is the shell holder binary to copy into nodes: the one --holder names, else sandlot-holder beside
// this binary if it is there (make build puts it there), else none ("").
func holderPath(flagValue string) (string, error) {
	switch flagValue {
	case "none":
		return "", nil
	case "":
		exe, err := os.Executable()
		if err != nil {
			return "", nil
		}
		beside := filepath.Join(filepath.Dir(exe), "sandlot-holder")
		if _, err := os.Stat(beside); err != nil {
			return "", nil
		}
		return beside, nil
	}
	if _, err := os.Stat(flagValue); err != nil {
		return "", fmt.Errorf("--holder: %w", err)
	}
	return flagValue, nil
}
