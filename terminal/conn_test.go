package terminal

import (
	"bytes"
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// serveLocal runs a terminal over a local shell and serves it on a test server.
func serveLocal(t testing.TB, opts Options, name string, args ...string) (*Terminal, string) {
	t.Helper()
	p, err := StartLocal(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	term := New(p, 80, 24, opts)
	return term, serve(t, term)
}

// serve serves term on a test server, and closes both when the test ends. It returns the server's ws:// URL;
// ?viewer=1 makes a connection read-only.
func serve(t testing.TB, term *Terminal) string {
	up := NewUpgrader(nil)
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		Serve(ws, term, r.URL.Query().Get("viewer") == "1")
	}))
	t.Cleanup(func() {
		term.Close()
		srv.Close()
		wg.Wait()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// tclient is a protocol client for tests.
type tclient struct {
	t     *testing.T
	ws    *websocket.Conn
	first uint64
	lost  bool
	cols  uint16 // the size WELCOME gave
	rows  uint16
	next  uint64 // offset after the last output byte received
	out   bytes.Buffer
}

func dial(t *testing.T, url string, role uint8, resume uint64) *tclient {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() }) // before the server's cleanup, which would wait for its answer to the close
	c := &tclient{t: t, ws: ws}
	hello := []byte{msgHello, Version, role}
	hello = binary.BigEndian.AppendUint16(hello, 80)
	hello = binary.BigEndian.AppendUint16(hello, 24)
	hello = binary.BigEndian.AppendUint64(hello, resume)
	c.send(hello)
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := ws.ReadMessage()
	if err != nil || len(b) != 16 || b[0] != msgWelcome {
		t.Fatalf("welcome: %q, %v", b, err)
	}
	c.first, c.lost = binary.BigEndian.Uint64(b[3:]), b[11] == 1
	c.cols, c.rows = binary.BigEndian.Uint16(b[12:]), binary.BigEndian.Uint16(b[14:])
	c.next = c.first
	return c
}

func (c *tclient) send(b []byte) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *tclient) input(s string) { c.send(append([]byte{msgInput}, s...)) }

func (c *tclient) ack() { c.send(binary.BigEndian.AppendUint64([]byte{msgAck}, c.next)) }

// readUntil reads output (acknowledging it) until the received text contains want.
func (c *tclient) readUntil(want string, within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for !bytes.Contains(c.out.Bytes(), []byte(want)) {
		_ = c.ws.SetReadDeadline(deadline)
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			c.t.Fatalf("waiting for %q: %v; got %q", want, err, tail(c.out.Bytes()))
		}
		c.take(b)
	}
}

// drain reads output (acknowledging it, keeping only the last MiB as a screen would) until the tail contains
// want; each, if not nil, runs after every message.
func (c *tclient) drain(want string, within time.Duration, each func()) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for !bytes.Contains(tail(c.out.Bytes()), []byte(want)) {
		_ = c.ws.SetReadDeadline(deadline)
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			c.t.Fatalf("after %d bytes, waiting for %q: %v", c.next, want, err)
		}
		c.take(b)
		if c.out.Len() > 1<<20 {
			c.out.Next(c.out.Len() - 4096)
		}
		if each != nil {
			each()
		}
	}
}

// take applies one server message.
func (c *tclient) take(b []byte) {
	c.t.Helper()
	switch b[0] {
	case msgOutput:
		off := binary.BigEndian.Uint64(b[1:])
		if off != c.next {
			c.t.Fatalf("output at %d, expected %d", off, c.next)
		}
		c.out.Write(b[9:])
		c.next += uint64(len(b) - 9)
		c.ack()
	case msgLost:
		c.next = binary.BigEndian.Uint64(b[1:])
	}
}

func tail(b []byte) []byte { return b[max(0, len(b)-200):] }

// Every byte value goes through unchanged both ways (the TTY in raw mode), and UTF-8 split over frames arrives whole.
func TestBinarySafe(t *testing.T) {
	_, url := serveLocal(t, Options{}, "sh", "-c", "stty raw -echo; printf READY; exec cat")
	c := dial(t, url, RoleDriver, 0)
	c.readUntil("READY", 10*time.Second)
	var all []byte
	for i := 0; i < 256; i++ {
		all = append(all, byte(i))
	}
	c.input(string(all[:100]))
	c.input(string(all[100:]))
	c.input("\xc3") // é, split over two frames
	c.input("\xa9")
	want := append(append([]byte("READY"), all...), "é"...)
	deadline := time.Now().Add(10 * time.Second)
	for c.out.Len() < len(want) && time.Now().Before(deadline) {
		_ = c.ws.SetReadDeadline(deadline)
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		c.take(b)
	}
	if !bytes.Equal(c.out.Bytes(), want) {
		t.Fatalf("got %q\nwant %q", c.out.Bytes(), want)
	}
}

