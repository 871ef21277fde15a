package holder

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
)

// Config says what a holder runs. Zero values mean the defaults.
type Config struct {
	Socket     string   // the unix socket it serves Sandlot on
	Cmd        []string // the shell; default bash -l
	Env        []string // the shell's environment; default the holder's own
	Cols, Rows uint16   // the terminal's first size; default 80x24
	Keep       int      // bytes of output kept for a Sandlot that comes back; default 1 MiB
	HighWater  int      // unacknowledged output at which reading the terminal pauses; default Keep
	LowWater   int      // ... and resumes; default HighWater/4
	// Orphan is how long the shell may go without a Sandlot connected before the holder ends it (default 30 min):
	// a shell nobody comes back for does not live as long as its node.
	Orphan time.Duration
	// Grace is how long the shell has to end after a hang-up before it is killed; default 1 s.
	Grace time.Duration
	// Quiet is how long a connected Sandlot may leave output unread before the holder drops it; default 10 s.
	Quiet time.Duration
}

func (c Config) withDefaults() Config {
	if len(c.Cmd) == 0 {
		c.Cmd = []string{"bash", "-l"}
	}
	if c.Env == nil {
		c.Env = os.Environ()
	}
	if c.Cols == 0 || c.Rows == 0 {
		c.Cols, c.Rows = 80, 24
	}
	if c.Keep <= 0 {
		c.Keep = 1 << 20
	}
	if c.HighWater <= 0 || c.HighWater > c.Keep {
		c.HighWater = c.Keep
	}
	if c.LowWater <= 0 || c.LowWater >= c.HighWater {
		c.LowWater = c.HighWater / 4
	}
	if c.Orphan <= 0 {
		c.Orphan = 30 * time.Minute
	}
	if c.Grace <= 0 {
		c.Grace = time.Second
	}
	if c.Quiet <= 0 {
		c.Quiet = 10 * time.Second
	}
	return c
}

// holder is one shell on a pseudo-terminal, its kept output and the Sandlot connected to it, if any.
type holder struct {
	cfg  Config
	ptmx *os.File
	cmd  *exec.Cmd

	mu         sync.Mutex
	changed    *sync.Cond // output, an acknowledgement, the exit, a connection coming or going
	out        outRing
	acked      uint64
	paused     bool
	exited     bool // the shell ended and its output is all read
	code       int32
	delivered  bool // a Sandlot was sent the exit
	cols, rows uint16
	conn       net.Conn // the Sandlot connected now
	link       *link    // its output side, once it was welcomed
	left       time.Time
	hungUp     bool
}

// Serve starts the shell and serves it on cfg.Socket until the shell has ended and a Sandlot was told (or none
// came for Orphan). A socket path some live holder answers on is refused.
func Serve(cfg Config) error {
	cfg = cfg.withDefaults()
	ln, err := listen(cfg.Socket)
	if err != nil {
		return err
	}
	defer os.Remove(cfg.Socket)
	defer ln.Close()
	h := &holder{cfg: cfg, out: outRing{keep: cfg.Keep}, cols: cfg.Cols, rows: cfg.Rows, left: time.Now()}
	h.changed = sync.NewCond(&h.mu)
	h.cmd = exec.Command(cfg.Cmd[0], cfg.Cmd[1:]...)
	h.cmd.Env = cfg.Env
	// pty.Start makes the shell the leader of a session of its own with the terminal as its controlling one, so
	// that its process group's id is its pid: a hang-up reaches the whole group.
	h.ptmx, err = pty.StartWithSize(h.cmd, &pty.Winsize{Cols: cfg.Cols, Rows: cfg.Rows})
	if err != nil {
		return fmt.Errorf("start %s on a terminal: %w", cfg.Cmd[0], err)
	}
	defer h.ptmx.Close()
	go h.readTerminal()
	go h.accept(ln)
	go h.watchOrphan()

	h.mu.Lock()
	for !h.exited {
		h.changed.Wait()
	}
	// The shell has ended. If it ended by itself, wait for a Sandlot to collect the last output and the exit, as
	// long as an orphan may wait; one that hung it up (or nobody, for Orphan) does not wait for them.
	deadline := time.Now().Add(cfg.Orphan)
	t := time.AfterFunc(cfg.Orphan, func() { h.mu.Lock(); h.changed.Broadcast(); h.mu.Unlock() })
	defer t.Stop()
	for !h.delivered && !h.hungUp && time.Now().Before(deadline) {
		h.changed.Wait()
	}
	conn := h.conn
	h.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
	return nil
}

