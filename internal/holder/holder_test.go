package holder

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startHolder runs a holder of cmd on a fresh socket, for the test's length; it returns the socket and a channel
// closed when Serve has returned.
func startHolder(t *testing.T, cfg Config) (string, chan struct{}) {
	t.Helper()
	cfg.Socket = filepath.Join(t.TempDir(), "hold", "1.sock")
	if cfg.Orphan == 0 {
		cfg.Orphan = 20 * time.Second
	}
	cfg.Env = append(os.Environ(), "PS1=$ ", "TERM=dumb")
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() { defer close(done); errc <- Serve(cfg) }()
	t.Cleanup(func() {
		if c, err := net.Dial("unix", cfg.Socket); err == nil {
			if h, err := Attach(c, 64<<20); err == nil {
				h.Close()
			}
		}
		select {
		case <-done:
			if err := <-errc; err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("the holder did not end after the hang-up")
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(cfg.Socket); err == nil {
			return cfg.Socket, done
		}
		if time.Now().After(deadline) {
			t.Fatal("the holder made no socket")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func attach(t *testing.T, socket string) *Conn {
	t.Helper()
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	h, err := Attach(c, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// readUntil reads from h into got until got contains want.
func readUntil(t *testing.T, h *Conn, got *bytes.Buffer, want string) {
	t.Helper()
	buf := make([]byte, 4096)
	deadline := time.AfterFunc(10*time.Second, func() { h.c.Close() })
	defer deadline.Stop()
	for !strings.Contains(got.String(), want) {
		n, err := h.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			t.Fatalf("waiting for %q: %v; got %q", want, err, got.String())
		}
	}
}

// A Sandlot that lets go and comes back finds the same shell, all its output from offset 0 (nothing lost, nothing
// twice), and the variable it set.
func TestHolderReattach(t *testing.T) {
	socket, _ := startHolder(t, Config{Cmd: []string{"sh", "-i"}})
	h := attach(t, socket)
	if first, kept, _ := h.Replay(); first != 0 || len(kept) > 100 {
		t.Fatalf("a fresh holder replays from %d: %q", first, kept)
	}
	var got bytes.Buffer
	_, kept, _ := h.Replay()
	got.Write(kept)
	if _, err := h.Write([]byte("SHL_X=42; echo mark-$((40+2))\n")); err != nil {
		t.Fatal(err)
	}
	readUntil(t, h, &got, "mark-42")
	h.Ack(uint64(got.Len()))
	time.Sleep(100 * time.Millisecond) // for the holder to take the acknowledgement before the connection goes
	h.Release()

	h2 := attach(t, socket)
	defer h2.Release()
	first, kept2, acked := h2.Replay()
	if first != 0 || !bytes.HasPrefix(kept2, got.Bytes()) {
		t.Fatalf("replay from %d: %q, want the first connection's %q", first, kept2, got.String())
	}
	if acked != uint64(got.Len()) {
		t.Errorf("acked %d after a reattach, want %d", acked, got.Len())
	}
	all := bytes.NewBuffer(append([]byte(nil), kept2...))
	if _, err := h2.Write([]byte("echo \"x=$SHL_X\"\n")); err != nil {
		t.Fatal(err)
	}
	readUntil(t, h2, all, "x=42")
	if strings.Count(all.String(), "mark-42") != 1 || strings.Count(all.String(), "SHL_X=42") != 1 {
		t.Errorf("output repeated or missing: %q", all.String())
	}
}

// Without acknowledgements the holder stops reading the shell at HighWater: the shell waits, nothing is dropped,
// and acknowledging lets it go on.
func TestHolderFlowControl(t *testing.T) {
	const total = 400_000
	socket, _ := startHolder(t, Config{Keep: 64 << 10, Cmd: []string{"sh", "-c",
		"head -c 400000 /dev/zero | tr '\\0' a; echo; echo done; sleep 30"}})
	h := attach(t, socket)
	defer h.Release()
	_, kept, _ := h.Replay()
	var got bytes.Buffer
	got.Write(kept)
	buf := make([]byte, 64<<10)
	// Read what comes without acknowledging, until it stops.
	for {
		stop := time.AfterFunc(500*time.Millisecond, func() { h.c.SetReadDeadline(time.Now()) })
		n, err := h.Read(buf)
		stop.Stop()
		got.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if got.Len() > 64<<10 || got.Len() < 32<<10 {
		t.Fatalf("%d bytes came without an acknowledgement (high water 64 KiB)", got.Len())
	}
	// The read deadline broke that connection; a new one carries on from the same offset.
	h.Release()
	h = attach(t, socket)
	defer h.Release()
	first, kept, _ := h.Replay()
	if first != 0 || !bytes.HasPrefix(kept, got.Bytes()) {
		t.Fatalf("after the pause the replay starts at %d with %d bytes (had %d)", first, len(kept), got.Len())
	}
	all := bytes.NewBuffer(append([]byte(nil), kept...))
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(all.String(), "done") && time.Now().Before(deadline) {
		h.Ack(uint64(all.Len()))
		n, err := h.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(buf[:n])
	}
	if c := strings.Count(all.String(), "a"); c != total {
		t.Fatalf("%d of %d bytes arrived", c, total)
	}
}

// The shell's end reaches Sandlot with its code, also when it ended while no Sandlot was connected.
func TestHolderExit(t *testing.T) {
	socket, done := startHolder(t, Config{Cmd: []string{"sh", "-c", "echo bye; sleep 0.5; exit 7"}})
	time.Sleep(time.Second) // the shell ends while nobody is connected
	h := attach(t, socket)
	_, kept, _ := h.Replay()
	got := bytes.NewBuffer(append([]byte(nil), kept...))
	buf := make([]byte, 100)
	var err error
	for err == nil {
		var n int
		n, err = h.Read(buf)
		got.Write(buf[:n])
	}
	var exit *ShellExit
	if !errors.As(err, &exit) || exit.Code != 7 || !strings.Contains(got.String(), "bye") {
		t.Fatalf("got %q then %v, want bye and exit 7", got.String(), err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the holder stayed after delivering the exit")
	}
}

// Close hangs the shell up, its jobs that ignore SIGHUP included, and the holder exits.
func TestHolderClose(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	socket, done := startHolder(t, Config{Grace: 300 * time.Millisecond, Cmd: []string{"sh", "-c",
		"nohup sleep 60 >/dev/null 2>&1 & echo $! > " + pidFile + "; echo started; wait"}})
	h := attach(t, socket)
	_, kept, _ := h.Replay()
	got := bytes.NewBuffer(append([]byte(nil), kept...))
	readUntil(t, h, got, "started")
	pidText, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the holder did not end")
	}
	proc := "/proc/" + strings.TrimSpace(string(pidText))
	deadline := time.Now().Add(3 * time.Second)
	for {
		st, err := os.ReadFile(proc + "/stat")
		if err != nil || strings.Contains(string(st), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the nohup job outlived the hang-up")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A connection that is not Sandlot's (garbage, or silence) is dropped, and takes nothing from the Sandlot
// connected meanwhile.
func TestHolderDropsGarbage(t *testing.T) {
	socket, _ := startHolder(t, Config{Cmd: []string{"sh", "-i"}})
	h := attach(t, socket)
	defer h.Release()
	for _, junk := range [][]byte{[]byte("GET / HTTP/1.1\r\n\r\n"), {frameHello, 0xff, 0xff, 0xff, 0xff}, {frameHello, 0, 0, 0, 1, 9}} {
		c, err := net.Dial("unix", socket)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(junk)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 10)); err == nil {
			t.Errorf("%q got %d bytes of an answer", junk, n)
		}
		c.Close()
	}
	var got bytes.Buffer
	h.Write([]byte("echo still-$((1+1))\n"))
	readUntil(t, h, &got, "still-2")
}

// fakeHolder serves one connection with script: what a hostile holder says.
func fakeHolder(t *testing.T, script []byte, linger bool) string {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "fake.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(time.Second))
		_, _ = io.ReadFull(c, make([]byte, headerLen+1)) // the hello
		go func() { _, _ = c.Read(make([]byte, 1<<16)) }()
		c.Write(script)
		if linger {
			time.Sleep(3 * time.Second)
		}
	}()
	return socket
}

func frame(typ byte, p []byte) []byte {
	h := header(typ, len(p))
	return append(h[:], p...)
}

func welcomeFrame(w welcome) []byte { return frame(frameWelcome, w.encode()) }

// Whatever a holder says, Attach and Read stay bounded: a bad welcome, a huge frame, offsets that do not add up,
// silence, or nonsense after a good welcome end the attach (or the terminal) with an error.
func TestAttachRefusesHostileHolders(t *testing.T) {
	attachTimeout = 500 * time.Millisecond
	defer func() { attachTimeout = 3 * time.Second }()
	badVersion := welcome{}.encode()
	badVersion[0] = 9
	refused := map[string][]byte{
		"silence":            nil,
		"garbage":            []byte("HTTP/1.1 400 Bad Request\r\n\r\n"),
		"a 2 GiB frame":      {frameWelcome, 0x7f, 0xff, 0xff, 0xff},
		"output first":       frame(frameOutput, []byte("hi")),
		"another version":    frame(frameWelcome, badVersion),
		"a short welcome":    frame(frameWelcome, []byte{Version, 0}),
		"first after end":    welcomeFrame(welcome{first: 10, end: 5}),
		"offsets that wrap":  welcomeFrame(welcome{first: 1<<64 - 10, end: 1<<64 - 1}),
		"more than it may":   welcomeFrame(welcome{first: 0, end: 5 << 20}),
		"a replay cut short": append(welcomeFrame(welcome{end: 100}), frame(frameOutput, []byte("only this"))...),
		"exit in the replay": append(welcomeFrame(welcome{end: 100}), frame(frameExit, []byte{0, 0, 0, 0})...),
		"a size in replay":   append(welcomeFrame(welcome{end: 4}), frame(frameSize, []byte{0, 80, 0, 24})...),
	}
	for name, script := range refused {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("unix", fakeHolder(t, script, true))
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if _, err := Attach(c, 1<<20); err == nil {
				t.Fatal("attached")
			}
			if time.Since(start) > 2*time.Second {
				t.Errorf("refused only after %s", time.Since(start))
			}
		})
	}
	// After a good welcome, nonsense ends the terminal as a holder that went away (-1).
	after := map[string][]byte{
		"an unknown frame":  frame('?', nil),
		"a frame too large": {frameOutput, 0, 2, 0, 0},
		"a short exit":      frame(frameExit, []byte{1}),
		"hanging up":        nil,
	}
	for name, tail := range after {
		t.Run("after the welcome: "+name, func(t *testing.T) {
			script := append(welcomeFrame(welcome{end: 2, acked: 99, cols: 80, rows: 24}), frame(frameOutput, []byte("ok"))...)
			c, err := net.Dial("unix", fakeHolder(t, append(script, tail...), false))
			if err != nil {
				t.Fatal(err)
			}
			h, err := Attach(c, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if first, kept, acked := h.Replay(); first != 0 || string(kept) != "ok" || acked != 2 {
				t.Fatalf("replay %d %q acked %d (an acked beyond the end is clamped to it)", first, kept, acked)
			}
			n, err := h.Read(make([]byte, 10))
			var exit *ShellExit
			if n != 0 || !errors.As(err, &exit) || exit.Code != -1 {
				t.Fatalf("read %d, %v; want the holder's going (-1)", n, err)
			}
		})
	}
}

// A holder that welcomes and then reads nothing (a stopped one, or not a holder) ends its terminal once a write
// has waited writeTimeout: typing never hangs.
func TestStalledHolderEndsTerminal(t *testing.T) {
	writeTimeout = 300 * time.Millisecond
	defer func() { writeTimeout = 5 * time.Second }()
	a, b := socketPair(t)
	defer b.Close()
	go func() {
		_, _ = io.ReadFull(b, make([]byte, headerLen+1)) // the hello, then nothing more is read
		b.Write(welcomeFrame(welcome{cols: 80, rows: 24}))
	}()
	h, err := Attach(a, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	junk := make([]byte, 32<<10)
	for err == nil && time.Since(start) < 10*time.Second {
		_, err = h.Write(junk)
	}
	if err == nil {
		t.Fatal("writes to a holder that reads nothing never failed")
	}
	var exit *ShellExit
	if _, err := h.Read(make([]byte, 1)); !errors.As(err, &exit) || exit.Code != -1 {
		t.Fatalf("after the stalled write, Read: %v", err)
	}
}

// FuzzAttach feeds arbitrary holder output to Attach and Read: they never panic, and what Read returns adds up
// to the offsets.
func FuzzAttach(f *testing.F) {
	f.Add(append(welcomeFrame(welcome{end: 2}), frame(frameOutput, []byte("hi"))...))
	f.Add(append(welcomeFrame(welcome{first: 5, end: 5}), frame(frameExit, []byte{0, 0, 0, 3})...))
	f.Add([]byte{frameWelcome, 0, 0, 0, 29})
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := socketPair(t)
		defer a.Close()
		go func() {
			b.Write(data)
			b.Close()
		}()
		h, err := Attach(a, 1<<16)
		if err != nil {
			return
		}
		first, kept, acked := h.Replay()
		if acked < first || acked > first+uint64(len(kept)) || len(kept) > 1<<16 {
			t.Fatalf("replay %d+%d acked %d", first, len(kept), acked)
		}
		buf := make([]byte, 100)
		for i := 0; i < 1<<16; i++ {
			if _, err := h.Read(buf); err != nil {
				return
			}
		}
		t.Fatal("Read never ended")
	})
}

func TestWelcomeRoundTrip(t *testing.T) {
	w := welcome{first: 3, end: 10, acked: 5, cols: 120, rows: 40}
	got, err := parseWelcome(w.encode(), 100)
	if err != nil || got != w {
		t.Fatalf("%+v, %v", got, err)
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], 1)
}

// socketPair is a connected pair of unix sockets (buffered, unlike net.Pipe).
func socketPair(t *testing.T) (net.Conn, net.Conn) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "pair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	return conns[0], conns[1]
}
