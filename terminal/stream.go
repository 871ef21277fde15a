package terminal

import (
	"errors"
	"sync"
)

// ErrStreamEnded is what Stream.Next returns once the stream was closed, replaced by another driver, or its
// terminal closed.
var ErrStreamEnded = errors.New("terminal stream ended")

// Stream is a driver's connection to a terminal for a protocol that carries its own framing (several terminals on
// one socket, like Play-with-Docker's): output comes out of Next, acknowledged as it is taken, so the terminal's
// flow control paces the TTY by how fast the caller takes it. Next is called from one goroutine; Write, Resize
// and Close may be called from any.
type Stream struct {
	t    *Terminal
	c    *client
	once sync.Once
}

// Drive attaches a new driver of size cols x rows that starts with all the output kept (the prompt a fresh shell
// printed before anyone looked). It replaces the terminal's driver, if any.
func (t *Terminal) Drive(cols, rows uint16) *Stream {
	c, _, _, _, _ := t.attach(RoleDriver, 0, cols, rows)
	return &Stream{t: t, c: c}
}

// Next waits for output and returns it (a copy: the caller may keep it). When the shell exits it returns the
// bytes left, then an error with an ExitCode method; once the stream ends, ErrStreamEnded.
func (s *Stream) Next() ([]byte, error) {
	for {
		ev := s.t.nextEvent(s.c, &frames, coalesceDelay)
		switch {
		case ev.end:
			return nil, ErrStreamEnded
		case ev.exit:
			return nil, shellExit(ev.code)
		case ev.output != nil:
			out := append([]byte(nil), ev.output[9:]...)
			frames.Put(ev.frame)
			s.t.ack(s.c, ev.offset+uint64(len(out)))
			return out, nil
		}
		// A size change (this driver's own) or a pong: nothing the caller needs.
	}
}

// Write types p into the terminal, while this stream drives it.
func (s *Stream) Write(p []byte) (int, error) {
	if err := s.t.input(s.c, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Resize asks for a new size of the terminal, while this stream drives it.
func (s *Stream) Resize(cols, rows uint16) error {
	if err := checkSize(cols, rows); err != nil {
		return err
	}
	s.t.resize(s.c, cols, rows)
	return nil
}

// Close detaches the stream; a Next waiting returns ErrStreamEnded. The shell lives on.
func (s *Stream) Close() error {
	s.once.Do(func() { s.t.detach(s.c) })
	return nil
}

type shellExit int32

func (e shellExit) Error() string { return "the shell ended" }
func (e shellExit) ExitCode() int { return int(e) }