// listen makes the socket, replacing a stale one (a holder that died); a path a live holder answers on is refused.
func listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s: another holder serves it", path)
	}
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	return ln, nil
}

// readTerminal copies the shell's output into the ring, pausing while HighWater bytes are unacknowledged until
// they are down to LowWater: a shell that prints while nobody reads is paused, not lost, and the ring never drops
// output the driver has not seen.
func (h *holder) readTerminal() {
	buf := make([]byte, outputChunk)
	for {
		h.mu.Lock()
		for h.holdBack() && !h.hungUp {
			h.changed.Wait()
		}
		// Never more than the ring can take without dropping unacknowledged output (once hung up, the end is all
		// that matters).
		room := len(buf)
		if !h.hungUp {
			room = min(room, h.cfg.Keep-int(h.out.end()-h.acked))
		}
		h.mu.Unlock()
		n, err := h.ptmx.Read(buf[:room])
		h.mu.Lock()
		if n > 0 {
			h.out.write(buf[:n])
			h.changed.Broadcast()
		}
		l := h.link
		h.mu.Unlock()
		// The short way for output: this goroutine writes it to the Sandlot itself, unless the connection's sender
		// is writing (it then takes this output too). Handing it to the sender would wake another thread, which is
		// most of a keystroke's echo.
		if n > 0 && l != nil && l.smu.TryLock() {
			if !h.flush(l) {
				l.c.Close()
			}
			l.smu.Unlock()
		}
		if err != nil {
			break // EIO once the shell and everything holding its terminal are gone
		}
	}
	err := h.cmd.Wait()
	h.mu.Lock()
	h.exited = true
	h.code = exitCode(err)
	h.changed.Broadcast()
	h.mu.Unlock()
}

// holdBack reports whether reading the terminal should wait for acknowledgements. The caller holds h.mu.
func (h *holder) holdBack() bool {
	behind := h.out.end() - h.acked
	h.paused = behind >= uint64(h.cfg.HighWater) || h.paused && behind > uint64(h.cfg.LowWater)
	return h.paused
}

func exitCode(err error) int32 {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int32(ws.Signal())
		}
		return int32(ee.ExitCode())
	}
	if err != nil {
		return -1
	}
	return 0
}

// accept serves each Sandlot that connects.
func (h *holder) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go h.serve(c)
	}
}

// watchOrphan hangs the shell up once no Sandlot has been connected for Orphan.
func (h *holder) watchOrphan() {
	for {
		h.mu.Lock()
		wait := h.cfg.Orphan
		if h.conn == nil {
			wait -= time.Since(h.left)
		}
		done := h.exited || h.hungUp
		h.mu.Unlock()
		if done {
			return
		}
		if wait <= 0 {
			h.hangUp()
			return
		}
		time.Sleep(min(wait, time.Minute))
	}
}

// hangUp ends the shell as a closed terminal window does: SIGHUP to its process group, SIGKILL after Grace to
// what is left of the group (what ignores SIGHUP, as everything under nohup does).
func (h *holder) hangUp() {
	h.mu.Lock()
	if h.hungUp {
		h.mu.Unlock()
		return
	}
	h.hungUp = true
	h.changed.Broadcast() // a paused reader reads on, so that the end is seen
	h.mu.Unlock()
	group := -h.cmd.Process.Pid
	_ = syscall.Kill(group, syscall.SIGHUP)
	_ = syscall.Kill(group, syscall.SIGCONT)
	go func() {
		time.Sleep(h.cfg.Grace)
		_ = syscall.Kill(group, syscall.SIGKILL)
	}()
}