// Drop the socket after `export X=42`, reconnect from the last offset: the same shell, nothing lost or repeated.
func TestResumeAfterReload(t *testing.T) {
	_, url := serveLocal(t, Options{}, "bash", "--norc", "--noprofile", "-i")
	c := dial(t, url, RoleDriver, 0)
	c.input("export X=42; echo set-$X\n")
	c.readUntil("set-42", 10*time.Second)
	before := append([]byte(nil), c.out.Bytes()...)
	resume := c.next
	c.ws.Close() // the network blips

	c2 := dial(t, url, RoleDriver, resume)
	if c2.first != resume || c2.lost {
		t.Fatalf("resumed at %d (lost %v), asked %d", c2.first, c2.lost, resume)
	}
	c2.input("echo got-$X\n")
	c2.readUntil("got-42", 10*time.Second)

	// A fresh client gets all that is kept: exactly what the two connections saw, in order, once.
	c3 := dial(t, url, RoleViewer, 0)
	if c3.first != 0 {
		t.Fatalf("scrollback starts at %d", c3.first)
	}
	c3.readUntil("got-42", 10*time.Second)
	full := append(before, c2.out.Bytes()...)
	n := min(len(full), c3.out.Len())
	if n < len(before)+len("got-42") || !bytes.Equal(full[:n], c3.out.Bytes()[:n]) {
		t.Fatalf("scrollback %q\ndiffers from what the driver saw %q", c3.out.Bytes(), full)
	}
}

// The end of the output, EXIT and the close (1000) reach a client even while it is still sending (acknowledging
// what it gets) when the shell ends: the server does not close the socket on the client's unread messages, which
// would reset the connection and could lose them.
func TestExitReachesBusyClient(t *testing.T) {
	for i := range 12 {
		_, url := serveLocal(t, Options{}, "sh", "-c", "stty raw -echo; read go; head -c 3000000 /dev/zero | tr '\\0' x; echo END-$((6*7)); exit 3")
		c := dial(t, url, RoleDriver, 0)
		c.input("\n")
		exit := -1
		_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, b, err := c.ws.ReadMessage()
			if err != nil {
				if !websocket.IsCloseError(err, websocket.CloseNormalClosure) || exit != 3 || !bytes.Contains(tail(c.out.Bytes()), []byte("END-42")) {
					t.Fatalf("shell %d: the connection ended with %v, after exit %d and %q", i, err, exit, tail(c.out.Bytes()))
				}
				break
			}
			switch b[0] {
			case msgExit:
				exit = int(int32(binary.BigEndian.Uint32(b[1:])))
			case msgOutput:
				c.out.Write(b[9:])
				c.next = binary.BigEndian.Uint64(b[1:]) + uint64(len(b)-9)
				// As a browser would, whether or not the server still listens; and slower to read than the
				// server to write, so that output is still on its way when the shell ends.
				_ = c.ws.WriteMessage(websocket.BinaryMessage, binary.BigEndian.AppendUint64([]byte{msgAck}, c.next))
				time.Sleep(200 * time.Microsecond)
			}
		}
	}
}

// Hostile input closes the connection with a clear code, and the server keeps serving.
func TestHostileInput(t *testing.T) {
	_, url := serveLocal(t, Options{}, "bash", "--norc", "--noprofile", "-i")
	hello := func(role uint8, cols, rows uint16) []byte {
		b := []byte{msgHello, Version, role}
		b = binary.BigEndian.AppendUint16(b, cols)
		b = binary.BigEndian.AppendUint16(b, rows)
		return binary.BigEndian.AppendUint64(b, 0)
	}
	resize := func(cols, rows uint16) []byte {
		return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16([]byte{msgResize}, cols), rows)
	}
	tests := []struct {
		name     string
		kind     int
		messages [][]byte
		code     int
	}{
		{"garbage before hello", websocket.BinaryMessage, [][]byte{[]byte("GET / HTTP/1.1")}, CloseProtocol},
		{"text message", websocket.TextMessage, [][]byte{[]byte(`{"hello":1}`)}, CloseProtocol},
		{"short hello", websocket.BinaryMessage, [][]byte{{msgHello, Version}}, CloseProtocol},
		{"wrong version", websocket.BinaryMessage, [][]byte{append([]byte{msgHello, 9}, hello(0, 80, 24)[2:]...)}, CloseProtocol},
		{"hello sized 0x0", websocket.BinaryMessage, [][]byte{hello(RoleDriver, 0, 0)}, CloseBadSize},
		{"unknown type", websocket.BinaryMessage, [][]byte{hello(RoleDriver, 80, 24), {'z', 1, 2}}, CloseProtocol},
		{"resize 0x0", websocket.BinaryMessage, [][]byte{hello(RoleDriver, 80, 24), resize(0, 0)}, CloseBadSize},
		{"resize 65535x65535", websocket.BinaryMessage, [][]byte{hello(RoleDriver, 80, 24), resize(65535, 65535)}, CloseBadSize},
		{"viewer types", websocket.BinaryMessage, [][]byte{hello(RoleViewer, 80, 24), {msgInput, 'x'}}, CloseReadOnly},
		{"viewer link asks to drive", websocket.BinaryMessage, [][]byte{hello(RoleDriver, 80, 24)}, CloseReadOnly},
		{"oversize frame", websocket.BinaryMessage, [][]byte{hello(RoleDriver, 80, 24), append([]byte{msgInput}, make([]byte, 70<<10)...)}, websocket.CloseMessageTooBig},
		{"short ack", websocket.BinaryMessage, [][]byte{hello(RoleDriver, 80, 24), {msgAck, 1}}, CloseProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := url
			if strings.HasPrefix(tt.name, "viewer link") {
				u += "?viewer=1"
			}
			ws, _, err := websocket.DefaultDialer.Dial(u, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			for _, m := range tt.messages {
				_ = ws.WriteMessage(tt.kind, m)
			}
			_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				_, _, err := ws.ReadMessage()
				if err == nil {
					continue
				}
				if !websocket.IsCloseError(err, tt.code) {
					t.Fatalf("closed with %v, want code %d", err, tt.code)
				}
				return
			}
		})
	}
	// Invalid UTF-8 is just bytes; and the server still serves.
	c := dial(t, url, RoleDriver, 0)
	c.input("\xff\xfe; echo still-$((40+2))\n")
	c.readUntil("still-42", 10*time.Second)
}

