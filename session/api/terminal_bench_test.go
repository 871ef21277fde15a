package api

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"github.com/sandlot/sandlot/internal/wsread"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/gorilla/websocket"
	"github.com/sandlot/sandlot/internal/redistest"
)

// The terminal benchmarks compare Sandlot's WebSocket terminal with the raw docker exec stream into the same node,
// in one run: keystroke echo (one byte to `cat` on a raw TTY and back) and output throughput.

func benchNode(b *testing.B) (*server, created) {
	s := newServer(b, redistest.New(b), serverOpts{})
	c := s.create(nil)
	s.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+c.ID+"/instances", c.Token, nil, nil)
	return s, c
}

// rawCat opens the raw path: the engine's own docker exec with a TTY (what `docker exec -it` gives), running
// script, with nothing of Sandlot's between (not instance.OpenTTY, which takes a terminal's short way).
func rawCat(b *testing.B, c created, script string) io.ReadWriteCloser {
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { docker.Close() })
	ctx := context.Background()
	nodes, err := driver(b).List(ctx, c.ID)
	if err != nil || len(nodes) == 0 {
		b.Fatalf("the node of session %s: %v", c.ID, err)
	}
	size := [2]uint{24, 80}
	created, err := docker.ContainerExecCreate(ctx, nodes[0].ContainerID, container.ExecOptions{
		Cmd: []string{"sh", "-c", script}, Tty: true, AttachStdin: true, AttachStdout: true, AttachStderr: true,
		ConsoleSize: &size})
	if err != nil {
		b.Fatal(err)
	}
	conn, err := docker.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{Tty: true, ConsoleSize: &size})
	if err != nil {
		b.Fatal(err)
	}
	r := rawTTY{conn}
	b.Cleanup(func() { r.Close() })
	return r
}

// rawTTY is a hijacked exec stream with a TTY: output as it comes (no stream headers with a TTY), input as typed.
type rawTTY struct{ conn types.HijackedResponse }

func (r rawTTY) Read(p []byte) (int, error)  { return r.conn.Reader.Read(p) }
func (r rawTTY) Write(p []byte) (int, error) { return r.conn.Conn.Write(p) }
func (r rawTTY) Close() error                { r.conn.Close(); return nil }

// wsTerminal opens Sandlot's path and runs script in its shell, returning once it printed READY.
func wsTerminal(b *testing.B, s *server, c created, tid int, script string) *websocket.Conn {
	url := "ws" + s.URL[len("http"):] + fmt.Sprintf("/api/v1/sessions/%s/instances/node1/terminal?t=%d", c.ID, tid)
	ws, _, err := websocket.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer " + c.Token}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ws.Close() })
	hello := binary.BigEndian.AppendUint64([]byte{'h', 1, 0, 0, 80, 0, 24}, 0)
	_ = ws.WriteMessage(websocket.BinaryMessage, hello)
	_ = ws.WriteMessage(websocket.BinaryMessage, append([]byte{'i'}, script+"\n"...))
	var seen bytes.Buffer
	for !bytes.Contains(seen.Bytes(), []byte("READY-42")) {
		_, m, err := ws.ReadMessage()
		if err != nil {
			b.Fatal(err)
		}
		if m[0] == 'o' {
			seen.Write(m[9:])
			ack(ws, m)
		}
	}
	return ws
}

// ack acknowledges output as PROTOCOL.md suggests a client does: when 64 KiB or more are unacknowledged.
func ack(ws *websocket.Conn, m []byte) {
	next := binary.BigEndian.Uint64(m[1:]) + uint64(len(m)-9)
	if next-acked.get(ws) < 64<<10 {
		return
	}
	acked.set(ws, next)
	_ = ws.WriteMessage(websocket.BinaryMessage, binary.BigEndian.AppendUint64([]byte{'a'}, next))
}

// acked is what each benchmark connection acknowledged last (each is read by one goroutine; the map is guarded).
var acked = &lockedAcks{m: map[*websocket.Conn]uint64{}}