// serve talks to one Sandlot: a hello, then the welcome and output from the oldest kept byte, while its input,
// sizes and acknowledgements come in. It ends when the Sandlot goes, is replaced, says nothing first, or breaks
// the protocol; the shell lives on.
func (h *holder) serve(c net.Conn) {
	defer func() {
		c.Close()
		h.mu.Lock()
		if h.conn == c {
			h.conn, h.link = nil, nil
			h.left = time.Now()
		}
		h.changed.Broadcast()
		h.mu.Unlock()
	}()
	r := bufio.NewReaderSize(c, 4<<10) // a keystroke's frame in one read
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, p, err := readFrame(r, make([]byte, 1))
	if err != nil || typ != frameHello || len(p) != 1 || p[0] != Version {
		return
	}
	buf := make([]byte, MaxPayload)
	_ = c.SetReadDeadline(time.Time{})
	// A Sandlot that said hello replaces the one before (a restarted Sandlot finds its predecessor's connection gone
	// or about to go); a connection that did not (garbage, a probe) replaces nothing.
	h.mu.Lock()
	old, oldLink := h.conn, h.link
	h.conn, h.link = c, nil
	h.changed.Broadcast()
	h.mu.Unlock()
	if oldLink != nil && oldLink.smu.TryLock() {
		// Tell it why, so that its clients reconnect rather than see the shell end; one that is busy writing is
		// just closed.
		oldLink.quiet = 100 * time.Millisecond
		oldLink.write(frameTaken, nil)
		oldLink.smu.Unlock()
	}
	if old != nil {
		old.Close()
	}
	h.mu.Lock()
	w := welcome{first: h.out.start, end: h.out.end(), acked: h.acked, cols: h.cols, rows: h.rows}
	h.mu.Unlock()
	sending := make(chan struct{})
	go func() { defer close(sending); h.send(c, w) }()
	defer func() { <-sending }()
	for {
		typ, p, err := readFrame(r, buf)
		if err != nil {
			return
		}
		switch {
		case typ == frameInput:
			if _, err := h.ptmx.Write(p); err != nil {
				return
			}
		case typ == frameSize && len(p) == 4:
			cols, rows := binary.BigEndian.Uint16(p), binary.BigEndian.Uint16(p[2:])
			if cols == 0 || rows == 0 {
				return
			}
			h.mu.Lock()
			h.cols, h.rows = cols, rows
			h.mu.Unlock()
			_ = pty.Setsize(h.ptmx, &pty.Winsize{Cols: cols, Rows: rows})
		case typ == frameAck && len(p) == 8:
			at := binary.BigEndian.Uint64(p)
			h.mu.Lock()
			if at > h.acked && at <= h.out.end() {
				h.acked = at
				h.changed.Broadcast()
			}
			h.mu.Unlock()
		case typ == frameEnd:
			h.hangUp()
		default:
			return
		}
	}
}

// link is the output side of a Sandlot's connection: how far its output has got, and the lock of writing to it,
// held by its sender or by the terminal's reader taking the short way (flush).
type link struct {
	c     net.Conn
	smu   sync.Mutex
	next  uint64 // the offset of the next byte to send; read under h.mu, changed under both h.mu and smu
	chunk []byte // guarded by smu
	quiet time.Duration
}

// write writes one frame, within quiet. The caller holds l.smu.
func (l *link) write(typ byte, p []byte) bool {
	hdr := header(typ, len(p))
	_ = l.c.SetWriteDeadline(time.Now().Add(l.quiet))
	bufs := net.Buffers{hdr[:], p}
	_, err := bufs.WriteTo(l.c)
	return err == nil
}

// flush sends l all the kept output it has not had. The caller holds l.smu.
func (h *holder) flush(l *link) bool {
	for {
		h.mu.Lock()
		p, at := h.out.from(l.next, outputChunk)
		// at > next would mean output this Sandlot has not had was dropped; flow control keeps the ring from
		// dropping unacknowledged output, and a connection starts at the oldest kept byte.
		n := copy(l.chunk, p)
		h.mu.Unlock()
		if n == 0 {
			return true
		}
		if !l.write(frameOutput, l.chunk[:n]) {
			return false
		}
		h.mu.Lock()
		l.next = at + uint64(n)
		h.mu.Unlock()
	}
}

// send writes the welcome, then the output from w.first as it comes (with the terminal's reader, see flush), then
// the exit. It stops when the connection is no longer the holder's, or a write takes longer than Quiet (a Sandlot
// that reads nothing).
func (h *holder) send(c net.Conn, w welcome) {
	defer c.Close() // the reader then ends too
	l := &link{c: c, next: w.first, chunk: make([]byte, outputChunk), quiet: h.cfg.Quiet}
	l.smu.Lock()
	ok := l.write(frameWelcome, w.encode())
	l.smu.Unlock()
	if !ok {
		return
	}
	h.mu.Lock()
	if h.conn == c {
		h.link = l
	}
	h.mu.Unlock()
	for {
		h.mu.Lock()
		for h.conn == c && l.next >= h.out.end() && !h.exited {
			h.changed.Wait()
		}
		if h.conn != c {
			h.mu.Unlock()
			return
		}
		if l.next < h.out.end() {
			h.mu.Unlock()
			l.smu.Lock()
			ok := h.flush(l)
			l.smu.Unlock()
			if !ok {
				return
			}
			continue
		}
		code := h.code
		h.mu.Unlock()
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(code))
		l.smu.Lock()
		ok := l.write(frameExit, b[:])
		l.smu.Unlock()
		if ok {
			h.mu.Lock()
			h.delivered = true
			h.changed.Broadcast()
			h.mu.Unlock()
		}
		return
	}
}
