package terminal

import (
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"time"
)

// TTY is a command running with a terminal: the terminal package reads its output, writes keystrokes, resizes it.
type TTY interface {
	io.ReadWriteCloser
	Resize(cols, rows uint16) error
}

// Options tune a terminal. Zero values mean the defaults.
type Options struct {
	Scrollback int // bytes of output kept for resuming clients; at least HighWater; default 1 MiB
	HighWater  int // unacknowledged output at which reading from the TTY pauses; default 1 MiB
	LowWater   int // ... and resumes; default 256 KiB
}

func (o Options) withDefaults() Options {
	if o.HighWater == 0 {
		o.HighWater = 1 << 20
	}
	if o.LowWater == 0 || o.LowWater >= o.HighWater {
		o.LowWater = o.HighWater / 4
	}
	if o.Scrollback < o.HighWater {
		o.Scrollback = o.HighWater
	}
	return o
}

// Terminal is one TTY shared by its clients: one driver, any number of viewers. Its output is kept in a bounded
// scrollback with offsets; clients read from it at their own pace, and reading from the TTY pauses while the
// driver is too far behind. It outlives its clients: a reload reconnects to the same shell.
type Terminal struct {
	tty  TTY
	opts Options

	mu         sync.Mutex
	changed    *sync.Cond // output, acks, size, exit or close: clients and the pump wait on it
	ring       *ring
	acked      uint64 // the driver's last acknowledgement (kept while no driver is connected)
	driver     *client
	clients    map[*client]struct{}
	cols, rows uint16
	exited     bool
	exitCode   int32
	closed     bool
	lastSeen   time.Time // when the last client left (zero while one is connected)
	pumpDone   chan struct{}
}

// New starts a terminal over tty with the size cols x rows.
func New(tty TTY, cols, rows uint16, opts Options) *Terminal {
	opts = opts.withDefaults()
	t := &Terminal{tty: tty, opts: opts, ring: newRing(opts.Scrollback), clients: map[*client]struct{}{},
		cols: cols, rows: rows, lastSeen: time.Now(), pumpDone: make(chan struct{})}
	t.changed = sync.NewCond(&t.mu)
	_ = tty.Resize(cols, rows)
	go t.pump()
	return t
}

// pump copies the TTY's output into the scrollback, pausing while the driver has HighWater bytes unacknowledged.
func (t *Terminal) pump() {
	defer close(t.pumpDone)
	// An idle pump sits in Read holding this buffer: small, so that idle terminals are cheap (a PTY hands over at
	// most a few KiB a read anyway).
	buf := make([]byte, 8<<10)
	paused := false
	for {
		t.mu.Lock()
		for !t.closed {
			behind := t.ring.end - t.acked
			if paused && behind > uint64(t.opts.LowWater) || !paused && behind >= uint64(t.opts.HighWater) {
				paused = true
				t.changed.Wait()
				continue
			}
			paused = false
			break
		}
		closed := t.closed
		t.mu.Unlock()
		if closed {
			return
		}
		n, err := t.tty.Read(buf)
		t.mu.Lock()
		if n > 0 {
			t.ring.write(buf[:n])
		}
		if err != nil {
			t.exited = true
			var coded interface{ ExitCode() int }
			if errors.As(err, &coded) {
				t.exitCode = int32(coded.ExitCode())
			}
		}
		t.changed.Broadcast()
		t.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// SetExitCode records the shell's exit code, for TTYs that learn it after their output ends.
func (t *Terminal) SetExitCode(code int) {
	t.mu.Lock()
	t.exitCode = int32(code)
	t.changed.Broadcast()
	t.mu.Unlock()
}

// Close ends the terminal: the TTY is closed (its shell hangs up) and every client is told.
func (t *Terminal) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.changed.Broadcast()
	t.mu.Unlock()
	err := t.tty.Close()
	<-t.pumpDone
	return err
}

// Idle reports since when the terminal has had no client (zero if it has one now).
func (t *Terminal) Idle() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.clients) > 0 {
		return 0
	}
	return time.Since(t.lastSeen)
}

// Done reports whether the shell has ended or the terminal was closed.
func (t *Terminal) Done() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.exited || t.closed
}

// burstFrame is the size of frame after which more output is taken for a burst and coalesced.
const burstFrame = 512

// client is one connection's view of a terminal.
type client struct {
	role   uint8
	next   uint64 // offset of the next byte to send it
	cols   uint16 // the size it was last told
	rows   uint16
	gone   bool
	kicked bool      // replaced by another driver
	pongs  [][]byte  // answers to its pings, for its writer to send
	sentAt time.Time // when output was last sent to it
	sentN  int       // and how much
}