// BenchmarkKeystrokeEcho: p50 and p99 of one byte typed and echoed back, through Sandlot and raw, interleaved
// keystroke by keystroke (which goes first alternates). clients=1 is the driver alone; clients=5 is the driver with
// 4 viewers of the same terminal, each receiving every echo: what a terminal's audience (an instructor's terminal
// shown to a room, a learner being watched) costs the one typing. Five separate terminals would measure the engine
// running five shells instead; nothing in the terminal package is shared between terminals. bare-relay is the
// floor: a WebSocket relay with no terminal logic, compared with raw the same way.
func BenchmarkKeystrokeEcho(b *testing.B) {
	s, c := benchNode(b)
	const script = "stty raw -echo; echo READY-$((6*7)); exec cat"
	raw := rawCat(b, c, script)
	waitText(b, raw, "READY-42")
	for _, viewers := range []int{0, 4} {
		// Opened here, not in the sub-benchmark, which runs more than once: cat would take a second script as input.
		ws := wsTerminal(b, s, c, 1+viewers/4, script)
		for v := 0; v < viewers; v++ {
			vw := viewer(b, s, c, 1+viewers/4)
			b.Cleanup(func() { vw.Close() })
			go drainWS(vw, "")
		}
		b.Run(fmt.Sprintf("clients=%d", 1+viewers), func(b *testing.B) { keystrokes(b, raw, ws) })
	}
	// The floor: what the WebSocket hop alone costs here, relaying with no terminal at all.
	b.Run("bare-relay", func(b *testing.B) { keystrokes(b, raw, bareRelay(b, rawCat(b, c, script))) })
}

// bareRelay serves a WebSocket that relays to tty with nothing of Sandlot's: INPUT messages are written to it as
// they come, and the goroutine reading it writes each read as an OUTPUT message (offset 0) straight to the socket,
// with no hand-over to a writer goroutine, no scrollback and no flow control. It returns a client connection.
func bareRelay(b *testing.B, tty io.ReadWriter) *websocket.Conn {
	waitText(b, tty, "READY-42")
	var up websocket.Upgrader
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		go func() {
			buf := make([]byte, 8<<10)
			for {
				n, err := tty.Read(buf[9:])
				if err != nil {
					return
				}
				buf[0] = 'o'
				_ = ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if ws.WriteMessage(websocket.BinaryMessage, buf[:9+n]) != nil {
					return
				}
			}
		}()
		for {
			_, m, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if m[0] == 'i' {
				_, _ = tty.Write(m[1:])
			}
		}
	}))
	b.Cleanup(srv.Close)
	ws, _, err := websocket.DefaultDialer.Dial("ws"+srv.URL[len("http"):], nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ws.Close() })
	return ws
}

func keystrokes(b *testing.B, raw io.ReadWriter, ws *websocket.Conn) {
	const rounds = 2000
	var ours, plain []time.Duration
	viaRaw := rawEcho(b, raw)
	viaSandlot := wsEcho(b, ws)
	for i := 0; i < b.N; i++ {
		for r := 0; r < rounds; r++ {
			if r%2 == 0 {
				plain = append(plain, viaRaw())
				ours = append(ours, viaSandlot())
			} else {
				ours = append(ours, viaSandlot())
				plain = append(plain, viaRaw())
			}
		}
	}
	b.ReportMetric(us(percentile(ours, 50)), "us-sandlot-p50")
	b.ReportMetric(us(percentile(ours, 99)), "us-sandlot-p99")
	b.ReportMetric(us(percentile(plain, 50)), "us-raw-p50")
	b.ReportMetric(us(percentile(plain, 99)), "us-raw-p99")
	b.ReportMetric(float64(percentile(ours, 50))/float64(percentile(plain, 50)), "ratio-p50")
	b.ReportMetric(float64(percentile(ours, 99))/float64(percentile(plain, 99)), "ratio-p99")
}

