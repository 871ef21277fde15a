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
// ctx's error and the command is ended in the node, with everything it started in its session (SIGHUP and
// SIGTERM, SIGKILL after 2 s). A command that ends by itself may leave background processes running, as a plain
// docker exec would. A Detach command is not supervised: it runs until it ends, or the node does.
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
	if opts.Detach {
		return ExecResult{}, d.execDetached(ctx, session, name, id, cmd, opts)
	}
	created, err := d.docker.ContainerExecCreate(ctx, id, container.ExecOptions{
		Cmd: supervised(cmd, opts.Stdin != nil, 0, 0, ""), Env: opts.Env, WorkingDir: opts.WorkDir,
		AttachStdin: true, AttachStdout: true, AttachStderr: true, // stdin is the supervisor's lifeline
	})
	if err != nil {
		return ExecResult{}, execError(session, name, err)
	}
	hijacked, err := d.docker.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec in %s of session %s: %w", name, session, err)
	}
	// Closing the connection hangs up: the supervisor ends the command if it still runs (see supervise.go).
	defer hijacked.Close()
	stop := context.AfterFunc(ctx, func() { hijacked.Close() })
	defer stop()
	if opts.Stdin != nil {
		go func() { // ends with opts.Stdin, or when the connection closes
			in := &lifeline{w: hijacked.Conn}
			_, _ = io.Copy(in, opts.Stdin)
			_ = in.endInput()
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

// execDetached starts cmd in a node and returns at once.
func (d *Driver) execDetached(ctx context.Context, session, name, id string, cmd []string, opts ExecOptions) error {
	created, err := d.docker.ContainerExecCreate(ctx, id, container.ExecOptions{
		Cmd: cmd, Env: opts.Env, WorkingDir: opts.WorkDir})
	if err != nil {
		return execError(session, name, err)
	}
	if err := d.docker.ContainerExecStart(ctx, created.ID, container.ExecStartOptions{Detach: true}); err != nil {
		return fmt.Errorf("exec in %s of session %s: %w", name, session, err)
	}
	return nil
}

// execError is the error of creating an exec.
func execError(session, name string, err error) error {
	if cerrdefs.IsConflict(err) { // the engine's answer when the container is stopped
		return fmt.Errorf("%w: %s in session %s (start it first)", ErrNotRunning, name, session)
	}
	return fmt.Errorf("exec in %s of session %s: %w", name, session, err)
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

// TTY is a command running in a node with a terminal: read its output, write its input, resize it. Close hangs
// up: the command and everything it started in its session end in the node. Read is for one goroutine; Write,
// Resize and Close may be called from any.
type TTY struct {
	d      *Driver
	execID string
	conn   types.HijackedResponse // the engine's exec: the command's lifeline
	direct net.Conn               // the short way to the terminal, when it was in reach
	in     *lifeline
	out    io.Reader
	once   sync.Once
}

// OpenTTY starts a command with a terminal in a node. The command runs until it exits or the TTY is closed; ctx
// only bounds starting it.
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
	// The supervisor makes the terminal (see supervise.go): to the engine this is an exec without one, so that
	// closing the connection closes the supervisor's stdin, which the engine never does for an exec with a TTY.
	// Where the node's files are in reach, the terminal also takes the short way (shortway.go).
	root, short := d.nodeRoot(ctx, id)
	socket := ""
	if short {
		socket = shortWaySocket()
	}
	created, err := d.docker.ContainerExecCreate(ctx, id, container.ExecOptions{
		Cmd: supervised(opts.Cmd, false, opts.Cols, opts.Rows, socket), Env: append([]string{"TERM=xterm-256color"}, opts.Env...),
		AttachStdin: true, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return nil, fmt.Errorf("terminal in %s of session %s: %w", name, session, err)
	}
	conn, err := d.docker.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return nil, fmt.Errorf("terminal in %s of session %s: %w", name, session, err)
	}
	t := &TTY{d: d, execID: created.ID, conn: conn, in: &lifeline{w: conn.Conn}, out: &demux{r: conn.Reader}}
	if short {
		if direct, err := dialShortWay(ctx, root, socket); err == nil {
			t.direct, t.in, t.out = direct, &lifeline{w: direct}, direct
		} else {
			d.log.Debug("terminal takes the engine's way", "session", session, "node", name, "err", err)
		}
	}
	return t, nil
}

// Read reads the terminal's output.
func (t *TTY) Read(p []byte) (int, error) {
	n, err := t.out.Read(p)
	if errors.Is(err, net.ErrClosed) {
		err = io.EOF
	}
	return n, err
}

// Write types into the terminal.
func (t *TTY) Write(p []byte) (int, error) { return t.in.Write(p) }

// Resize sets the terminal's size in characters. The size is sent on the terminal's connection, behind any input
// written before it; ctx is checked only before.
func (t *TTY) Resize(ctx context.Context, cols, rows uint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return t.in.resize(cols, rows)
}

// Close hangs up the terminal: the command and what it started in its session are ended in the node within a few
// seconds. It is safe to call more than once, and after the command has exited.
func (t *TTY) Close() error {
	t.once.Do(func() {
		t.conn.Close()
		if t.direct != nil {
			t.direct.Close()
		}
	})
	return nil
}

// ExitCode reports whether the command has ended and, if so, its exit code (128+N after signal N).
func (t *TTY) ExitCode(ctx context.Context) (code int, exited bool, err error) {
	inspect, err := t.d.docker.ContainerExecInspect(ctx, t.execID)
	if err != nil {
		return 0, false, err
	}
	return inspect.ExitCode, !inspect.Running, nil
}
