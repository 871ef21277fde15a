package holder

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Bounds of Sandlot's waits (variables for tests). attachTimeout bounds the welcome and the kept output that
// follows it; writeTimeout each write to a holder: one that reads nothing (stopped, or not a holder) ends its
// terminal rather than holding up whoever types.
var (
	attachTimeout = 3 * time.Second
	writeTimeout  = 5 * time.Second
)

// Timeouts of Sandlot's side.
const (
	// endTimeout bounds telling a holder to hang up.
	endTimeout = time.Second
)

// Conn is Sandlot's connection to a holder: it reads the shell's output, types into it, resizes it, and
// acknowledges what the driver consumed. Read is for one goroutine; the others may be called from any.
type Conn struct {
	c     net.Conn
	first uint64 // offset of kept[0]
	kept  []byte // the output the holder kept, read at attach
	acked uint64 // the holder's last acknowledgement when attached
	cols  uint16
	rows  uint16

	r       *bufio.Reader // of c: a frame in one read, mostly
	buf     []byte        // a frame's payload being read
	pending []byte        // output of the last frame not yet returned by Read
	next    uint64        // offset after the last byte read
	exit    error         // the shell's end, once the holder said so

	wmu     sync.Mutex
	ackSent uint64
	once    sync.Once
}

// Attach says hello on c and reads the holder's welcome and the output it kept (at most maxKept bytes), within a
// few seconds. Whatever the holder says is checked: a holder that breaks the protocol, claims more than maxKept or
// offsets that do not add up, or stalls, is refused and c closed.
func Attach(c net.Conn, maxKept int) (*Conn, error) {
	hc := &Conn{c: c, r: bufio.NewReaderSize(c, headerLen+outputChunk), buf: make([]byte, MaxPayload)}
	if err := hc.attach(maxKept); err != nil {
		c.Close()
		return nil, fmt.Errorf("attach to a shell's holder: %w", err)
	}
	return hc, nil
}

func (h *Conn) attach(maxKept int) error {
	_ = h.c.SetDeadline(time.Now().Add(attachTimeout))
	defer h.c.SetDeadline(time.Time{})
	if err := h.send(frameHello, []byte{Version}); err != nil {
		return err
	}
	typ, p, err := readFrame(h.r, h.buf)
	if err != nil {
		return err
	}
	if typ != frameWelcome {
		return fmt.Errorf("%w: a frame %q before the welcome", ErrProtocol, typ)
	}
	w, err := parseWelcome(p, maxKept)
	if err != nil {
		return err
	}
	h.first, h.next, h.acked, h.cols, h.rows = w.first, w.first, w.acked, w.cols, w.rows
	want := int(w.end - w.first)
	h.kept = make([]byte, 0, want)
	for len(h.kept) < want {
		typ, p, err := readFrame(h.r, h.buf)
		if err != nil {
			return err
		}
		switch typ {
		case frameOutput:
			if len(p) > want-len(h.kept) {
				// The rest is output since the welcome: keep it for Read.
				h.pending = append([]byte(nil), p[want-len(h.kept):]...)
				p = p[:want-len(h.kept)]
			}
			h.kept = append(h.kept, p...)
		case frameExit:
			return fmt.Errorf("%w: the exit before the %d bytes the welcome promised", ErrProtocol, want)
		default:
			return fmt.Errorf("%w: a frame %q", ErrProtocol, typ)
		}
	}
	h.next = w.end
	return nil
}

// Replay returns the output the holder kept, from offset first, and the offset the driver had acknowledged.
func (h *Conn) Replay() (first uint64, kept []byte, acked uint64) { return h.first, h.kept, h.acked }

// Size is the terminal's size as the holder has it.
func (h *Conn) Size() (cols, rows uint16) { return h.cols, h.rows }

// ShellExit is the end of a held shell's output, with its exit code (-1 when the holder went without saying).
type ShellExit struct{ Code int }

func (e *ShellExit) Error() string {
	if e.Code == -1 {
		return "the shell's holder went away"
	}
	return fmt.Sprintf("the shell exited with %d", e.Code)
}

