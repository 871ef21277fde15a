package terminal

import (
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Timing of a connection (see PROTOCOL.md).
const (
	helloTimeout  = 10 * time.Second
	writeTimeout  = 10 * time.Second // a socket that accepts nothing this long is too slow
	closeGrace    = time.Second      // for the client to answer the server's close
	coalesceDelay = 2 * time.Millisecond
	maxFrame      = 64<<10 + 9 // 64 KiB of output and the OUTPUT header
)

// Liveness: the server pings this often, and closes a client that answered nothing for pongTimeout. Variables so
// that a test can shorten them.
var (
	pingInterval = 20 * time.Second
	pongTimeout  = 40 * time.Second
)

// NewUpgrader returns a WebSocket upgrader that accepts requests from the server's own host and from the given
// origins (scheme://host[:port]), and requests without an Origin (not from a browser).
func NewUpgrader(origins []string) *websocket.Upgrader {
	allowed := map[string]bool{}
	for _, o := range origins {
		allowed[o] = true
	}
	return &websocket.Upgrader{
		// Reads use the HTTP server's buffer; writes borrow from a pool, so an idle connection holds none.
		WriteBufferSize: 16 << 10,
		WriteBufferPool: &sync.Pool{},
		CheckOrigin: func(r *http.Request) bool {
			origin := r.Header.Get("Origin")
			if origin == "" {
				return true // not a browser
			}
			// The server's own pages always; pages elsewhere only when listed.
			return origin == "http://"+r.Host || origin == "https://"+r.Host || allowed[origin]
		},
	}
}

// Serve runs one client's connection to t until either ends. It reads in the calling goroutine and writes in one
// goroutine of its own, which tells the client why the connection ends; the socket is closed once reading has
// ended, and Serve returns when both are done. A readOnly client (one holding only a viewer token) may only be a
// viewer.
func Serve(ws *websocket.Conn, t *Terminal, readOnly bool) {
	ws.SetReadLimit(maxFrame + 16)
	_ = ws.SetReadDeadline(time.Now().Add(helloTimeout))
	first, err := readMessage(ws)
	if err == nil && (len(first) == 0 || first[0] != msgHello) {
		err = protoErr(CloseProtocol, "the first message must be HELLO")
	}
	var m clientMsg
	if err == nil {
		m, err = decodeClient(first)
	}
	if err == nil && readOnly && m.hello.role != RoleViewer {
		err = protoErr(CloseReadOnly, "a viewer link may only watch")
	}
	if err != nil {
		closeWith(ws, err)
		ws.Close()
		return
	}
	h := m.hello
	c, start, lost, cols, rows := t.attach(h.role, h.resume, h.cols, h.rows)
	if err := write(ws, encodeWelcome(h.role, start, lost, cols, rows)); err != nil {
		t.detach(c)
		ws.Close()
		return
	}

	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(2)
	go func() { defer wg.Done(); writeLoop(ws, t, c) }()
	go func() { defer wg.Done(); pingLoop(ws, done) }()

	_ = ws.SetReadDeadline(time.Now().Add(pongTimeout))
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(pongTimeout)) })
	for {
		b, err := readMessage(ws)
		if err == nil {
			err = handle(t, c, b)
		}
		if err != nil {
			closeWith(ws, err)
			break
		}
	}
	close(done)
	t.detach(c)
	ws.Close() // ends a writer blocked on a slow socket
	wg.Wait()
}

// handle applies one client message.
func handle(t *Terminal, c *client, b []byte) error {
	m, err := decodeClient(b)
	if err != nil {
		return err
	}
	readOnly := c.role != RoleDriver
	switch m.kind {
	case msgHello:
		return protoErr(CloseProtocol, "HELLO twice")
	case msgInput:
		if readOnly {
			return protoErr(CloseReadOnly, "a viewer may not type")
		}
		return t.input(c, m.data)
	case msgResize:
		if readOnly {
			return protoErr(CloseReadOnly, "a viewer may not resize")
		}
		t.resize(c, m.cols, m.rows)
	case msgAck:
		t.ack(c, m.offset)
	case msgPing:
		t.pong(c, m.data)
	}
	return nil
}

// frames lends output frame buffers to writers only while they send, so that idle connections hold none.
var frames = sync.Pool{New: func() any { b := make([]byte, maxFrame); return &b }}

// writeLoop sends c what it should see, until the client goes, is replaced, or the terminal ends.
func writeLoop(ws *websocket.Conn, t *Terminal, c *client) {
	for {
		ev := t.nextEvent(c, &frames, coalesceDelay)
		var err error
		switch {
		case ev.end && ev.kicked:
			hangUp(ws, protoErr(CloseReplaced, "another driver took over"))
			return
		case ev.end && ev.released:
			hangUp(ws, &protocolError{code: websocket.CloseServiceRestart, msg: "the server is restarting: reconnect"})
			return
		case ev.end:
			hangUp(ws, &protocolError{code: websocket.CloseNormalClosure, msg: "terminal closed"})
			return
		case ev.exit:
			if err = write(ws, encodeExit(ev.code)); err != nil {
				ws.Close()
				return
			}
			hangUp(ws, &protocolError{code: websocket.CloseNormalClosure, msg: "the shell ended"})
			return
		case ev.resize:
			err = write(ws, encodeSize(ev.cols, ev.rows))
		case ev.pong != nil:
			err = write(ws, ev.pong)
		default:
			if ev.lost {
				err = write(ws, encodeLost(ev.offset))
			}
			if err == nil {
				err = write(ws, ev.output)
			}
			frames.Put(ev.frame)
		}
		if err != nil {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				closeWith(ws, protoErr(CloseTooSlow, "the connection accepted nothing for %s", writeTimeout))
			}
			ws.Close()
			t.detach(c)
			return
		}
	}
}

func pingLoop(ws *websocket.Conn, done <-chan struct{}) {
	tick := time.NewTicker(pingInterval)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			if ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)) != nil {
				return
			}
		}
	}
}

// readMessage reads one message; anything but a binary message is a protocol error.
func readMessage(ws *websocket.Conn) ([]byte, error) {
	kind, b, err := ws.ReadMessage()
	if err != nil {
		return nil, err
	}
	if kind != websocket.BinaryMessage {
		return nil, protoErr(CloseProtocol, "text messages are not part of the protocol")
	}
	return b, nil
}

func write(ws *websocket.Conn, b []byte) error {
	_ = ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	return ws.WriteMessage(websocket.BinaryMessage, b)
}

// hangUp ends a connection from the writer's side: it tells the client why, and leaves the reader closeGrace to
// read the client's answer before Serve closes the socket. Closing it at once, with messages of the client's
// unread, would reset the connection, and the client could lose the last output and the reason.
func hangUp(ws *websocket.Conn, why error) {
	closeWith(ws, why)
	_ = ws.SetReadDeadline(time.Now().Add(closeGrace))
}

// closeWith tells the client why the connection ends, when there is a reason to tell.
func closeWith(ws *websocket.Conn, err error) {
	code, msg := websocket.CloseProtocolError, err.Error()
	var pe *protocolError
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &pe):
		code = pe.code
	case errors.Is(err, websocket.ErrReadLimit):
		code, msg = websocket.CloseMessageTooBig, "message over 64 KiB"
	case errors.As(err, &ce):
		return // the client closed
	default:
		return // the connection broke; nobody to tell
	}
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, msg), time.Now().Add(time.Second))
}
