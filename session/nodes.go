package session

import (
	"context"
	"io"
	"io/fs"

	"github.com/sandlot/sandlot/instance"
)

// Nodes is what the service needs of the engine's nodes (package instance), by role.
type Nodes interface {
	NodeMaker
	NodeShell
	NodeFiles
	NodeFaults
	Ping(ctx context.Context) error
	Limits() instance.Limits
}

// NodeMaker makes and removes nodes and their sessions' networks.
type NodeMaker interface {
	CreateNetwork(ctx context.Context, session string) (instance.Network, error)
	Create(ctx context.Context, session string, spec instance.Spec) (instance.Instance, error)
	Delete(ctx context.Context, session, name string) error
	Start(ctx context.Context, session, name string) error
	Stop(ctx context.Context, session, name string) error
	Restart(ctx context.Context, session, name string) error
	List(ctx context.Context, session string) ([]instance.Instance, error)
	DeleteSession(ctx context.Context, session string) error
	GC(ctx context.Context, live instance.LiveFunc) (instance.GCReport, error)
}

// NodeShell runs commands in nodes: to their end (Exec), with a terminal (OpenTTY), or a port watcher.
type NodeShell interface {
	Exec(ctx context.Context, session, name string, cmd []string, opts instance.ExecOptions) (instance.ExecResult, error)
	OpenTTY(ctx context.Context, session, name string, opts instance.TTYOptions) (TTY, error)
	WatchPorts(ctx context.Context, session, name string, report func([]int)) error
}

// NodeFiles reads and writes files in nodes.
type NodeFiles interface {
	WriteFile(ctx context.Context, session, name, path string, mode fs.FileMode, size int64, r io.Reader) error
	ReadFile(ctx context.Context, session, name, path string) (io.ReadCloser, instance.FileInfo, error)
	ListDir(ctx context.Context, session, name, path string, depth, limit int) ([]instance.FileEntry, bool, error)
}

// TTY is a command running with a terminal in a node.
type TTY interface {
	io.ReadWriteCloser
	Resize(ctx context.Context, cols, rows uint) error
	// ExitCode reports whether the command has ended and, if so, its exit code.
	ExitCode(ctx context.Context) (code int, exited bool, err error)
}

// EngineNodes are the nodes of a real engine (an instance.Driver) as the service needs them.
func EngineNodes(d *instance.Driver) Nodes { return engineNodes{d} }

type engineNodes struct{ *instance.Driver }

func (n engineNodes) OpenTTY(ctx context.Context, session, name string, opts instance.TTYOptions) (TTY, error) {
	tty, err := n.Driver.OpenTTY(ctx, session, name, opts)
	if err != nil {
		return nil, err
	}
	return tty, nil
}
