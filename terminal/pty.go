package terminal

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"github.com/creack/pty"
)

// LocalPTY is a local command with a pseudo-terminal, for tests and local use.
type LocalPTY struct {
	cmd  *exec.Cmd
	f    *os.File
	once sync.Once
	wait chan struct{}
	err  error
}

// StartLocal runs name with args on a new PTY, with TERM=xterm-256color.
func StartLocal(name string, args ...string) (*LocalPTY, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "TERM=xterm-256color")
	f, err := pty.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s on a pty: %w", name, err)
	}
	p := &LocalPTY{cmd: cmd, f: f, wait: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.wait) }()
	return p, nil
}

// Read reads output; when the command has ended it returns an error that carries its exit code.
func (p *LocalPTY) Read(b []byte) (int, error) {
	n, err := p.f.Read(b)
	if err != nil {
		<-p.wait
		return n, &ended{code: exitCode(p.err), cause: err}
	}
	return n, nil
}

// Write types into the terminal.
func (p *LocalPTY) Write(b []byte) (int, error) { return p.f.Write(b) }

// Resize sets the terminal size.
func (p *LocalPTY) Resize(cols, rows uint16) error {
	return pty.Setsize(p.f, &pty.Winsize{Cols: cols, Rows: rows})
}

// Close hangs up: the command gets SIGHUP, as when a terminal window closes.
func (p *LocalPTY) Close() error {
	var err error
	p.once.Do(func() {
		err = p.f.Close()
		if p.cmd.Process != nil {
			_ = p.cmd.Process.Signal(syscall.SIGHUP)
		}
	})
	return err
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
