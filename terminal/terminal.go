package terminal

import (
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"time"
)

// TTY is a command running with a terminal: the terminal package reads its output, writes keystrokes, resizes it.
// One goroutine reads; Write and Resize may be called concurrently with it and with each other. Resize may be slow
// (an engine round trip): it holds up nothing but later resizes.
type TTY interface {
	io.ReadWriteCloser
	Resize(cols, rows uint16) error
}

// Replayer is a TTY that comes with output it already had: a shell kept in its node by a holder, reattached to
// after the server restarted. The terminal's offsets continue from first, its scrollback starts with kept, and
// acked is how far the driver had consumed.
type Replayer interface {
	Replay() (first uint64, kept []byte, acked uint64)
}

// Acker is a TTY that is told how far the driver has consumed the output (a holder paces the shell by it, as the
// terminal paces reading). Ack may be slow; it is called outside the terminal's lock, with offsets that grow.
type Acker interface {
	Ack(offset uint64)
}

// Releaser is a TTY that can let go of its command without ending it (a holder keeps the shell for the next
// server). A TTY whose Read returns an error with a Released method that reports true has been let go of from
// the other side (another server took the shell over): the terminal ends as by Release, its command does not.
type Releaser interface {
	Release() error
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
	acks       *sync.Cond // the pump waits on it while paused: acknowledgements, and Close
	ring       *ring
	acked      uint64 // the driver's last acknowledgement (kept while no driver is connected)
	driver     *client
	clients    map[*client]struct{}
	cols, rows uint16 // the size clients are told: the driver's
	exited     bool
	exitCode   int32
	closed     bool
	released   bool      // closed by Release: the shell lives on for the next server
	lastSeen   time.Time // when the last client left (zero while one is connected)
	pumpDone   chan struct{}

	// Resizing the TTY can be an engine round trip, so it happens in a goroutine of its own, started when the
	// size changes and ending once the TTY has the latest size; Close waits for it.
	ttyCols, ttyRows uint16 // the size last given to the TTY
	resizing         bool
	resizer          sync.WaitGroup
}

// New starts a terminal over tty with the size cols x rows.
func New(tty TTY, cols, rows uint16, opts Options) *Terminal {
	opts = opts.withDefaults()
	t := &Terminal{tty: tty, opts: opts, ring: newRing(opts.Scrollback), clients: map[*client]struct{}{},
		cols: cols, rows: rows, lastSeen: time.Now(), pumpDone: make(chan struct{})}
	t.acks = sync.NewCond(&t.mu)
	if r, ok := tty.(Replayer); ok {
		first, kept, acked := r.Replay()
		t.ring.start, t.ring.end = first, first
		t.ring.write(kept)
		t.acked = min(max(acked, t.ring.start), t.ring.end)
	}
	t.mu.Lock()
	t.wantSize(cols, rows)
	t.mu.Unlock()
	go t.pump()
	return t
}

// pump copies the TTY's output into the scrollback, pausing while the driver has HighWater bytes unacknowledged.
func (t *Terminal) pump() {
	defer close(t.pumpDone)
	// An idle pump sits in Read holding its buffer: a small one, so that idle terminals are cheap. A read that
	// fills it is output streaming: the next reads take a large buffer, borrowed until a read leaves most of it
	// empty again.
	small := make([]byte, 8<<10)
	var large *[]byte
	defer func() {
		if large != nil {
			readBuffers.Put(large)
		}
	}()
	var wake []*sync.Cond
	paused := false
	// room is how much may be read without pushing unacknowledged output out of the scrollback (the driver would
	// lose it); acknowledgements meanwhile only make more.
	room := t.opts.Scrollback
	for {
		buf := small
		if large != nil {
			buf = *large
		}
		n, err := t.tty.Read(buf[:min(len(buf), room)])
		switch {
		case large == nil && n == len(small):
			large = readBuffers.Get().(*[]byte)
		case large != nil && n < len(*large)/2:
			readBuffers.Put(large)
			large = nil
		}
		t.mu.Lock()
		if n > 0 {
			t.ring.write(buf[:n])
		}
		var released interface{ Released() bool }
		if err != nil && errors.As(err, &released) && released.Released() {
			t.closed, t.released = true, true // as by Release; Close then has nothing left to do
			t.wakeClients()
			if r, ok := t.tty.(Releaser); ok {
				defer r.Release()
			}
		} else if err != nil {
			t.exited = true
			var coded interface{ ExitCode() int }
			if errors.As(err, &coded) {
				t.exitCode = int32(coded.ExitCode())
			}
		}
		if err != nil || t.closed || !t.holdBack(&paused) {
			room = t.room()
			wake = t.writers(wake[:0])
			stop := err != nil || t.closed
			t.mu.Unlock()
			// Woken after the unlock, the writers find the mutex free. Woken before, they would queue on it, and
			// unlocking would ready the first of them to run ahead of the driver's.
			for _, w := range wake {
				w.Broadcast()
			}
			if stop {
				return
			}
			continue
		}
		// Too far behind: the writers send what there is (for the driver to acknowledge) while reading waits.
		t.wakeClients()
		for !t.closed && t.holdBack(&paused) {
			t.acks.Wait()
		}
		room = t.room()
		closed := t.closed
		t.mu.Unlock()
		if closed {
			return
		}
	}
}

