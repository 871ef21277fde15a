package pwdcompat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/sandlot/sandlot/session"
	"github.com/sandlot/sandlot/terminal"
)

// PWD's terminal WebSocket carries JSON text frames {"name": event, "args": [...]} for every node of a session on
// one socket. From the client: "instance terminal in" [node, keys], "instance viewport resize" [cols, rows],
// "session close" []. To it: "instance terminal out" [node, output], "instance new" [node, ip, hostname,
// proxy host], "session end" [].

const (
	frameLimit   = 64 << 10 // bytes of a client frame
	writeTimeout = 10 * time.Second
	pingEvery    = 30 * time.Second
	pongTimeout  = 75 * time.Second
	// watchEvery is how often a socket looks for new nodes (to show their prompt) and for the session's end.
	watchEvery = 500 * time.Millisecond
)

// frame is one PWD WebSocket message.
type frame struct {
	Name string            `json:"name"`
	Args []json.RawMessage `json:"args"`
}

var errBadFrame = errors.New("malformed frame")

// clientEvent is a decoded frame from a client: what it asks for.
type clientEvent struct {
	kind       string // "input", "resize", "close", or "" (an event this layer ignores, as PWD does)
	node, data string
	cols, rows uint16
}

// decodeFrame decodes a client's frame. Frames that are not PWD's shape are errors; events of PWD's that Sandlot
// does not serve are ignored.
func decodeFrame(b []byte) (clientEvent, error) {
	var f frame
	if err := json.Unmarshal(b, &f); err != nil || f.Name == "" {
		return clientEvent{}, errBadFrame
	}
	switch f.Name {
	case "instance terminal in":
		var ev clientEvent
		if len(f.Args) != 2 || json.Unmarshal(f.Args[0], &ev.node) != nil || json.Unmarshal(f.Args[1], &ev.data) != nil || ev.node == "" {
			return clientEvent{}, fmt.Errorf("%w: %q takes [node, text]", errBadFrame, f.Name)
		}
		ev.kind = "input"
		return ev, nil
	case "instance viewport resize":
		var cols, rows float64
		if len(f.Args) != 2 || json.Unmarshal(f.Args[0], &cols) != nil || json.Unmarshal(f.Args[1], &rows) != nil ||
			cols < 1 || rows < 1 || cols > terminal.MaxCols || rows > terminal.MaxRows {
			return clientEvent{}, fmt.Errorf("%w: %q takes [cols, rows] in range", errBadFrame, f.Name)
		}
		return clientEvent{kind: "resize", cols: uint16(cols), rows: uint16(rows)}, nil
	case "session close":
		return clientEvent{kind: "close"}, nil
	}
	return clientEvent{}, nil
}

func encodeFrame(name string, args ...any) []byte {
	if args == nil {
		args = []any{}
	}
	b, _ := json.Marshal(struct {
		Name string `json:"name"`
		Args []any  `json:"args"`
	}{name, args})
	return b
}

// splitUTF8 keeps back an incomplete character at the end of b, so that output cut inside one is not mangled
// into replacement characters by JSON (a PWD frame carries text).
func splitUTF8(b []byte) (complete, rest []byte) {
	for i := 1; i <= utf8.UTFMax-1 && i <= len(b); i++ {
		c := b[len(b)-i]
		if c < utf8.RuneSelf {
			break
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return b[:len(b)-i], b[len(b)-i:]
			}
			break
		}
	}
	return b, nil
}

var upgrader = websocket.Upgrader{
	// The origin is checked before (fromPage): Sandlot's own and listed origins only.
	CheckOrigin: func(*http.Request) bool { return true },
}

// terminals is PWD's /sessions/{id}/ws/: every node's first terminal, driven from one socket.
func (p *compat) terminals() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if s, err := p.svc.Stored(r.Context(), id); err != nil || s.State == session.StateEnded {
			p.fail(w, fmt.Errorf("%w: no such session", session.ErrNotFound))
			return
		}
		if p.cfg.Sockets != nil {
			release, ok := p.cfg.Sockets(p.cfg.ClientIP(r))
			if !ok {
				failWith(w, http.StatusTooManyRequests, "too_many_connections", "too many terminal connections from your address")
				return
			}
			defer release()
		}
		ws, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return // the upgrader has answered
		}
		c := &conn{p: p, id: id, ws: ws, out: make(chan []byte, 64), bye: make(chan struct{}), streams: map[string]*terminal.Stream{},
			cols: 80, rows: 24}
		c.run(context.WithoutCancel(r.Context()))
	})
}

// conn is one PWD socket: the handler's goroutine reads, one goroutine writes (and pings), one watches the
// session, and one per node pumps its output into the writer's queue.
type conn struct {
	p   *compat
	id  string
	ws  *websocket.Conn
	out chan []byte
	bye chan struct{} // closed by the watcher when the session has ended: the writer sends what is queued and ends

	mu         sync.Mutex
	streams    map[string]*terminal.Stream
	cols, rows uint16
	pumps      sync.WaitGroup
}

