package instance

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/sandlot/sandlot/internal/holder"
	"golang.org/x/sys/unix"
)

// Held shells (docs/decisions/0027-shells-that-outlive-the-server.md): a terminal's shell runs under a holder
// (cmd/sandlot-holder) that Sandlot copies into the node and starts with a detached exec, so that nothing of the
// shell hangs on this process. The holder owns the pseudo-terminal and the last output, with offsets, and serves
// one Sandlot at a time on /run/sandlot/hold/<slot>.sock in the node; a Sandlot that restarts connects again.
// Sandlot reaches the socket through the node's root as the host sees it (/proc/<pid>/root, like the short way),
// resolving the path inside that root so that a learner's symlink cannot point it at the host's files.

// ErrNotHeld is HoldTTY's answer where shells cannot be held: no holder binary was configured, or the node's files
// are out of this process's reach. The caller opens a terminal that ends with the server instead (OpenTTY).
var ErrNotHeld = errors.New("shells are not held in nodes here")

// holderDir is where in a node the holder binary is copied, under a name with its hash: a Sandlot of another
// version copies its own beside it, and holders already running keep theirs.
const holderDir = "/usr/local/lib/sandlot"

// holderBinary is the holder this driver copies into nodes.
type holderBinary struct {
	data []byte
	path string // in the node
}

// loadHolder reads the holder binary at path (a static executable, at most 64 MiB).
func loadHolder(path string) (*holderBinary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("the shell holder: %w", err)
	}
	defer f.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(&limitReader{r: f, n: 64 << 20}); err != nil {
		return nil, fmt.Errorf("the shell holder %s: %w", path, err)
	}
	if !bytes.HasPrefix(b.Bytes(), []byte("\x7fELF")) {
		return nil, fmt.Errorf("the shell holder %s is not an executable", path)
	}
	sum := sha256.Sum256(b.Bytes())
	return &holderBinary{data: b.Bytes(), path: holderDir + "/holder-" + hex.EncodeToString(sum[:6])}, nil
}

type limitReader struct {
	r interface{ Read([]byte) (int, error) }
	n int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("larger than 64 MiB")
	}
	if int64(len(p)) > l.n+1 {
		p = p[:l.n+1]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// HoldOptions say what a held shell runs. The zero value is a login bash in an 80x24 terminal in slot 1, keeping
// 1 MiB of output, ended after 30 minutes without a Sandlot.
type HoldOptions struct {
	TTYOptions
	Slot   int           // which of the node's held shells: 1 to 99
	Keep   int           // bytes of output the holder keeps; default 1 MiB
	Orphan time.Duration // how long the shell may go without a Sandlot before it ends; default 30 min
}

// HeldSocket is where in a node the holder of slot serves.
func HeldSocket(slot int) string { return fmt.Sprintf("/run/sandlot/hold/%d.sock", slot) }

// HoldTTY connects to the held shell in slot of a node, starting it first if there is none. reattached says the
// shell was already there (opened by an earlier server). The connection's Close ends the shell; its Release lets
// go of it for the next server. ErrNotHeld where shells cannot be held.
func (d *Driver) HoldTTY(ctx context.Context, session, name string, opts HoldOptions) (tty *holder.Conn, reattached bool, err error) {
	if d.holder == nil {
		return nil, false, ErrNotHeld
	}
	if opts.Slot < 1 || opts.Slot > 99 {
		return nil, false, fmt.Errorf("%w: slot %d (1 to 99)", ErrInvalid, opts.Slot)
	}
	if opts.Keep <= 0 {
		opts.Keep = 1 << 20
	}
	if opts.Orphan <= 0 {
		opts.Orphan = 30 * time.Minute
	}
	id, err := d.containerID(ctx, session, name)
	if err != nil {
		return nil, false, err
	}
	root, short := d.nodeRoot(ctx, id)
	if !short {
		return nil, false, fmt.Errorf("%w: the node's files are out of reach", ErrNotHeld)
	}
	socket := HeldSocket(opts.Slot)
	// A holder may keep a little more than asked (another server's setting): accept up to twice.
	maxKept := 2 * opts.Keep
	if c, err := dialInNode(ctx, root, socket); err == nil {
		tty, err := holder.Attach(c, maxKept)
		if err != nil {
			return nil, false, fmt.Errorf("terminal %d in %s of session %s: %w", opts.Slot, name, session, err)
		}
		return tty, true, nil
	} else if !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ECONNREFUSED) {
		return nil, false, fmt.Errorf("terminal %d in %s of session %s: %w", opts.Slot, name, session, err)
	}
	if err := d.startHolder(ctx, session, name, id, root, socket, opts); err != nil {
		return nil, false, fmt.Errorf("terminal %d in %s of session %s: %w", opts.Slot, name, session, err)
	}
	c, err := dialShortWay(ctx, root, socket) // the holder makes its socket a few ms after its exec starts
	if err != nil {
		return nil, false, fmt.Errorf("terminal %d in %s of session %s: %w", opts.Slot, name, session, err)
	}
	tty, err = holder.Attach(c, maxKept)
	if err != nil {
		return nil, false, fmt.Errorf("terminal %d in %s of session %s: %w", opts.Slot, name, session, err)
	}
	return tty, false, nil
}