// rawEcho returns a function that types one byte into raw and times its echo.
func rawEcho(b *testing.B, raw io.ReadWriter) func() time.Duration {
	buf := make([]byte, 64)
	return func() time.Duration {
		start := time.Now()
		if _, err := raw.Write([]byte{'k'}); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadAtLeast(raw, buf[:1], 1); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
}

// wsEcho returns a function that types one byte into a terminal's WebSocket and times its echo.
func wsEcho(b *testing.B, ws *websocket.Conn) func() time.Duration {
	var msg []byte
	return func() time.Duration {
		start := time.Now()
		if err := ws.WriteMessage(websocket.BinaryMessage, []byte{'i', 'k'}); err != nil {
			b.Fatal(err)
		}
		for {
			m, err := wsread.Next(ws, msg)
			msg = m
			if err != nil {
				b.Fatal(err)
			}
			if m[0] == 'o' {
				ack(ws, m)
				return time.Since(start)
			}
		}
	}
}

// BenchmarkTerminalThroughput: MB/s of 200 MB of output, through Sandlot (one client, and the driver with 4
// viewers) and raw, a round of each in turn.
func BenchmarkTerminalThroughput(b *testing.B) {
	const size = 200_000_000
	s, c := benchNode(b)
	// The shell exits once done, so that the next round's connection to the same terminal starts a fresh one.
	gen := fmt.Sprintf("stty raw -echo; echo READY-$((6*7)); read go; head -c %d /dev/zero; echo; echo DONE-$((6*7)); exit", size)
	var ours, plain, shared []float64
	for i := 0; i < b.N; i++ {
		raw := rawCat(b, c, gen)
		waitText(b, raw, "READY-42")
		start := time.Now()
		_, _ = raw.Write([]byte("\n"))
		n := drainRaw(b, raw, "DONE-42")
		plain = append(plain, float64(n)/time.Since(start).Seconds()/1e6)
		raw.Close()

		for _, viewers := range []int{0, 4} {
			tid := 2 + viewers/4
			ws := wsTerminal(b, s, c, tid, gen)
			var vs []*websocket.Conn
			for v := 0; v < viewers; v++ {
				vs = append(vs, viewer(b, s, c, tid))
			}
			start := time.Now()
			_ = ws.WriteMessage(websocket.BinaryMessage, []byte("i\n"))
			done := make(chan struct{})
			for _, v := range vs {
				go func() { drainWS(v, ""); done <- struct{}{} }()
			}
			n := drainWS(ws, "DONE-42")
			mbs := float64(n) / time.Since(start).Seconds() / 1e6
			if viewers == 0 {
				ours = append(ours, mbs)
			} else {
				shared = append(shared, mbs)
			}
			drainWS(ws, "") // until the shell's EXIT and the close after it: the terminal has ended
			ws.Close()
			for _, v := range vs {
				v.Close()
			}
			for range vs {
				<-done
			}
		}
	}
	b.ReportMetric(medianF(ours), "MB/s-sandlot")
	b.ReportMetric(medianF(shared), "MB/s-sandlot-driver-with-4-viewers")
	b.ReportMetric(medianF(plain), "MB/s-raw")
	b.ReportMetric(medianF(ours)/medianF(plain), "ratio")
	b.ReportMetric(medianF(shared)/medianF(plain), "ratio-with-4-viewers")
}

func viewer(b *testing.B, s *server, c created, tid int) *websocket.Conn {
	url := "ws" + s.URL[len("http"):] + fmt.Sprintf("/api/v1/sessions/%s/instances/node1/terminal?t=%d", c.ID, tid)
	ws, _, err := websocket.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer " + c.Token}})
	if err != nil {
		b.Fatal(err)
	}
	_ = ws.WriteMessage(websocket.BinaryMessage, binary.BigEndian.AppendUint64([]byte{'h', 1, 1, 0, 80, 0, 24}, 0))
	return ws
}

// drainWS reads output (acknowledging it) until the tail contains want or the connection ends; it returns bytes.
func drainWS(ws *websocket.Conn, want string) int {
	n := 0
	var tailBuf, m []byte
	for {
		var err error
		m, err = wsread.Next(ws, m)
		if err != nil {
			return n
		}
		if m[0] != 'o' {
			continue
		}
		n += len(m) - 9
		ack(ws, m)
		if want != "" {
			tailBuf = append(tailBuf, m[9:]...)
			if len(tailBuf) > 256 {
				tailBuf = tailBuf[len(tailBuf)-256:]
			}
			if bytes.Contains(tailBuf, []byte(want)) {
				return n
			}
		}
	}
}

func drainRaw(b *testing.B, r io.Reader, want string) int {
	buf := make([]byte, 64<<10)
	n := 0
	var tailBuf []byte
	for {
		k, err := r.Read(buf)
		n += k
		tailBuf = append(tailBuf, buf[:k]...)
		if len(tailBuf) > 256 {
			tailBuf = tailBuf[len(tailBuf)-256:]
		}
		if bytes.Contains(tailBuf, []byte(want)) {
			return n
		}
		if err != nil {
			b.Fatalf("raw stream ended after %d bytes: %v; the last: %q", n, err, tailBuf)
		}
	}
}

func waitText(b *testing.B, r io.Reader, want string) { drainRaw(b, r, want) }

type lockedAcks struct {
	mu sync.Mutex
	m  map[*websocket.Conn]uint64
}

func (l *lockedAcks) get(ws *websocket.Conn) uint64    { l.mu.Lock(); defer l.mu.Unlock(); return l.m[ws] }
func (l *lockedAcks) set(ws *websocket.Conn, v uint64) { l.mu.Lock(); l.m[ws] = v; l.mu.Unlock() }

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func medianF(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}