func (c *conn) run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); defer cancel(); c.write(ctx) }()
	go func() { defer wg.Done(); c.watch(ctx) }()
	c.ws.SetReadLimit(frameLimit)
	_ = c.ws.SetReadDeadline(time.Now().Add(pongTimeout))
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(pongTimeout)) })
	// When the writer ends (the session ended, or the client is gone), so does the read below.
	go func() { defer wg.Done(); <-ctx.Done(); _ = c.ws.SetReadDeadline(time.Now()) }()
	closeCode, why := websocket.CloseNormalClosure, ""
	for {
		mt, b, err := c.ws.ReadMessage()
		if err != nil {
			break
		}
		if mt != websocket.TextMessage {
			closeCode, why = websocket.CloseUnsupportedData, "PWD frames are JSON text"
			break
		}
		ev, err := decodeFrame(b)
		if err != nil {
			closeCode, why = websocket.CloseInvalidFramePayloadData, err.Error()
			break
		}
		c.handle(ctx, ev)
	}
	cancel()
	c.mu.Lock()
	for _, s := range c.streams {
		_ = s.Close()
	}
	c.mu.Unlock()
	c.pumps.Wait()
	wg.Wait()
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closeCode, why), time.Now().Add(time.Second))
	c.ws.Close()
}

func (c *conn) handle(ctx context.Context, ev clientEvent) {
	switch ev.kind {
	case "input":
		if s := c.stream(ctx, ev.node); s != nil {
			_, _ = s.Write([]byte(ev.data))
		}
	case "resize":
		c.mu.Lock()
		c.cols, c.rows = ev.cols, ev.rows
		for _, s := range c.streams {
			_ = s.Resize(ev.cols, ev.rows)
		}
		c.mu.Unlock()
	case "close":
		if _, err := c.p.svc.End(ctx, c.id, session.EndDeleted, ""); err != nil {
			c.p.log.Warn("pwd-compat: session close", "session", c.id, "err", err)
		}
	}
}

// stream is the node's terminal stream on this socket, attached on first use; nil if the node has none (it is
// being made, or is not there).
func (c *conn) stream(ctx context.Context, node string) *terminal.Stream {
	c.mu.Lock()
	s, ok := c.streams[node]
	cols, rows := c.cols, c.rows
	c.mu.Unlock()
	if ok {
		return s
	}
	if ctx.Err() != nil {
		return nil
	}
	t, err := c.p.svc.Terminal(ctx, c.id, node, 1)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.streams[node]; ok {
		return s
	}
	if ctx.Err() != nil {
		return nil
	}
	s = t.Drive(cols, rows)
	c.streams[node] = s
	c.pumps.Add(1)
	go c.pump(ctx, node, s)
	return s
}

// pump sends a node's output to the client until its stream ends. It waits for room in the writer's queue, so a
// slow client slows only its own terminals (the terminal pauses its shell as output goes unacknowledged).
func (c *conn) pump(ctx context.Context, node string, s *terminal.Stream) {
	defer c.pumps.Done()
	var carry []byte
	for {
		b, err := s.Next()
		if err != nil {
			c.mu.Lock()
			if c.streams[node] == s {
				delete(c.streams, node) // a new shell is attached on the next keystroke or watch
			}
			c.mu.Unlock()
			_ = s.Close()
			return
		}
		text, rest := splitUTF8(append(carry, b...))
		carry = append([]byte(nil), rest...)
		if len(text) == 0 {
			continue
		}
		select {
		case c.out <- encodeFrame("instance terminal out", node, string(text)):
		case <-ctx.Done():
			return
		}
	}
}

// watch attaches the terminals of nodes as they come up (so their prompts show before anyone types), tells the
// client of nodes that come up after it connected ("instance new", as PWD announced a node made), and ends the
// socket, after telling the client, when the session ends.
func (c *conn) watch(ctx context.Context) {
	tick := time.NewTicker(watchEvery)
	defer tick.Stop()
	// Nodes running when the socket first looked are not new to its client; nodes it has announced since are
	// forgotten when they go, so that a node made again under the same name is announced again.
	announced, first := map[string]bool{}, true
	for {
		s, err := c.p.svc.Stored(ctx, c.id)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, session.ErrNotFound) || err == nil && s.State == session.StateEnded {
			select {
			case c.out <- encodeFrame("session end"):
			case <-ctx.Done():
			}
			close(c.bye)
			return
		}
		if err == nil {
			present := map[string]bool{}
			for _, in := range s.Instances {
				present[in.Name] = true
				if in.Status != session.NodeRunning {
					continue
				}
				if !announced[in.Name] {
					announced[in.Name] = true
					if !first {
						// PWD's args: name, ip, hostname, proxy host; queued before the node's first output here.
						select {
						case c.out <- encodeFrame("instance new", in.Name, in.IP, in.Hostname, in.Name+"-"+c.id):
						case <-ctx.Done():
							return
						}
					}
				}
				c.stream(ctx, in.Name)
			}
			for name := range announced {
				if !present[name] {
					delete(announced, name)
				}
			}
			first = false
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// write sends queued frames and pings until the session ends (bye) or ctx does; it alone writes data frames.
func (c *conn) write(ctx context.Context) {
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-c.out:
			_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
				return
			}
		case <-c.bye:
			for {
				select {
				case b := <-c.out:
					_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
					if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
						return
					}
				default:
					return
				}
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
				return
			}
		}
	}
}
