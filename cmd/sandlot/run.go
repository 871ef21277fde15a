package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/sandlot/sandlot/instance"
)

const usage = `usage: sandlot <command> [flags]

commands:
  serve   run the server (arrives with the sessions work; for now it checks the host and exits)
  check   check the Docker engine, node image, security profile, kernel features and host firewall
  gc      remove what sessions left behind: --session ID (repeatable) or --all

Every flag can also be set as SANDLOT_<FLAG> (SANDLOT_NETWORK=overlay, ...).
`

// run is the whole program: main only wires the process to it, so that tests can call it too.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command")
	}
	cmd, rest := args[1], args[2:]
	switch cmd {
	case "serve", "check":
		fs, cfg := nodeFlags(cmd, getenv, stderr)
		if err := fs.Parse(rest); err != nil {
			return err
		}
		d, err := newDriver(ctx, cfg, stderr)
		if err != nil {
			return err
		}
		defer d.Close()
		report(d, stdout)
		if cmd == "serve" {
			fmt.Fprintln(stdout, "the host is ready; the HTTP server arrives with the sessions work (issue 3)")
		}
		return nil
	case "gc":
		fs, cfg := nodeFlags(cmd, getenv, stderr)
		var sessions stringList
		fs.Var(&sessions, "session", "remove everything of this session (repeatable)")
		all := fs.Bool("all", false, "remove everything of every session")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if len(sessions) == 0 && !*all {
			return errors.New("gc needs --session ID or --all (session liveness is not known without the server)")
		}
		d, err := newDriver(ctx, cfg, stderr)
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

// nodeFlags declares the flags that configure nodes, with defaults from SANDLOT_* variables.
func nodeFlags(name string, getenv func(string) string, stderr io.Writer) (*flag.FlagSet, *instance.Config) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := &instance.Config{}
	env := func(flagName, def string) string {
		if v := getenv("SANDLOT_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))); v != "" {
			return v
		}
		return def
	}
	fs.StringVar(&cfg.Image, "image", env("image", "sandlot/node:latest"), "node image")
	fs.Func("network", "session network kind: auto, bridge or overlay (default auto)", func(s string) error {
		cfg.Network = instance.NetworkKind(s)
		return nil
	})
	fs.Func("security", "node security profile: auto, caps or privileged (default auto)", func(s string) error {
		cfg.Security = instance.Security(s)
		return nil
	})
	fs.Func("storage", "what backs a node's /var/lib/docker: volume or tmpfs (default volume)", func(s string) error {
		cfg.Storage = instance.Storage(s)
		return nil
	})
	cfg.Network = instance.NetworkKind(env("network", ""))
	cfg.Security = instance.Security(env("security", ""))
	cfg.Storage = instance.Storage(env("storage", ""))
	return fs, cfg
}

func newDriver(ctx context.Context, cfg *instance.Config, stderr io.Writer) (*instance.Driver, error) {
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	return instance.New(ctx, *cfg)
}

func report(d *instance.Driver, w io.Writer) {
	l := d.Limits()
	fmt.Fprintf(w, "engine ok; sessions get %s networks; nodes run with the %s profile\n", d.NetworkKind(), d.Security())
	disk := "not limited (the engine's volume driver cannot)"
	if l.Disk > 0 {
		disk = fmt.Sprintf("%d MiB", l.Disk>>20)
	}
	fmt.Fprintf(w, "node limits: %d MiB memory, %.2g CPUs, %d pids, disk %s\n", l.Memory>>20, l.CPUs, l.Pids, disk)
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
