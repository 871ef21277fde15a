package terminal

import (
	"bytes"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// A viewer that reads nothing does not stop the driver from getting everything, and is itself cut loose.
func TestStalledViewerDoesNotStallDriver(t *testing.T) {
	_, url := serveLocal(t, Options{}, "bash", "--norc", "--noprofile", "-i")
	stalled := dial(t, url, RoleViewer, 0)
	// Shrink its receive buffer so that the server's writes to it block soon.
	if tc, ok := stalled.ws.UnderlyingConn().(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	c := dial(t, url, RoleDriver, 0)
	c.input("head -c 30000000 /dev/zero | tr '\\0' x; echo END-$((6*7))\n")
	c.drain("END-42", time.Minute, nil)
	if c.next < 30_000_000 {
		t.Fatalf("the driver got %d bytes", c.next)
	}
}

// A second driver takes over; the first is told why.
func TestDriverTakeover(t *testing.T) {
	_, url := serveLocal(t, Options{}, "bash", "--norc", "--noprofile", "-i")
	first := dial(t, url, RoleDriver, 0)
	second := dial(t, url, RoleDriver, 0)
	second.input("echo taken-$((6*7))\n")
	second.readUntil("taken-42", 10*time.Second)
	_ = first.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := first.ws.ReadMessage()
		if err == nil {
			continue
		}
		if !websocket.IsCloseError(err, CloseReplaced) {
			t.Fatalf("the first driver got %v", err)
		}
		break
	}
}

// The driver's size wins: it sets the TTY's size, and every client is told; a viewer's size changes nothing.
func TestResizePolicy(t *testing.T) {
	term, url := serveLocal(t, Options{}, "bash", "--norc", "--noprofile", "-i")
	c := dial(t, url, RoleDriver, 0)
	v := dial(t, url, RoleViewer, 0) // says 80x24, like the driver
	c.send(resizeMsg(120, 40))
	got := waitFor(t, v, msgSize)
	if cols, rows := binary.BigEndian.Uint16(got[1:]), binary.BigEndian.Uint16(got[3:]); cols != 120 || rows != 40 {
		t.Fatalf("viewer told %dx%d", cols, rows)
	}
	dial(t, url, RoleViewer, 0).ws.Close() // a viewer with its own size comes and goes
	// Clients are told at once; the TTY follows.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		term.mu.Lock()
		resized := term.ttyCols == 120 && term.ttyRows == 40
		term.mu.Unlock()
		if resized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the TTY was never resized")
		}
	}
	c.input("echo size=$(stty size | tr ' ' x)\n")
	c.readUntil("size=40x120", 10*time.Second)
}

// A burst of small writes reaches the client in few frames.
func TestOutputIsCoalesced(t *testing.T) {
	_, url := serveLocal(t, Options{}, "bash", "--norc", "--noprofile", "-i")
	c := dial(t, url, RoleDriver, 0)
	c.input("for i in $(seq 2000); do echo line-$i; done; echo BURST-$((6*7))\n")
	frames := 0
	deadline := time.Now().Add(20 * time.Second)
	for !bytes.Contains(c.out.Bytes(), []byte("BURST-42")) {
		_ = c.ws.SetReadDeadline(deadline)
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if b[0] == msgOutput {
			frames++
		}
		c.take(b)
	}
	if lines := strings.Count(c.out.String(), "line-"); lines < 2000 || frames > lines/4 {
		t.Fatalf("%d lines came in %d frames", lines, frames)
	}
}

// waitFor reads until a message of kind arrives.
func waitFor(t *testing.T, c *tclient, kind byte) []byte {
	t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if b[0] == kind {
			return b
		}
		c.take(b)
	}
}

// A client that answers no ping is closed once the pong deadline passes; one that answers stays.
func TestPingDeadline(t *testing.T) {
	pingInterval, pongTimeout = 50*time.Millisecond, 300*time.Millisecond
	t.Cleanup(func() { pingInterval, pongTimeout = 20*time.Second, 40*time.Second })
	_, url := serveLocal(t, Options{}, "bash", "--norc", "--noprofile", "-i")

	deaf := dial(t, url, RoleViewer, 0)
	deaf.ws.SetPingHandler(func(string) error { return nil }) // hears pings, never answers
	alive := dial(t, url, RoleViewer, 0)                      // gorilla answers pings while reading

	// Both read for a second (reading is what answers pings); only the deaf one may be closed by the server.
	ended := func(c *tclient) chan error {
		ch := make(chan error, 1)
		go func() {
			_ = c.ws.SetReadDeadline(time.Now().Add(time.Second))
			for {
				if _, _, err := c.ws.ReadMessage(); err != nil {
					ch <- err
					return
				}
			}
		}()
		return ch
	}
	deafEnd, aliveEnd := ended(deaf), ended(alive)
	if err := <-deafEnd; strings.Contains(err.Error(), "timeout") {
		t.Fatalf("a client that answers no ping was not closed: %v", err)
	}
	if err := <-aliveEnd; !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("the answering client was dropped: %v", err)
	}
}