// readBuffers lends pumps the buffers they read streaming output into.
var readBuffers = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// room is how many bytes the scrollback can take before it drops output the driver has not acknowledged. The
// caller holds t.mu.
func (t *Terminal) room() int { return t.opts.Scrollback - int(t.ring.end-t.acked) }

// holdBack reports whether reading from the TTY should wait for acknowledgements: from HighWater bytes
// unacknowledged until they are down to LowWater. The caller holds t.mu.
func (t *Terminal) holdBack(paused *bool) bool {
	behind := t.ring.end - t.acked
	*paused = behind >= uint64(t.opts.HighWater) || *paused && behind > uint64(t.opts.LowWater)
	return *paused
}

// Close ends the terminal: the TTY is closed (its shell hangs up) and every client is told.
func (t *Terminal) Close() error { return t.end(false) }

// Release ends the terminal for a server that stops: a TTY that can (a Releaser) lets go of its shell without
// ending it, for the next server to reattach to, and clients are told to reconnect (close code 1012). Other TTYs
// are closed.
func (t *Terminal) Release() error { return t.end(true) }

func (t *Terminal) end(release bool) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.released = release
	t.wakeClients()
	t.acks.Broadcast()
	t.mu.Unlock()
	var err error
	if r, ok := t.tty.(Releaser); ok && release {
		err = r.Release()
	} else {
		err = t.tty.Close()
	}
	<-t.pumpDone
	t.resizer.Wait()
	return err
}

// wakeClients tells every client's writer that something changed: output, size, exit or close. The caller holds
// t.mu.
func (t *Terminal) wakeClients() {
	for c := range t.clients {
		c.changed.Broadcast()
	}
}

// writers appends what the clients' writers wait on to w, the driver's last: Go's scheduler runs the goroutine
// readied last first (it takes the processor's next slot), and the driver is the one typing. The caller holds t.mu.
func (t *Terminal) writers(w []*sync.Cond) []*sync.Cond {
	for c := range t.clients {
		if c != t.driver {
			w = append(w, c.changed)
		}
	}
	if t.driver != nil {
		w = append(w, t.driver.changed)
	}
	return w
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
	changed *sync.Cond // on the terminal's mutex: its writer waits on it for something to send
	role    uint8
	next    uint64 // offset of the next byte to send it
	cols    uint16 // the size it was last told
	rows    uint16
	gone    bool
	kicked  bool      // replaced by another driver
	pongs   [][]byte  // answers to its pings, for its writer to send
	sentAt  time.Time // when output was last sent to it
	sentN   int       // and how much
}

// attach adds a client that wants output from offset resume (0: all that is kept). It returns the offset output
// will start from and whether bytes the client asked for are gone.
func (t *Terminal) attach(role uint8, resume uint64, cols, rows uint16) (*client, uint64, bool, uint16, uint16) {
	t.mu.Lock()
	acked := t.acked
	defer func() {
		newAck := t.acked
		t.mu.Unlock()
		if newAck != acked {
			t.tellAcked(newAck)
		}
	}()
	c := &client{changed: sync.NewCond(&t.mu), role: role, next: resume}
	lost := false
	if resume < t.ring.start || resume > t.ring.end {
		// 0 asks for all that is kept; any other offset outside the scrollback lost bytes.
		c.next, lost = t.ring.start, resume != 0
	}
	if role == RoleDriver {
		if t.driver != nil {
			t.driver.kicked = true
			t.driver.changed.Broadcast()
		}
		t.driver = c
		// Output the new driver already has counts as acknowledged.
		if c.next > t.acked {
			t.acked = c.next
			t.acks.Broadcast()
		}
		if cols != t.cols || rows != t.rows {
			t.wantSize(cols, rows)
		}
	}
	c.cols, c.rows = t.cols, t.rows
	t.clients[c] = struct{}{}
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
	c.changed.Broadcast()
}

// event is what a client's writer must send next.
type event struct {
	output   []byte // an OUTPUT message: output starting at offset, in frame
	frame    *[]byte
	offset   uint64
	lost     bool // output jumped forward to offset: bytes before it are gone
	resize   bool
	cols     uint16
	rows     uint16
	exit     bool
	code     int32
	pong     []byte
	end      bool // the client is detached, replaced, or the terminal closed: stop
	kicked   bool // ... because a newer driver took over
	released bool // ... because the server stops and the shell lives on
}