// ExitCode is the shell's exit code.
func (e *ShellExit) ExitCode() int { return e.Code }

// ErrTaken is what Read returns once another Sandlot took the shell over: this connection has ended, the shell
// has not. Its Released method says so to the terminal package (its clients are told to reconnect).
var ErrTaken error = taken{}

type taken struct{}

func (taken) Error() string  { return "another Sandlot took the shell over" }
func (taken) Released() bool { return true }

// Read returns output after the kept output. Once the shell ended it returns a *ShellExit: with the holder's
// code, or -1 when the holder went (or broke the protocol) without one; ErrTaken once another Sandlot took the
// shell over.
func (h *Conn) Read(p []byte) (int, error) {
	for len(h.pending) == 0 {
		if h.exit != nil {
			return 0, h.exit
		}
		typ, q, err := readFrame(h.r, h.buf)
		switch {
		case err != nil:
			h.exit = &ShellExit{Code: -1}
		case typ == frameOutput:
			if h.next+uint64(len(q)) > maxOffset {
				h.exit = &ShellExit{Code: -1}
				break
			}
			h.pending = q
		case typ == frameExit && len(q) == 4:
			h.exit = &ShellExit{Code: int(int32(binary.BigEndian.Uint32(q)))}
		case typ == frameTaken && len(q) == 0:
			h.exit = ErrTaken
		default:
			h.exit = &ShellExit{Code: -1}
		}
		if h.exit != nil {
			h.c.Close()
		}
	}
	n := copy(p, h.pending)
	h.pending = h.pending[n:]
	h.next += uint64(n)
	return n, nil
}

// send writes one frame, within writeTimeout.
func (h *Conn) send(typ byte, p []byte) error {
	hdr := header(typ, len(p))
	h.wmu.Lock()
	defer h.wmu.Unlock()
	_ = h.c.SetWriteDeadline(time.Now().Add(writeTimeout))
	bufs := net.Buffers{hdr[:], p}
	_, err := bufs.WriteTo(h.c)
	return err
}

// Write types p into the shell. A holder that takes nothing for writeTimeout ends its terminal (Read then
// reports it gone), so that the next one starts afresh rather than typing into a stalled one.
func (h *Conn) Write(p []byte) (int, error) {
	done := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), outputChunk)]
		if err := h.send(frameInput, chunk); err != nil {
			h.c.Close()
			return done, err
		}
		done += len(chunk)
		p = p[len(chunk):]
	}
	return done, nil
}

// Resize sets the terminal's size.
func (h *Conn) Resize(cols, rows uint16) error {
	var b [4]byte
	binary.BigEndian.PutUint16(b[:], cols)
	binary.BigEndian.PutUint16(b[2:], rows)
	return h.send(frameSize, b[:])
}

// Ack tells the holder the driver has consumed output up to offset, so that it may read more of the shell's.
func (h *Conn) Ack(offset uint64) {
	h.wmu.Lock()
	if offset <= h.ackSent {
		h.wmu.Unlock()
		return
	}
	h.ackSent = offset
	h.wmu.Unlock()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], offset)
	if err := h.send(frameAck, b[:]); err != nil && !errors.Is(err, net.ErrClosed) {
		h.c.Close() // a holder that takes nothing ends its terminal; Read then reports it
	}
}

// Close hangs the shell up (the holder ends it and exits) and closes the connection.
func (h *Conn) Close() error {
	h.once.Do(func() {
		h.wmu.Lock()
		_ = h.c.SetWriteDeadline(time.Now().Add(endTimeout))
		hdr := header(frameEnd, 0)
		_, _ = h.c.Write(hdr[:])
		h.wmu.Unlock()
		h.c.Close()
	})
	return nil
}

// Release lets go of the shell without ending it, for a Sandlot that stops: the holder keeps the shell and its
// output for the next one.
func (h *Conn) Release() error {
	h.once.Do(func() { h.c.Close() })
	return nil
}
