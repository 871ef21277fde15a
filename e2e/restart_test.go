package e2e

import (
	"bytes"
	be "encoding/binary"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wsTerm is a driver of a terminal over the protocol (terminal/PROTOCOL.md), for tests without a browser.
type wsTerm struct {
	t     testing.TB
	ws    *websocket.Conn
	first uint64 // where the WELCOME said output starts
	lost  bool
	next  uint64 // the offset after the last byte received
	out   bytes.Buffer
	close error  // how the server closed, once it did
	exit  *int32 // the shell's exit code, once EXIT came
}

// openTerm connects to node1's first terminal of session l as its driver, asking for output from resume.
func openTerm(t testing.TB, l *lab, resume uint64) *wsTerm {
	t.Helper()
	c, err := dialTerm(t, l, resume)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dialTerm is openTerm for any goroutine: it returns its error. The connection is closed when t ends.
func dialTerm(t testing.TB, l *lab, resume uint64) (*wsTerm, error) {
	url := "ws" + strings.TrimPrefix(l.url, "http") + "/api/v1/sessions/" + l.ID + "/instances/node1/terminal"
	ws, _, err := websocket.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer " + l.Token}})
	if err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	t.Cleanup(func() { ws.Close() })
	hello := []byte{'h', 1, 0}
	hello = be.BigEndian.AppendUint16(hello, 80)
	hello = be.BigEndian.AppendUint16(hello, 24)
	hello = be.BigEndian.AppendUint64(hello, resume)
	if err := ws.WriteMessage(websocket.BinaryMessage, hello); err != nil {
		return nil, err
	}
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, b, err := ws.ReadMessage()
	if err != nil || len(b) != 16 || b[0] != 'W' {
		return nil, fmt.Errorf("welcome: %q, %v", b, err)
	}
	c := &wsTerm{t: t, ws: ws, first: be.BigEndian.Uint64(b[3:]), lost: b[11] == 1}
	c.next = c.first
	return c, nil
}

func (c *wsTerm) typeLine(s string) {
	c.t.Helper()
	if err := c.send(s); err != nil {
		c.t.Fatal(err)
	}
}

// send types s and Enter.
func (c *wsTerm) send(s string) error {
	return c.ws.WriteMessage(websocket.BinaryMessage, append([]byte{'i'}, s+"\n"...))
}

// until reads output (acknowledging it) until it contains want, or the server closes (the error).
func (c *wsTerm) until(want string, within time.Duration) error {
	return c.untilFunc(func(out string) bool { return strings.Contains(out, want) }, within)
}

// untilFunc reads output until done says so. A read that times out breaks the connection (gorilla/websocket).
func (c *wsTerm) untilFunc(done func(out string) bool, within time.Duration) error {
	deadline := time.Now().Add(within)
	for !done(c.out.String()) {
		_ = c.ws.SetReadDeadline(deadline)
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			c.close = err
			return err
		}
		if len(b) >= 9 && b[0] == 'o' {
			if off := be.BigEndian.Uint64(b[1:]); off != c.next {
				c.t.Fatalf("output at %d, expected %d: bytes lost or repeated", off, c.next)
			}
			c.out.Write(b[9:])
			c.next += uint64(len(b) - 9)
			_ = c.ws.WriteMessage(websocket.BinaryMessage, be.BigEndian.AppendUint64([]byte{'a'}, c.next))
		}
		if len(b) == 5 && b[0] == 'x' {
			code := int32(be.BigEndian.Uint32(b[1:]))
			c.exit = &code
		}
	}
	return nil
}

func (c *wsTerm) mustUntil(want string, within time.Duration) {
	c.t.Helper()
	if err := c.until(want, within); err != nil {
		c.t.Fatalf("waiting for %q: %v; got %q", want, err, c.out.String())
	}
}

// waitReady waits for the server's /readyz to answer 200.
func waitReady(t testing.TB, url string) {
	t.Helper()
	waitFor(t, 60*time.Second, "/readyz", func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// Terminal survival (issue 16): type into a shell, restart the server (SIGTERM, and kill -9), reconnect from the
// offset the client had: the same shell (a variable set before is still set), and the output, including what the
// shell printed while no server ran, arrives once, with nothing lost or repeated.
func TestShellsOutliveRestart(t *testing.T) {
	needEngine(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			data, addr := t.TempDir(), freeAddr(t)
			args := []string{"--data", data, "--admin-token", admin}
			srv := startServerAt(t, addr, args...)
			l := newLab(t, srv)
			c := openTerm(t, l, 0)
			c.mustUntil("[node1 ", 60*time.Second)
			c.typeLine("export SHL_V=42; echo set-$((SHL_V+1)); (sleep 3; echo late-$((6*7))) &")
			c.mustUntil("set-43", 20*time.Second)
			if err := c.untilFunc(func(out string) bool { // the prompt after it
				return strings.LastIndex(out, "# ") > strings.LastIndex(out, "set-43")
			}, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond) // the acknowledgements
			resume := c.next

			if err := srv.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-srv.done:
			case <-time.After(40 * time.Second):
				t.Fatal("the server did not stop")
			}
			if err := c.until("\x00never", 10*time.Second); sig == syscall.SIGTERM && !websocket.IsCloseError(err, websocket.CloseServiceRestart) {
				t.Errorf("a server stopping closed the terminal with %v, want 1012 (reconnect)", err)
			}
			if strings.Contains(c.out.String(), "late-42") {
				t.Fatal("the late output came before the restart: the test proves nothing")
			}

			srv2 := startServerAt(t, addr, args...)
			t.Cleanup(func() { deleteSession(t, srv2.url, l.ID) }) // before srv2 stops
			waitReady(t, srv2.url)
			c2 := openTerm(t, l, resume)
			if c2.first != resume || c2.lost {
				t.Fatalf("reconnected at %d (lost %v), want %d: the shell or its output is gone", c2.first, c2.lost, resume)
			}
			c2.mustUntil("late-42", 20*time.Second)
			c2.typeLine("echo v=$SHL_V")
			c2.mustUntil("v=42", 20*time.Second)
			if strings.Contains(c2.out.String(), "set-43") || strings.Count(c2.out.String(), "late-42") != 1 {
				t.Errorf("after the restart the output repeats or misses: %q", c2.out.String())
			}
			// A fresh page (resume 0) gets the whole history, once.
			c3 := openTerm(t, l, 0)
			c3.mustUntil("v=42", 20*time.Second)
			for _, s := range []string{"set-43", "late-42", "v=42"} {
				if n := strings.Count(c3.out.String(), s); n != 1 {
					t.Errorf("%q %d times in the history: %q", s, n, c3.out.String())
				}
			}
			t.Logf("reconnected at offset %d", resume)
		})
	}
}