// nextEvent waits until there is something for c and returns it, with at most a frame of output (from pool).
// Coalescing: in a burst (the last frame was large and went out less than coalesce ago) a little waiting output
// waits out the rest of that interval for more, so a burst becomes few frames; echoes of keystrokes are small
// and go to the driver at once, however fast the typing. A viewer's output always waits coalesce for more: a
// viewer gets at most a frame per interval, and its frame goes after the driver's echo rather than beside it.
func (t *Terminal) nextEvent(c *client, pool *sync.Pool, coalesce time.Duration) event {
	t.mu.Lock()
	defer t.mu.Unlock()
	waited := false
	for {
		switch {
		case c.gone || c.kicked || t.closed:
			return event{end: true, kicked: c.kicked, released: t.released && !c.gone}
		case len(c.pongs) > 0:
			p := c.pongs[0]
			c.pongs = c.pongs[1:]
			return event{pong: p}
		case c.cols != t.cols || c.rows != t.rows:
			c.cols, c.rows = t.cols, t.rows
			return event{resize: true, cols: t.cols, rows: t.rows}
		case c.next < t.ring.end:
			if !waited && int(t.ring.end-c.next) < maxFrame/2 && !t.exited {
				wait := time.Duration(0)
				if since := time.Since(c.sentAt); c.sentN >= burstFrame && since < coalesce {
					wait = coalesce - since // a burst
				}
				if c.role == RoleViewer {
					wait = coalesce
				}
				if wait > 0 {
					waited = true
					t.mu.Unlock()
					time.Sleep(wait)
					t.mu.Lock()
					continue
				}
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
		c.changed.Wait()
	}
}

// pong queues an answer to a client's ping (at most 4 waiting: a client that floods pings loses answers).
func (t *Terminal) pong(c *client, payload []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(c.pongs) < 4 {
		c.pongs = append(c.pongs, append([]byte{msgPong}, payload...))
		c.changed.Broadcast()
	}
}

// input types into the TTY what the driver c typed. A driver that was replaced types nothing: its connection is
// being closed.
func (t *Terminal) input(c *client, p []byte) error {
	t.mu.Lock()
	driving := t.driver == c
	t.mu.Unlock()
	if !driving {
		return nil
	}
	_, err := t.tty.Write(p)
	return err
}

// ErrClosed is what Type answers once the terminal has closed or its TTY has ended.
var ErrClosed = errors.New("terminal: closed")

// Type writes p into the TTY as if the driver had typed it, whether or not one is connected: for the server to
// run something where the driver sees it and what it prints.
func (t *Terminal) Type(p []byte) error {
	t.mu.Lock()
	done := t.closed || t.exited
	t.mu.Unlock()
	if done {
		return ErrClosed
	}
	_, err := t.tty.Write(p)
	return err
}

// ack records that the driver c has consumed output up to offset.
func (t *Terminal) ack(c *client, offset uint64) {
	t.mu.Lock()
	if t.driver != c || offset > t.ring.end || offset <= t.acked {
		t.mu.Unlock()
		return
	}
	t.acked = offset
	t.acks.Broadcast()
	t.mu.Unlock()
	t.tellAcked(offset)
}

// tellAcked passes an acknowledgement on to a TTY that paces its command by them (an Acker).
func (t *Terminal) tellAcked(offset uint64) {
	if a, ok := t.tty.(Acker); ok {
		a.Ack(offset)
	}
}

// resize sets the terminal's size to what the driver c asks (the driver's size wins).
func (t *Terminal) resize(c *client, cols, rows uint16) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.driver == c && (cols != t.cols || rows != t.rows) {
		t.wantSize(cols, rows)
	}
}

// wantSize makes cols x rows the terminal's size. Clients are told at once; the TTY follows in the background, so
// that a slow resize (an engine round trip) holds up no output, input or client. The caller holds t.mu.
func (t *Terminal) wantSize(cols, rows uint16) {
	t.cols, t.rows = cols, rows
	t.wakeClients()
	if t.resizing || t.closed {
		return // the running resizer picks up the new size; after Close there is no TTY to resize
	}
	t.resizing = true
	t.resizer.Add(1)
	go t.applySize()
}

// applySize gives the TTY the wanted size until it has the latest: sizes wanted while a resize is under way
// coalesce into one.
func (t *Terminal) applySize() {
	defer t.resizer.Done()
	t.mu.Lock()
	defer t.mu.Unlock()
	for !t.closed && (t.ttyCols != t.cols || t.ttyRows != t.rows) {
		cols, rows := t.cols, t.rows
		t.mu.Unlock()
		// A failed resize is not retried: the next size change tries again, and a TTY that fails because its
		// shell is gone ends through its output.
		_ = t.tty.Resize(cols, rows)
		t.mu.Lock()
		t.ttyCols, t.ttyRows = cols, rows
	}
	t.resizing = false
}
