package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"github.com/sandlot/sandlot/instance"
)

const usage = `usage: sandlot <command> [flags]

commands:
  serve   run the server (sandlot serve -h lists its flags)
  check   check the Docker engine, node image, isolation, node disks, kernel features and host firewall
  gc      remove what sessions left behind: --session ID (repeatable) or --all
  images  the server's image cache: list, preload IMAGE..., import FILE.tar (sandlot images -h)
  workshop  workshops on a running server: create, list, show ID, broadcast ID TEXT, end ID (sandlot workshop -h)

Every flag can also be set as SANDLOT_<FLAG> (SANDLOT_LISTEN=:9090, SANDLOT_NETWORK=bridge, ...) or in a JSON
config file named by --config (keys are flag names). The command line wins, then the environment, then the file.
`

// run is the whole program: main only wires the process to it, so that tests can call it too.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command")
	}
	cmd, rest := args[1], args[2:]
	switch cmd {
	case "images":
		return imagesCommand(ctx, rest, getenv, stdout, stderr)
	case "workshop":
		return workshopCommand(ctx, rest, getenv, stdout, stderr)
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("config", "", "JSON config file (keys are flag names)")
	nodes := nodeFlags(fs)
	switch cmd {
	case "serve":
		opts := serveFlags(fs)
		if err := parse(fs, rest, getenv); err != nil {
			return err
		}
		return serve(ctx, opts, nodes.config(), stdout, stderr)
	case "check":
		if err := parse(fs, rest, getenv); err != nil {
			return err
		}
		d, err := newDriver(ctx, nodes.config(), stderr)
		if err != nil {
			return err
		}
		defer d.Close()
		report(d, stdout)
		return nil
	case "gc":
		var sessions stringList
		fs.Var(&sessions, "session", "remove everything of this session (repeatable)")
		all := fs.Bool("all", false, "remove everything of every session")
		if err := parse(fs, rest, getenv); err != nil {
			return err
		}
		if len(sessions) == 0 && !*all {
			return errors.New("gc needs --session ID or --all (a running server collects dead sessions by itself)")
		}
		d, err := newDriver(ctx, nodes.config(), stderr)
		if err != nil {
			return err
		}
		defer d.Close()
		alive := func(_ context.Context, s string) (bool, error) { return !*all && !sessions.has(s), nil }
		r, err := d.GC(ctx, alive)
		fmt.Fprintf(stdout, "removed %d containers, %d networks, %d volumes of %d sessions\n",
			r.Containers, r.Networks, r.Volumes, len(r.Sessions))
		return err
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

func parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return settle(fs, getenv)
}

// nodeSettings are the flags that configure nodes.
type nodeSettings struct {
	engine, image, network, isolation, storage *string
	memoryMiB, pids                            *int64
	disk                                       *size
	cpus                                       *float64
}

func nodeFlags(fs *flag.FlagSet) nodeSettings {
	n := nodeSettings{
		engine:    fs.String("engine", "", "Docker engine for nodes (unix:///path, tcp://...); empty: $DOCKER_HOST, else the node engine's socket if it exists, else the default socket"),
		image:     fs.String("image", "sandlot/node:latest", "node image"),
		network:   fs.String("network", "auto", "session networks: auto (overlay on a swarm manager, else bridge), bridge, overlay"),
		isolation: fs.String("isolation", "auto", "node isolation: auto (userns where the engine runs it), userns, caps or privileged (caps and privileged: trusted installs only, learners can become root on the host)"),
		storage:   fs.String("storage", "volume", "a node's /var/lib/docker: volume (on the node's disk) or tmpfs (counted against its memory)"),
		memoryMiB: fs.Int64("node-memory", 1024, "memory limit of a node in MiB, inner containers included"),
		pids:      fs.Int64("node-pids", 1024, "process limit of a node"),
		cpus:      fs.Float64("node-cpus", 1, "CPU limit of a node"),
		disk:      &size{bytes: 10 << 30},
	}
	fs.Var(n.disk, "node-disk", "disk of a node for everything it writes (10GiB, 512MiB; a plain number is MiB)")
	return n
}

func (n nodeSettings) config() instance.Config {
	return instance.Config{Engine: *n.engine, Image: *n.image, Network: instance.NetworkKind(*n.network),
		Isolation: instance.Isolation(*n.isolation), Storage: instance.Storage(*n.storage), Disk: n.disk.bytes,
		Memory: *n.memoryMiB << 20, Pids: *n.pids, CPUs: *n.cpus}
}

func newDriver(ctx context.Context, cfg instance.Config, stderr io.Writer) (*instance.Driver, error) {
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	return instance.New(ctx, cfg)
}

func report(d *instance.Driver, w io.Writer) {
	l := d.Limits()
	fmt.Fprintf(w, "engine %s ok; sessions get %s networks\n", d.Engine(), d.NetworkKind())
	fmt.Fprintf(w, "isolation: %s\n", d.Isolation())
	if warning := instance.IsolationWarning(d.Isolation()); warning != "" {
		fmt.Fprintf(w, "WARNING: %s\n", warning)
	}
	fmt.Fprintf(w, "node limits: %d MiB memory, %.2g CPUs, %d pids\n", l.Memory>>20, l.CPUs, l.Pids)
	fmt.Fprintf(w, "node disk: %s\n", d.DiskMechanism())
	var missing []string
	for name, ok := range d.Features() {
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(w, "kernel lacks (optional): %s\n", strings.Join(missing, ", "))
	}
}

// size is a flag of bytes written with a unit: 10GiB, 10G, 512MiB, 512M; a plain number is MiB.
type size struct{ bytes int64 }

func (s *size) String() string {
	if s.bytes%(1<<30) == 0 {
		return fmt.Sprintf("%dGiB", s.bytes>>30)
	}
	return fmt.Sprintf("%dMiB", s.bytes>>20)
}

func (s *size) Set(v string) error {
	num := strings.TrimRight(v, "KMGTBIkmgtbi")
	unit := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(v[len(num):]), "B"), "I")
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	shift := map[string]uint{"": 20, "K": 10, "M": 20, "G": 30, "T": 40}
	sh, ok := shift[unit]
	if err != nil || !ok || n <= 0 || n > 1<<(62-sh) {
		return fmt.Errorf("%q is not a size like 10GiB or 512MiB", v)
	}
	s.bytes = n << sh
	return nil
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
func (s stringList) has(v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