// startHolder copies the holder into the node if it is not there, and starts it with a detached exec: the
// holder's life hangs on nothing of this process.
func (d *Driver) startHolder(ctx context.Context, session, name, id, root, socket string, opts HoldOptions) error {
	if !d.holderIn(root) {
		if err := d.copyHolder(ctx, id); err != nil {
			return err
		}
	}
	cmd := opts.Cmd
	if len(cmd) == 0 {
		cmd = []string{"bash", "-l"}
	}
	cols, rows := opts.Cols, opts.Rows
	if cols == 0 || rows == 0 {
		cols, rows = 80, 24
	}
	args := append([]string{d.holder.path, "--socket", socket,
		"--size", fmt.Sprintf("%dx%d", clampSize(cols), clampSize(rows)),
		"--keep", strconv.Itoa(opts.Keep), "--orphan", opts.Orphan.String(), "--"}, cmd...)
	created, err := d.docker.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: args,
		Env: append([]string{"TERM=xterm-256color"}, opts.Env...)})
	if err != nil {
		return execError(session, name, err)
	}
	if err := d.docker.ContainerExecStart(ctx, created.ID, container.ExecStartOptions{Detach: true}); err != nil {
		return fmt.Errorf("start the shell's holder: %w", err)
	}
	return nil
}

// holderIn reports whether the node has this driver's holder binary (a regular file of its size, looked up
// inside the node's root).
func (d *Driver) holderIn(root string) bool {
	fd, err := openInNode(root, d.holder.path)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size == int64(len(d.holder.data))
}

// copyHolder puts the holder binary into the node, through the engine (which maps its owner into the node's user
// namespace).
func (d *Driver) copyHolder(ctx context.Context, id string) error {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	hdr := &tar.Header{Name: strings.TrimPrefix(d.holder.path, "/"), Mode: 0o755, Size: int64(len(d.holder.data)),
		Typeflag: tar.TypeReg, ModTime: time.Now()}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := tw.Write(d.holder.data); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := d.docker.CopyToContainer(ctx, id, "/", &b, container.CopyToContainerOptions{}); err != nil {
		return fmt.Errorf("copy the shell holder into the node: %w", err)
	}
	return nil
}

// openInNode opens path in the node whose root (as this process sees it) is root, resolving it inside that root:
// symlinks in the node, absolute or with "..", stay in the node, and magic links are refused. The result is an
// O_PATH descriptor of the final component itself (a symlink there is not followed).
func openInNode(root, path string) (int, error) {
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rootFD)
	fd, err := unix.Openat2(rootFD, strings.TrimPrefix(path, "/"), &unix.OpenHow{
		Flags: unix.O_PATH | unix.O_CLOEXEC | unix.O_NOFOLLOW, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

// dialInNode connects to the unix socket at path in the node whose root is root, resolved as openInNode does: a
// path that is not a socket in the node (a learner's symlink to one of the host's, say) is refused.
func dialInNode(ctx context.Context, root, path string) (net.Conn, error) {
	fd, err := openInNode(root, path)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil, fmt.Errorf("%s in the node is not a socket", path)
	}
	// Connecting through the descriptor reaches the very socket found, whatever happens to the path meanwhile.
	var dialer net.Dialer
	return dialer.DialContext(ctx, "unix", fmt.Sprintf("/proc/self/fd/%d", fd))
}