// 100 MB of output to a client that reads slowly: the terminal never holds more than its scrollback, reading
// pauses while the driver is behind, the heap stays bounded; Ctrl-C stops the output within a second.
func TestFlowControlBoundsMemory(t *testing.T) {
	term, url := serveLocal(t, Options{}, "bash", "--norc", "--noprofile", "-i")
	c := dial(t, url, RoleDriver, 0)
	// Markers come from shell arithmetic: the echo of the typed command must not match them.
	c.input("head -c 100000000 /dev/zero | tr '\\0' x; echo; echo DONE-$((6*7))\n")
	var peakHeap, peakBehind uint64
	var ms runtime.MemStats
	c.drain("DONE-42", 2*time.Minute, func() {
		time.Sleep(50 * time.Microsecond) // a slow reader
		term.mu.Lock()
		behind := term.ring.end - term.acked
		term.mu.Unlock()
		peakBehind = max(peakBehind, behind)
		if c.next%(8<<20) < 64<<10 {
			runtime.ReadMemStats(&ms)
			peakHeap = max(peakHeap, ms.HeapInuse)
		}
	})
	if c.next < 100_000_000 {
		t.Fatalf("received %d bytes", c.next)
	}
	// Reading never pushes output the driver has not acknowledged out of the scrollback.
	if limit := uint64(term.opts.Scrollback); peakBehind > limit {
		t.Errorf("the driver fell %d bytes behind, over the scrollback %d", peakBehind, limit)
	}
	if peakHeap > 64<<20 {
		t.Errorf("heap in use peaked at %d MiB", peakHeap>>20)
	}
	t.Logf("100 MB through; peak unacknowledged %d KiB, peak heap %d MiB", peakBehind>>10, peakHeap>>20)

	c.input("yes\n")
	c.readUntil("y\r\ny\r\ny\r\n", 10*time.Second)
	c.out.Reset()
	sent := time.Now()
	c.input("\x03echo STOP-$((6*7))\n")
	c.readUntil("STOP-42", 10*time.Second)
	took := time.Since(sent)
	if took > time.Second {
		t.Errorf("Ctrl-C took %s to stop yes", took)
	}
	t.Logf("Ctrl-C during yes: the prompt answered after %s", took)
}

// Connecting and disconnecting 1,000 times leaves no goroutine behind.
func TestNoGoroutineLeak(t *testing.T) {
	_, url := serveLocal(t, Options{}, "bash", "--norc", "--noprofile", "-i")
	c := dial(t, url, RoleDriver, 0)
	c.ws.Close()
	time.Sleep(200 * time.Millisecond)
	base := runtime.NumGoroutine()
	for i := 0; i < 1000; i++ {
		c := dial(t, url, uint8(i%2), 0)
		c.ws.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base+2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base+2 {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after 1000 cycles, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
}

// The server's own pages may open terminals whatever else is listed; other pages only when listed.
func TestUpgraderOrigins(t *testing.T) {
	for _, tc := range []struct {
		origins []string
		origin  string
		want    bool
	}{
		{nil, "", true},
		{nil, "http://sandlot.example:8080", true},
		{nil, "https://sandlot.example:8080", true},
		{nil, "https://evil.example", false},
		{[]string{"https://docs.example"}, "http://sandlot.example:8080", true},
		{[]string{"https://docs.example"}, "https://docs.example", true},
		{[]string{"https://docs.example"}, "https://evil.example", false},
		{[]string{"https://docs.example"}, "http://node1-80-abcdefgh.sandlot.example:8080", false},
	} {
		r := httptest.NewRequest("GET", "http://sandlot.example:8080/api/v1/sessions/x/instances/node1/terminal", nil)
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if got := NewUpgrader(tc.origins).CheckOrigin(r); got != tc.want {
			t.Errorf("origins %v, Origin %q: %v, want %v", tc.origins, tc.origin, got, tc.want)
		}
	}
}
