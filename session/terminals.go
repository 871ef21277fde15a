package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sandlot/sandlot/instance"
	"github.com/sandlot/sandlot/internal/holder"
	"github.com/sandlot/sandlot/terminal"
)

// MaxTerminalsPerNode is how many terminals (each its own shell) one node may have.
const MaxTerminalsPerNode = 8

func terminalKey(id, name string, tid int) string { return fmt.Sprintf("%s/%s/%d", id, name, tid) }

// Terminal returns terminal tid (1 to MaxTerminalsPerNode) of a node of a live session: the running one, or a new
// login shell.
func (s *Service) Terminal(ctx context.Context, id, name string, tid int) (*terminal.Terminal, error) {
	if tid < 1 || tid > MaxTerminalsPerNode {
		return nil, fmt.Errorf("%w: terminal %d (1 to %d)", ErrInvalid, tid, MaxTerminalsPerNode)
	}
	if _, err := s.LiveInstance(ctx, id, name); err != nil {
		return nil, err
	}
	return s.terminals.Get(terminalKey(id, name, tid), 80, 24, s.shell(ctx, id, name, tid))
}

// TypeInto types text into the first terminal of a node of a live session (opening its shell if none is open),
// where the page's terminal shows it and what it prints.
func (s *Service) TypeInto(ctx context.Context, id, name, text string) error {
	t, err := s.Terminal(ctx, id, name, 1)
	if err != nil {
		return err
	}
	return t.Type([]byte(text))
}

// ShellHolder is what nodes offer that can hold shells in the node (an instance.Driver given a holder binary), so
// that a terminal's shell outlives the server: HoldTTY reattaches to the shell in a slot, or starts one.
type ShellHolder interface {
	HoldTTY(ctx context.Context, session, name string, opts instance.HoldOptions) (*holder.Conn, bool, error)
}

// shell opens login shell tid on a node. The shell outlives the request that opened it: it ends with its
// terminal, not with ctx. Where nodes hold shells, it also outlives this server: a shell already held in the
// slot is reattached to, with its output and offsets.
func (s *Service) shell(ctx context.Context, id, name string, tid int) func() (terminal.TTY, error) {
	return func() (terminal.TTY, error) {
		if h, ok := s.nodes.(ShellHolder); ok {
			tty, reattached, err := h.HoldTTY(context.WithoutCancel(ctx), id, name, instance.HoldOptions{
				TTYOptions: instance.TTYOptions{Cols: 80, Rows: 24}, Slot: tid,
				Keep: s.cfg.ShellKeep, Orphan: s.cfg.ShellOrphan})
			if err == nil {
				if reattached {
					s.log.Info("reattached to a held shell", "session", id, "node", name, "terminal", tid)
				}
				return heldTTY{Conn: tty, typed: func() { s.input.typed(id) }}, nil
			}
			if !errors.Is(err, instance.ErrNotHeld) {
				return nil, err
			}
		}
		tty, err := s.nodes.OpenTTY(context.WithoutCancel(ctx), id, name, instance.TTYOptions{Cols: 80, Rows: 24})
		if err != nil {
			return nil, err
		}
		return nodeTTY{tty: tty, typed: func() { s.input.typed(id) }}, nil
	}
}

// prewarm opens a new node's first shell while its engine is still starting, so that the page's first terminal
// finds a prompt waiting rather than starting a shell then. Nobody using it costs little: the idle sweep closes it.
func (s *Service) prewarm(id, name string) {
	if s.isFilling(id) {
		return // a pooled session opens its first node's shell alone, once set up (see fill)
	}
	go func() {
		if _, err := s.terminals.Get(terminalKey(id, name, 1), 80, 24, s.shell(context.Background(), id, name, 1)); err != nil {
			s.log.Debug("prewarm a shell", "session", id, "node", name, "err", err)
		}
	}()
}

// heldTTY is a held shell as the terminal package takes it (a Replayer, an Acker and a Releaser): what is
// written to it is typed by the terminal's driver, and typed is told.
type heldTTY struct {
	*holder.Conn
	typed func()
}

func (h heldTTY) Write(p []byte) (int, error) {
	h.typed()
	return h.Conn.Write(p)
}

// nodeTTY adapts a node's exec TTY to the terminal package: sizes in uint16, and the shell's exit code at the end.
// What is written to it is typed by the terminal's driver: typed is told (see OnInput).
type nodeTTY struct {
	tty   TTY
	typed func()
}

func (n nodeTTY) Write(p []byte) (int, error) {
	n.typed()
	return n.tty.Write(p)
}

func (n nodeTTY) Close() error { return n.tty.Close() }

func (n nodeTTY) Resize(cols, rows uint16) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return n.tty.Resize(ctx, uint(cols), uint(rows))
}

func (n nodeTTY) Read(p []byte) (int, error) {
	c, err := n.tty.Read(p)
	if errors.Is(err, io.EOF) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if code, exited, ierr := n.tty.ExitCode(ctx); ierr == nil && exited {
			return c, shellEnded(code)
		}
	}
	return c, err
}

// shellEnded is the end of a shell's output, with its exit code.
type shellEnded int

func (e shellEnded) Error() string { return fmt.Sprintf("the shell exited with %d", int(e)) }
func (e shellEnded) ExitCode() int { return int(e) }