// A learner is root in their node and may kill the holder of their shell: the terminal ends cleanly (EXIT, then
// close 1000), and the page's next connection gets a new shell. Only that shell is hurt: the server carries on.
func TestLearnerKillsHolder(t *testing.T) {
	needEngine(t)
	srv := startServer(t, "--data", t.TempDir(), "--admin-token", admin)
	l := newLab(t, srv)
	c := openTerm(t, l, 0)
	c.mustUntil("[node1 ", 60*time.Second)
	c.typeLine("export SHL_K=1; echo set-$((SHL_K+1))")
	c.mustUntil("set-2", 20*time.Second)
	l.must(t, "node1", "sh", "-c", "pkill -KILL -f /usr/local/lib/sandlot/holde[r]-")
	err := c.until("\x00never", 20*time.Second)
	if c.exit == nil || !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("after the holder was killed: exit %v, %v", c.exit, err)
	}
	c2 := openTerm(t, l, c.next)
	if !c2.lost && c2.first >= c.next {
		t.Fatalf("the new shell continues at %d (lost %v) after %d", c2.first, c2.lost, c.next)
	}
	c2.mustUntil("[node1 ", 60*time.Second)
	c2.typeLine("echo \"k=[$SHL_K]\"")
	c2.mustUntil("k=[]", 20*time.Second)
	var health struct{}
	get(t, srv.url+"/api/v1/sessions/"+l.ID, &health)
}
