package terminal

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/creack/pty"
)

// hangupGrace is how long a command may take to end after its terminal hangs up, before it is killed.
const hangupGrace = time.Second

// LocalPTY is a local command with a pseudo-terminal, for tests and local use.
type LocalPTY struct {
	cmd      *exec.Cmd
	f        *os.File
	once     sync.Once
	closeErr error
	exited   chan struct{} // closed when the command has ended, with err
	err      error
	gaveUp   chan struct{} // closed when Close has done all it can to end the command
}

// StartLocal runs name with args on a new PTY, with TERM=xterm-256color.
func StartLocal(name string, args ...string) (*LocalPTY, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "TERM=xterm-256color")
	// pty.Start makes the command the leader of a session of its own (so its process group's id is its pid) with
	// the PTY as its controlling terminal: Close can end the whole group.
	f, err := pty.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s on a pty: %w", name, err)
	}
	p := &LocalPTY{cmd: cmd, f: f, exited: make(chan struct{}), gaveUp: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	return p, nil
}

// Read reads output; when the command has ended it returns an error that carries its exit code.
func (p *LocalPTY) Read(b []byte) (int, error) {
	n, err := p.f.Read(b)
	if err != nil {
		select {
		case <-p.exited:
			return n, &ended{code: exitCode(p.err), cause: err}
		case <-p.gaveUp:
			return n, &ended{code: -1, cause: err}
		}
	}
	return n, nil
}

// Write types into the terminal.
func (p *LocalPTY) Write(b []byte) (int, error) { return p.f.Write(b) }

// Resize sets the terminal size. It may be called concurrently with Close.
func (p *LocalPTY) Resize(cols, rows uint16) error {
	// Not pty.Setsize: it takes the bare descriptor (f.Fd), which a concurrent Close may close and the process
	// reuse for another file. Control holds a reference that keeps the descriptor open meanwhile.
	sc, err := p.f.SyscallConn()
	if err != nil {
		return err
	}
	size := pty.Winsize{Cols: cols, Rows: rows}
	var errno syscall.Errno
	if err := sc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCSWINSZ, uintptr(unsafe.Pointer(&size)))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return fmt.Errorf("set the pty's size: %w", errno)
	}
	return nil
}

// Close hangs up, as when a terminal window closes: the command's process group gets SIGHUP, and SIGKILL after
// hangupGrace if the command is still there (it ignores SIGHUP, as everything started under nohup does). It
// returns once the command has ended, or after twice hangupGrace at most.
func (p *LocalPTY) Close() error {
	p.once.Do(func() {
		p.closeErr = p.f.Close()
		select {
		case <-p.exited:
			// It ended by itself, maybe long ago: its pid, the group's id, may be another process's by now.
		default:
			p.hangUp()
		}
		close(p.gaveUp)
	})
	return p.closeErr
}

// hangUp ends the command's process group. The group is signalled only while its id cannot be another's: while
// its leader runs, or just after (Linux hands out pids in a cycle, so a freed one is not reused for a long time),
// or while any of its processes lives.
func (p *LocalPTY) hangUp() {
	group := -p.cmd.Process.Pid
	_ = syscall.Kill(group, syscall.SIGHUP)
	p.waitExit()
	// Even when the command has ended, what it left in its group (a background job that ignores SIGHUP) goes.
	_ = syscall.Kill(group, syscall.SIGKILL)
	p.waitExit()
}

func (p *LocalPTY) waitExit() {
	timer := time.NewTimer(hangupGrace)
	defer timer.Stop()
	select {
	case <-p.exited:
	case <-timer.C:
	}
}

// ended is the end of a TTY's output, with the command's exit code.
type ended struct {
	code  int
	cause error
}

func (e *ended) Error() string { return fmt.Sprintf("terminal ended (exit %d): %v", e.code, e.cause) }
func (e *ended) ExitCode() int { return e.code }

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
