package session

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sandlot/sandlot/instance"
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

// rawCat opens the raw path: docker exec with a TTY running cat on a raw terminal.
func rawCat(b *testing.B, c created, script string) *instance.TTY {
	tty, err := driver(b).OpenTTY(context.Background(), c.ID, "node1", instance.TTYOptions{Cmd: []string{"sh", "-c", script}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tty.Close() })
	return tty
}

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

// BenchmarkKeystrokeEcho: p50 and p99 of one byte typed and echoed back, through Sandlot and raw.
func BenchmarkKeystrokeEcho(b *testing.B) {
	s, c := benchNode(b)
	raw := rawCat(b, c, "stty raw -echo; echo READY-$((6*7)); exec cat")
	waitText(b, raw, "READY-42")
	ws := wsTerminal(b, s, c, 1, "stty raw -echo; echo READY-$((6*7)); exec cat")
	const rounds = 2000
	var ours, plain []time.Duration
	buf := make([]byte, 64)
	for i := 0; i < b.N; i++ {
		for r := 0; r < rounds; r++ {
			start := time.Now()
			if _, err := raw.Write([]byte{'k'}); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadAtLeast(raw, buf[:1], 1); err != nil {
				b.Fatal(err)
			}
			plain = append(plain, time.Since(start))

			start = time.Now()
			if err := ws.WriteMessage(websocket.BinaryMessage, []byte{'i', 'k'}); err != nil {
				b.Fatal(err)
			}
			for {
				_, m, err := ws.ReadMessage()
				if err != nil {
					b.Fatal(err)
				}
				if m[0] == 'o' {
					ack(ws, m)
					break
				}
			}
			ours = append(ours, time.Since(start))
		}
	}
	b.ReportMetric(us(percentile(ours, 50)), "us-sandlot-p50")
	b.ReportMetric(us(percentile(ours, 99)), "us-sandlot-p99")
	b.ReportMetric(us(percentile(plain, 50)), "us-raw-p50")
	b.ReportMetric(us(percentile(plain, 99)), "us-raw-p99")
	b.ReportMetric(float64(percentile(ours, 50))/float64(percentile(plain, 50)), "ratio-p50")
	b.ReportMetric(float64(percentile(ours, 99))/float64(percentile(plain, 99)), "ratio-p99")
}

// BenchmarkTerminalThroughput: MB/s of 200 MB of output, through Sandlot (one client, and the driver with 4
// viewers) and raw.
func BenchmarkTerminalThroughput(b *testing.B) {
	const size = 200_000_000
	s, c := benchNode(b)
	gen := fmt.Sprintf("stty raw -echo; echo READY-$((6*7)); read go; head -c %d /dev/zero; echo; echo DONE-$((6*7))", size)
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
			ws := wsTerminal(b, s, c, 2+i*2+viewers/4, gen)
			var vs []*websocket.Conn
			for v := 0; v < viewers; v++ {
				vs = append(vs, viewer(b, s, c, 2+i*2+viewers/4))
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
			for _, v := range vs {
				v.Close()
			}
			for range vs {
				<-done
			}
			ws.Close()
		}
	}
	b.ReportMetric(medianF(ours), "MB/s-sandlot")
	b.ReportMetric(medianF(shared), "MB/s-sandlot-driver-with-4-viewers")
	b.ReportMetric(medianF(plain), "MB/s-raw")
	b.ReportMetric(medianF(ours)/medianF(plain), "ratio")
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
	var tailBuf []byte
	for {
		_, m, err := ws.ReadMessage()
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
			b.Fatalf("raw stream ended after %d bytes: %v", n, err)
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
