package terminal

import (
	"bytes"
	"encoding/binary"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// stuckTTY is a TTY whose resizes, once stuck is set, do not return until release is closed: an engine that does
// not answer an exec resize. Its output is what the test sends on out; what is typed arrives on in.
type stuckTTY struct {
	out     chan []byte
	in      chan []byte
	resizes chan [2]uint16 // every resize, as it starts
	stuck   atomic.Bool
	release chan struct{}
	closed  chan struct{}
	once    sync.Once
}

func newStuckTTY() *stuckTTY {
	return &stuckTTY{out: make(chan []byte), in: make(chan []byte, 16), resizes: make(chan [2]uint16, 64),
		release: make(chan struct{}), closed: make(chan struct{})}
}

func (s *stuckTTY) Read(b []byte) (int, error) {
	select {
	case p := <-s.out:
		return copy(b, p), nil
	case <-s.closed:
		return 0, io.EOF
	}
}

func (s *stuckTTY) Write(b []byte) (int, error) {
	s.in <- append([]byte(nil), b...)
	return len(b), nil
}

func (s *stuckTTY) Resize(cols, rows uint16) error {
	s.resizes <- [2]uint16{cols, rows}
	if s.stuck.Load() {
		<-s.release
	}
	return nil
}

func (s *stuckTTY) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

// nextResize waits for the TTY to be asked for a resize to want, skipping others.
func (s *stuckTTY) nextResize(t *testing.T, want [2]uint16) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-s.resizes:
			if got == want {
				return
			}
		case <-deadline:
			t.Fatalf("the TTY was never resized to %dx%d", want[0], want[1])
		}
	}
}

func resizeMsg(cols, rows uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16([]byte{msgResize}, cols), rows)
}

// stuckResize serves a terminal over a stuckTTY with a driver connected whose resize to 120x40 is under way, and
// stuck until release is called (or the test ends).
func stuckResize(t *testing.T) (tty *stuckTTY, term *Terminal, url string, driver *tclient, release func()) {
	tty = newStuckTTY()
	release = sync.OnceFunc(func() { close(tty.release) })
	t.Cleanup(release) // should the test fail before serve's cleanup is registered
	term = New(tty, 80, 24, Options{})
	url = serve(t, term)
	t.Cleanup(release) // before serve's cleanup closes the terminal, which waits for the resize
	tty.nextResize(t, [2]uint16{80, 24})
	tty.stuck.Store(true)
	driver = dial(t, url, RoleDriver, 0)
	driver.send(resizeMsg(120, 40))
	tty.nextResize(t, [2]uint16{120, 40})
	return tty, term, url, driver, release
}

// A resize the TTY takes forever over (an engine round trip that does not come back) holds up no output, no
// input and no other client; clients are told the new size at once, and sizes asked for meanwhile coalesce into
// the latest.
func TestStuckResize(t *testing.T) {
	t.Run("output", func(t *testing.T) {
		tty, _, _, c, _ := stuckResize(t)
		tty.out <- []byte("output-while-resizing")
		c.readUntil("output-while-resizing", 10*time.Second)
	})
	t.Run("input", func(t *testing.T) {
		tty, _, _, c, _ := stuckResize(t)
		c.input("typed-while-resizing")
		select {
		case got := <-tty.in:
			if string(got) != "typed-while-resizing" {
				t.Fatalf("typed %q", got)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("input waited for the resize")
		}
	})
	t.Run("viewer attaches", func(t *testing.T) {
		_, _, url, _, _ := stuckResize(t)
		v := dial(t, url, RoleViewer, 0)
		if v.cols != 120 || v.rows != 40 {
			t.Errorf("a viewer attaching during the resize was told %dx%d, want 120x40", v.cols, v.rows)
		}
	})
	t.Run("driver takes over", func(t *testing.T) {
		tty, _, url, _, release := stuckResize(t)
		// A HELLO of another size, as from a browser window of its own.
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		hello := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16([]byte{msgHello, Version, RoleDriver}, 132), 50)
		_ = ws.WriteMessage(websocket.BinaryMessage, binary.BigEndian.AppendUint64(hello, 0))
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, b, err := ws.ReadMessage()
		if err != nil || b[0] != msgWelcome || !bytes.Equal(b[12:16], []byte{0, 132, 0, 50}) {
			t.Fatalf("the second driver's welcome: %q, %v", b, err)
		}
		release()
		tty.nextResize(t, [2]uint16{132, 50})
	})
	t.Run("sizes coalesce", func(t *testing.T) {
		tty, term, url, c, release := stuckResize(t)
		v := dial(t, url, RoleViewer, 0)
		c.send(resizeMsg(100, 30))
		c.send(resizeMsg(90, 20))
		for {
			got := waitFor(t, v, msgSize)
			if cols, rows := binary.BigEndian.Uint16(got[1:]), binary.BigEndian.Uint16(got[3:]); cols == 90 && rows == 20 {
				break
			}
		}
		release()
		tty.nextResize(t, [2]uint16{90, 20})
		// Close waits for resizing to end: after it, every resize the TTY was asked for is on the channel.
		term.Close()
		close(tty.resizes)
		for r := range tty.resizes {
			t.Errorf("resized to %dx%d after 90x20", r[0], r[1])
		}
	})
}
