package instance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// DefaultMaxOutput is how much of each of stdout and stderr Exec keeps unless told otherwise.
const DefaultMaxOutput = 1 << 20

// ExecOptions tune Exec. The zero value runs the command as root in /, with nothing on stdin.
type ExecOptions struct {
	Env       []string  // extra KEY=value pairs
	WorkDir   string    // working directory
	Stdin     io.Reader // fed to the command, then closed
	Detach    bool      // start the command and return at once, without its output or exit code
	MaxOutput int       // bytes kept of each stream; default DefaultMaxOutput
}

// ExecResult is a finished command. Truncated says output beyond MaxOutput was dropped.
type ExecResult struct {
	ExitCode  int
	Stdout    []byte
	Stderr    []byte
	Truncated bool
}

// Exec runs cmd in a node without a TTY and returns its exit code and output. When ctx ends first, Exec returns
// ctx's error; the command itself is not killed (the engine has no way to) and ends when the node does.
func (d *Driver) Exec(ctx context.Context, session, name string, cmd []string, opts ExecOptions) (ExecResult, error) {
	if len(cmd) == 0 {
		return ExecResult{}, fmt.Errorf("%w: empty command", ErrInvalid)
	}
	id, err := d.containerID(ctx, session, name)
	if err != nil {
		return ExecResult{}, err
	}
	return d.execIn(ctx, session, name, id, cmd, opts)
}

// execIn is Exec in the container id of a node already looked up.
func (d *Driver) execIn(ctx context.Context, session, name, id string, cmd []string, opts ExecOptions) (ExecResult, error) {
	created, err := d.docker.ContainerExecCreate(ctx, id, container.ExecOptions{
		Cmd: cmd, Env: opts.Env, WorkingDir: opts.WorkDir,
		AttachStdin: opts.Stdin != nil, AttachStdout: !opts.Detach, AttachStderr: !opts.Detach,
	})
	if err != nil {
		if cerrdefs.IsConflict(err) { // the engine's answer when the container is stopped
			return ExecResult{}, fmt.Errorf("%w: %s in session %s (start it first)", ErrNotRunning, name, session)
		}
		return ExecResult{}, fmt.Errorf("exec in %s of session %s: %w", name, session, err)
	}
	if opts.Detach {
		if err := d.docker.ContainerExecStart(ctx, created.ID, container.ExecStartOptions{Detach: true}); err != nil {
			return ExecResult{}, fmt.Errorf("exec in %s of session %s: %w", name, session, err)
		}
		return ExecResult{}, nil
	}
	hijacked, err := d.docker.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec in %s of session %s: %w", name, session, err)
	}
	defer hijacked.Close()
	stop := context.AfterFunc(ctx, func() { hijacked.Close() })
	defer stop()
	if opts.Stdin != nil {
		go func() {
			_, _ = io.Copy(hijacked.Conn, opts.Stdin)
			_ = hijacked.CloseWrite()
		}()
	}
	limit := opts.MaxOutput
	if limit <= 0 {
		limit = DefaultMaxOutput
	}
	stdout, stderr := &capped{limit: limit}, &capped{limit: limit}
	if _, err := stdcopy.StdCopy(stdout, stderr, hijacked.Reader); err != nil && ctx.Err() == nil {
		return ExecResult{}, fmt.Errorf("read output of exec in %s of session %s: %w", name, session, err)
	}
	if ctx.Err() != nil {
		return ExecResult{}, ctx.Err()
	}
	inspect, err := d.docker.ContainerExecInspect(ctx, created.ID)
	if err != nil {
		return ExecResult{}, fmt.Errorf("exit code of exec in %s of session %s: %w", name, session, err)
	}
	return ExecResult{ExitCode: inspect.ExitCode, Stdout: stdout.buf, Stderr: stderr.buf,
		Truncated: stdout.dropped || stderr.dropped}, nil
}

// capped keeps the first limit bytes written to it and drops the rest, so that a chatty command cannot fill memory.
type capped struct {
	limit   int
	buf     []byte
	dropped bool
}

func (c *capped) Write(p []byte) (int, error) {
	room := c.limit - len(c.buf)
	if room < len(p) {
		c.dropped = true
		if room < 0 {
			room = 0
		}
		c.buf = append(c.buf, p[:room]...)
		return len(p), nil
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

// TTYOptions say what to run in a terminal. The zero value runs a login bash in an 80x24 terminal.
type TTYOptions struct {
	Cmd  []string // default: bash -l
	Env  []string // extra KEY=value pairs; TERM=xterm-256color is always set
	Cols uint
	Rows uint
}

// TTY is a command running in a node with a terminal: read its output, write its input, resize it.
// Close ends the connection; the command then sees its terminal hang up.
type TTY struct {
	d      *Driver
	execID string
	conn   types.HijackedResponse
	once   sync.Once
}

// OpenTTY starts a command with a terminal in a node.
func (d *Driver) OpenTTY(ctx context.Context, session, name string, opts TTYOptions) (*TTY, error) {
	id, err := d.containerID(ctx, session, name)
	if err != nil {
		return nil, err
	}
	if len(opts.Cmd) == 0 {
		opts.Cmd = []string{"bash", "-l"}
	}
	if opts.Cols == 0 || opts.Rows == 0 {
		opts.Cols, opts.Rows = 80, 24
	}
	size := [2]uint{opts.Rows, opts.Cols}
	created, err := d.docker.ContainerExecCreate(ctx, id, container.ExecOptions{
		Cmd: opts.Cmd, Env: append([]string{"TERM=xterm-256color"}, opts.Env...), Tty: true,
		AttachStdin: true, AttachStdout: true, AttachStderr: true, ConsoleSize: &size,
	})
	if err != nil {
		return nil, fmt.Errorf("terminal in %s of session %s: %w", name, session, err)
	}
	conn, err := d.docker.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{Tty: true, ConsoleSize: &size})
	if err != nil {
		return nil, fmt.Errorf("terminal in %s of session %s: %w", name, session, err)
	}
	t := &TTY{d: d, execID: created.ID, conn: conn}
	// Engines before API 1.42 ignore ConsoleSize: set the size again now that the command runs.
	if err := t.Resize(ctx, opts.Cols, opts.Rows); err != nil {
		t.Close()
		return nil, fmt.Errorf("size terminal in %s of session %s: %w", name, session, err)
	}
	return t, nil
}

// Read reads the terminal's output.
func (t *TTY) Read(p []byte) (int, error) {
	n, err := t.conn.Reader.Read(p)
	if errors.Is(err, net.ErrClosed) {
		err = io.EOF
	}
	return n, err
}

// Write types into the terminal.
func (t *TTY) Write(p []byte) (int, error) { return t.conn.Conn.Write(p) }

// Resize sets the terminal's size in characters.
func (t *TTY) Resize(ctx context.Context, cols, rows uint) error {
	return t.d.docker.ContainerExecResize(ctx, t.execID, container.ResizeOptions{Width: cols, Height: rows})
}

// Close hangs up the terminal. It is safe to call more than once.
func (t *TTY) Close() error {
	t.once.Do(t.conn.Close)
	return nil
}

// ExitCode reports whether the command has ended and, if so, its exit code.
func (t *TTY) ExitCode(ctx context.Context) (code int, exited bool, err error) {
	inspect, err := t.d.docker.ContainerExecInspect(ctx, t.execID)
	if err != nil {
		return 0, false, err
	}
	return inspect.ExitCode, !inspect.Running, nil
}