// attach adds a client that wants output from offset resume (0: all that is kept). It returns the offset output
// will start from and whether bytes the client asked for are gone.
func (t *Terminal) attach(role uint8, resume uint64, cols, rows uint16) (*client, uint64, bool, uint16, uint16) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := &client{role: role, next: resume}
	lost := false
	if resume < t.ring.start || resume > t.ring.end {
		// 0 asks for all that is kept; any other offset outside the scrollback lost bytes.
		c.next, lost = t.ring.start, resume != 0
	}
	if role == RoleDriver {
		if t.driver != nil {
			t.driver.kicked = true
		}
		t.driver = c
		// Output the new driver already has counts as acknowledged.
		t.acked = max(t.acked, c.next)
		if cols != t.cols || rows != t.rows {
			t.cols, t.rows = cols, rows
			_ = t.tty.Resize(cols, rows)
		}
	}
	c.cols, c.rows = t.cols, t.rows
	t.clients[c] = struct{}{}
	t.changed.Broadcast()
	return c, c.next, lost, t.cols, t.rows
}

// detach removes a client.
func (t *Terminal) detach(c *client) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c.gone = true
	delete(t.clients, c)
	if t.driver == c {
		t.driver = nil
	}
	if len(t.clients) == 0 {
		t.lastSeen = time.Now()
	}
	t.changed.Broadcast()
}

// event is what a client's writer must send next.
type event struct {
	output []byte // an OUTPUT message: output starting at offset, in frame
	frame  *[]byte
	offset uint64
	lost   bool // output jumped forward to offset: bytes before it are gone
	resize bool
	cols   uint16
	rows   uint16
	exit   bool
	code   int32
	pong   []byte
	end    bool // the client is detached, replaced, or the terminal closed: stop
	kicked bool // ... because a newer driver took over
}

// nextEvent waits until there is something for c and returns it, reading at most len(buf) bytes of output.
// Coalescing: in a burst (the last frame was large and went out less than coalesce ago) a little waiting output
// waits out the rest of that interval for more, so a burst becomes few frames; echoes of keystrokes are small
// and go at once, however fast the typing.
func (t *Terminal) nextEvent(c *client, pool *sync.Pool, coalesce time.Duration) event {
	t.mu.Lock()
	defer t.mu.Unlock()
	waited := false
	for {
		switch {
		case c.gone || c.kicked || t.closed:
			return event{end: true, kicked: c.kicked}
		case len(c.pongs) > 0:
			p := c.pongs[0]
			c.pongs = c.pongs[1:]
			return event{pong: p}
		case c.cols != t.cols || c.rows != t.rows:
			c.cols, c.rows = t.cols, t.rows
			return event{resize: true, cols: t.cols, rows: t.rows}
		case c.next < t.ring.end:
			since := time.Since(c.sentAt)
			if burst := c.sentN >= burstFrame && since < coalesce; burst && !waited && int(t.ring.end-c.next) < maxFrame/2 && !t.exited {
				waited = true
				t.mu.Unlock()
				time.Sleep(coalesce - since)
				t.mu.Lock()
				continue
			}
			frame := pool.Get().(*[]byte)
			buf := *frame
			// The frame is the whole OUTPUT message: type, offset, then the bytes read straight into it.
			n, at := t.ring.read(c.next, buf[9:])
			buf[0] = msgOutput
			binary.BigEndian.PutUint64(buf[1:9], at)
			lost := at != c.next
			c.next = at + uint64(n)
			c.sentAt, c.sentN = time.Now(), n
			return event{output: buf[:9+n], frame: frame, offset: at, lost: lost}
		case t.exited:
			c.gone = true
			return event{exit: true, code: t.exitCode}
		}
		t.changed.Wait()
	}
}

// pong queues an answer to a client's ping (at most 4 waiting: a client that floods pings loses answers).
func (t *Terminal) pong(c *client, payload []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(c.pongs) < 4 {
		c.pongs = append(c.pongs, append([]byte{msgPong}, payload...))
		t.changed.Broadcast()
	}
}

// input types into the TTY.
func (t *Terminal) input(p []byte) error {
	_, err := t.tty.Write(p)
	return err
}

// ack records that the driver c has consumed output up to offset.
func (t *Terminal) ack(c *client, offset uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.driver != c || offset > t.ring.end {
		return
	}
	if offset > t.acked {
		t.acked = offset
		t.changed.Broadcast()
	}
}

// resize sets the TTY's size (the driver's size wins) and tells every client.
func (t *Terminal) resize(cols, rows uint16) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cols == t.cols && rows == t.rows {
		return nil
	}
	t.cols, t.rows = cols, rows
	t.changed.Broadcast()
	return t.tty.Resize(cols, rows)
}
