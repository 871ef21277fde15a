package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sandlot/sandlot/images"
	"github.com/sandlot/sandlot/instance"
	"github.com/sandlot/sandlot/session/templates"
)

// imageSettings are the flags of the image cache.
type imageSettings struct {
	upstream, auth, listen, registry *string
	size                             *size
}

func imageFlags(fs *flag.FlagSet) imageSettings {
	s := imageSettings{
		upstream: fs.String("image-upstream", images.DockerHub, "registry the image cache mirrors; none: no upstream (a host without internet: import archives)"),
		auth:     fs.String("image-upstream-auth", "", "user:password (or @file holding it) for the upstream: a Docker Hub account lifts its rate limit"),
		listen:   fs.String("image-cache-listen", "auto", "address:port of the image cache, the one host port nodes reach; auto: 169.254.213.1:5000 with the node engine"),
		registry: fs.String("registry", "", "use this registry mirror (http://10.0.0.5:5000) instead of running a cache; off: nodes pull from Docker Hub directly"),
		size:     &size{bytes: 20 << 30},
	}
	fs.Var(s.size, "image-cache-size", "size cap of the image cache (least recently used images go first)")
	return s
}

// startImages sets up what nodes pull images through: the image cache (returned, nil if none runs here), or the
// mirror --registry names, or nothing. It sets nodeCfg.ImageMirror to what nodes are to use. A cache that cannot
// start is a warning, not a failure: nodes then pull from Docker Hub directly.
func startImages(ctx context.Context, s imageSettings, dataDir string, nodeCfg *instance.Config, reg prometheus.Registerer,
	log *slog.Logger) (*images.Cache, error) {
	switch *s.registry {
	case "off":
		log.Info("image cache: off (--registry off): nodes pull from Docker Hub directly")
		return nil, nil
	case "":
	default:
		mirror, err := mirrorAddr(*s.registry)
		if err != nil {
			return nil, err
		}
		nodeCfg.ImageMirror = mirror
		log.Info("image cache: nodes use the registry mirror at " + *s.registry)
		return nil, nil
	}
	listen := *s.listen
	if listen == "auto" {
		engine := nodeCfg.Engine
		if engine == "" {
			engine = instance.DefaultEngine()
		}
		if engine != "unix://"+instance.NodeEngineSocket {
			log.Warn("image cache: off: nodes are not on the node engine; give --image-cache-listen ADDR:PORT, " +
				"an address of this host that nodes route to, or --registry URL")
			return nil, nil
		}
		listen = netip.AddrPortFrom(instance.NodeEngineHostAddr, 5000).String()
	}
	addr, err := netip.ParseAddrPort(listen)
	if err != nil {
		return nil, fmt.Errorf("--image-cache-listen %q: want an address:port", listen)
	}
	upstream := *s.upstream
	if upstream == "none" {
		upstream = ""
	}
	user, password, err := upstreamAuth(*s.auth)
	if err != nil {
		return nil, err
	}
	cache, err := images.Start(ctx, images.Config{Dir: filepath.Join(dataDir, "images"), Listen: listen,
		Upstream: upstream, Username: user, Password: password, MaxBytes: s.size.bytes, Log: log, Registerer: reg})
	if err != nil {
		log.Warn("image cache: cannot start; nodes pull from Docker Hub directly", "err", err)
		return nil, nil
	}
	nodeCfg.ImageMirror = addr
	log.Info("image cache: serving nodes", "mirror", cache.MirrorURL(), "upstream", upstream, "cap", s.size.String())
	return cache, nil
}

// mirrorAddr is the address:port of a mirror's URL (nodes' firewall opens exactly it): the host must be an IP
// address or resolve to one.
func mirrorAddr(raw string) (netip.AddrPort, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return netip.AddrPort{}, fmt.Errorf("--registry %q: want a mirror's URL such as http://10.0.0.5:5000 (nodes' engines "+
			"take it as an insecure mirror), or off", raw)
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	ips, err := net.LookupIP(u.Hostname())
	if err != nil || len(ips) == 0 {
		return netip.AddrPort{}, fmt.Errorf("--registry %q: cannot resolve %s: %v", raw, u.Hostname(), err)
	}
	ip, _ := netip.AddrFromSlice(ips[0].To4())
	if !ip.IsValid() {
		return netip.AddrPort{}, fmt.Errorf("--registry %q: nodes reach IPv4 addresses only", raw)
	}
	return netip.ParseAddrPort(net.JoinHostPort(ip.String(), port))
}

// upstreamAuth reads user:password, given as such or as @file.
func upstreamAuth(v string) (user, password string, err error) {
	if v == "" {
		return "", "", nil
	}
	if path, ok := strings.CutPrefix(v, "@"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", "", fmt.Errorf("--image-upstream-auth: %w", err)
		}
		v = strings.TrimSpace(string(b))
	}
	user, password, ok := strings.Cut(v, ":")
	if !ok || user == "" {
		return "", "", errors.New("--image-upstream-auth: want user:password, or @file holding user:password")
	}
	return user, password, nil
}

// preloadTemplates puts the images templates list into the cache, in the background as the server starts: the
// first lab of the day then pulls from the cache too.
func preloadTemplates(ctx context.Context, cache *images.Cache, tmpls templates.Set, log *slog.Logger) {
	var refs []string
	for _, t := range tmpls.List() {
		for _, ref := range t.Images {
			if !slices.Contains(refs, ref) && !cache.Has(ref) {
				refs = append(refs, ref)
			}
		}
	}
	if len(refs) == 0 || cache.Upstream() == "" {
		return
	}
	if err := cache.Preload(ctx, refs, nil); err != nil {
		log.Warn("image cache: preload the templates' images", "err", err)
		return
	}
	log.Info("image cache: the templates' images are in", "images", refs)
}
