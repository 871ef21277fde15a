package terminal

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"github.com/sandlot/sandlot/internal/wsread"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// BenchmarkIdleTerminals: the server-side memory of 1,000 terminals, each over a local PTY (running cat) with a
// connected, idle driver. The clients live in a child process, so heap and goroutine stacks measured here are the
// server's: after the PTYs exist (they stand in for nodes' exec streams, and their exec bookkeeping is not the
// server's), after the terminals, and after the clients connect. Goroutine stacks start at the process's average
// stack size (Go's adaptive stack start), so the stack part depends on what else the process does.
func BenchmarkIdleTerminals(b *testing.B) {
	const count = 1000
	for i := 0; i < b.N; i++ {
		ptys := make([]*LocalPTY, count)
		for k := range ptys {
			p, err := StartLocal("cat")
			if err != nil {
				b.Fatal(err)
			}
			ptys[k] = p
		}
		base := memInUse()
		m := NewManager(Options{}, time.Hour)
		terms := make([]*Terminal, count)
		for k := range terms {
			t, err := m.Get(fmt.Sprint(k), 80, 24, func() (TTY, error) { return ptys[k], nil })
			if err != nil {
				b.Fatal(err)
			}
			terms[k] = t
		}
		withTerms := memInUse()

		up := NewUpgrader(nil)
		var wg sync.WaitGroup
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			k := 0
			fmt.Sscan(r.URL.Query().Get("k"), &k)
			ws, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			wg.Add(1)
			defer wg.Done()
			Serve(ws, terms[k], false)
		}))
		child := exec.Command(os.Args[0], "-test.run=^TestIdleClientsChild$")
		child.Env = append(os.Environ(), "IDLE_CLIENTS_URL=ws"+strings.TrimPrefix(srv.URL, "http")+"/?k=",
			fmt.Sprint("IDLE_CLIENTS=", count))
		stdin, _ := child.StdinPipe()
		out, _ := child.StdoutPipe()
		child.Stderr = os.Stderr
		if err := child.Start(); err != nil {
			b.Fatal(err)
		}
		if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || strings.TrimSpace(line) != "connected" {
			b.Fatalf("clients: %q, %v", line, err)
		}
		time.Sleep(time.Second)
		withClients := memInUse()
		b.ReportMetric(float64(withTerms-base)/count/1024, "KiB/terminal-no-client")
		b.ReportMetric(float64(withClients-base)/count/1024, "KiB/terminal-with-idle-driver")

		stdin.Close()
		_ = child.Wait()
		m.CloseMatching("")
		srv.Close()
		wg.Wait()
	}
}

// TestIdleClientsChild is the client side of BenchmarkIdleTerminals, run in a child process.
func TestIdleClientsChild(t *testing.T) {
	url := os.Getenv("IDLE_CLIENTS_URL")
	if url == "" {
		t.Skip("run by BenchmarkIdleTerminals")
	}
	count, _ := strconv.Atoi(os.Getenv("IDLE_CLIENTS"))
	conns := make([]*websocket.Conn, count)
	for k := range conns {
		ws, _, err := websocket.DefaultDialer.Dial(fmt.Sprint(url, k), nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = ws.WriteMessage(websocket.BinaryMessage, binary.BigEndian.AppendUint64([]byte{msgHello, Version, RoleDriver, 0, 80, 0, 24}, 0))
		if _, _, err := ws.ReadMessage(); err != nil {
			t.Fatal(err)
		}
		conns[k] = ws
	}
	fmt.Println("connected")
	_, _ = io.Copy(io.Discard, os.Stdin) // until the benchmark is done
	for _, c := range conns {
		c.Close()
	}
}

func memInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// BenchmarkStalledViewer: the driver's throughput on 50 MB of output, alone and with a viewer that reads nothing,
// alternating in one run; reports both medians and the ratio (the target: a stalled viewer costs under 10%).
func BenchmarkStalledViewer(b *testing.B) {
	var alone, stalled []float64
	for i := 0; i < b.N; i++ {
		for _, withViewer := range []bool{i%2 == 0, i%2 != 0} {
			mbs := driverThroughput(b, withViewer)
			if withViewer {
				stalled = append(stalled, mbs)
			} else {
				alone = append(alone, mbs)
			}
		}
	}
	a, s := medianOf(alone), medianOf(stalled)
	b.ReportMetric(a, "MB/s-alone")
	b.ReportMetric(s, "MB/s-with-stalled-viewer")
	b.ReportMetric(s/a, "ratio")
}

func driverThroughput(b *testing.B, withViewer bool) float64 {
	_, url := serveLocal(b, Options{}, "bash", "--norc", "--noprofile", "-c",
		"stty raw -echo; read go; head -c 50000000 /dev/zero; echo; echo END-$((6*7))")
	if withViewer {
		v := dialIdle(b, url+"?v=", 1, false)[0]
		_ = v.WriteMessage(websocket.BinaryMessage, binary.BigEndian.AppendUint64([]byte{msgHello, Version, RoleViewer, 0, 80, 0, 24}, 0))
		defer v.Close() // never read: it stalls
	}
	d := dialIdle(b, url+"?d=", 1, true)[0]
	defer d.Close()
	start := time.Now()
	_ = d.WriteMessage(websocket.BinaryMessage, []byte{msgInput, '\n'})
	var n, acked uint64
	var last []byte
	for !bytes.Contains(last, []byte("END-42")) {
		_, m, err := d.ReadMessage()
		if err != nil {
			b.Fatal(err)
		}
		if m[0] != msgOutput {
			continue
		}
		n = binary.BigEndian.Uint64(m[1:]) + uint64(len(m)-9)
		last = append(last[max(0, len(last)-32):], m[9:]...)
		if n-acked >= 64<<10 {
			acked = n
			_ = d.WriteMessage(websocket.BinaryMessage, binary.BigEndian.AppendUint64([]byte{msgAck}, n))
		}
	}
	return float64(n) / time.Since(start).Seconds() / 1e6
}

func medianOf(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// dialIdle opens count connections to url+k; with hello, each says HELLO as a driver and reads WELCOME.
func dialIdle(b *testing.B, url string, count int, hello bool) []*websocket.Conn {
	conns := make([]*websocket.Conn, count)
	for k := range conns {
		ws, _, err := websocket.DefaultDialer.Dial(fmt.Sprint(url, k), nil)
		if err != nil {
			b.Fatal(err)
		}
		if hello {
			_ = ws.WriteMessage(websocket.BinaryMessage, binary.BigEndian.AppendUint64([]byte{msgHello, Version, RoleDriver, 0, 80, 0, 24}, 0))
			if _, _, err := ws.ReadMessage(); err != nil {
				b.Fatal(err)
			}
		}
		conns[k] = ws
	}
	return conns
}

// BenchmarkKeystrokeEcho: one byte typed and echoed back by cat, through a terminal's WebSocket and straight,
// interleaved; with the driver alone and with 4 viewers receiving every echo. cat's stdin and stdout are a socket,
// as a node's exec stream is to the engine (a local PTY reads in a blocking system call instead, which schedules
// differently). Reports p50s and what the WebSocket path adds; the engine costs far more than cat, so session/api's
// benchmark of the same name gives the ratio that matters.
func BenchmarkKeystrokeEcho(b *testing.B) {
	for _, viewers := range []int{0, 4} {
		b.Run(fmt.Sprintf("clients=%d", 1+viewers), func(b *testing.B) {
			url := serve(b, New(catOverSocket(b), 80, 24, Options{}))
			raw := catOverSocket(b)
			for v := 0; v < viewers; v++ {
				defer watch(b, url)()
			}
			d := dialIdle(b, url+"?d=", 1, true)[0]
			defer d.Close()
			buf := make([]byte, 64)
			viaRaw := func() time.Duration {
				start := time.Now()
				if _, err := raw.Write([]byte{'k'}); err != nil {
					b.Fatal(err)
				}
				if _, err := raw.Read(buf); err != nil {
					b.Fatal(err)
				}
				return time.Since(start)
			}
			var msg []byte
			viaWS := func() time.Duration {
				start := time.Now()
				if err := d.WriteMessage(websocket.BinaryMessage, []byte{msgInput, 'k'}); err != nil {
					b.Fatal(err)
				}
				for {
					var err error
					if msg, err = wsread.Next(d, msg); err != nil {
						b.Fatal(err)
					}
					if msg[0] == msgOutput {
						return time.Since(start)
					}
				}
			}
			var ours, plain []float64
			for i := 0; i < b.N; i++ {
				for r := 0; r < 2000; r++ {
					if r%2 == 0 {
						plain = append(plain, float64(viaRaw()))
						ours = append(ours, float64(viaWS()))
					} else {
						ours = append(ours, float64(viaWS()))
						plain = append(plain, float64(viaRaw()))
					}
				}
			}
			o, p := medianOf(ours), medianOf(plain)
			b.ReportMetric(o/1e3, "us-terminal-p50")
			b.ReportMetric(p/1e3, "us-raw-p50")
			b.ReportMetric((o-p)/1e3, "us-added-p50")
		})
	}
}

// BenchmarkThroughput: MB/s of 100 MB of output from a command writing to a socket (as a node's exec stream is),
// read straight and through a terminal's WebSocket (the driver alone, and with 4 viewers reading everything), a
// round of each in turn; reports the medians and ratios to the straight read.
func BenchmarkThroughput(b *testing.B) {
	gen := []string{"sh", "-c", "read go; head -c 100000000 /dev/zero; echo END-$((6*7))"}
	var plain, alone, shared []float64
	for i := 0; i < b.N; i++ {
		raw := overSocket(b, gen[0], gen[1:]...)
		start := time.Now()
		_, _ = raw.Write([]byte("\n"))
		buf := make([]byte, 64<<10)
		n := 0
		var last []byte
		for !bytes.Contains(last, []byte("END-42")) {
			k, err := raw.Read(buf)
			if err != nil {
				b.Fatal(err)
			}
			n += k
			last = append(last[max(0, len(last)-32):], buf[:k]...)
		}
		plain = append(plain, float64(n)/time.Since(start).Seconds()/1e6)
		raw.Close()

		for _, viewers := range []int{0, 4} {
			term := New(overSocket(b, gen[0], gen[1:]...), 80, 24, Options{})
			url := serve(b, term)
			var stops []func()
			for v := 0; v < viewers; v++ {
				stops = append(stops, watch(b, url))
			}
			d := dialIdle(b, url+"?d=", 1, true)[0]
			start := time.Now()
			_ = d.WriteMessage(websocket.BinaryMessage, []byte{msgInput, '\n'})
			var got, acked uint64
			var m []byte
			last = nil
			for !bytes.Contains(last, []byte("END-42")) {
				var err error
				if m, err = wsread.Next(d, m); err != nil {
					b.Fatal(err)
				}
				if m[0] != msgOutput {
					continue
				}
				got = binary.BigEndian.Uint64(m[1:]) + uint64(len(m)-9)
				last = append(last[max(0, len(last)-32):], m[9:]...)
				if got-acked >= 64<<10 {
					acked = got
					_ = d.WriteMessage(websocket.BinaryMessage, binary.BigEndian.AppendUint64([]byte{msgAck}, got))
				}
			}
			mbs := float64(got) / time.Since(start).Seconds() / 1e6
			if viewers == 0 {
				alone = append(alone, mbs)
			} else {
				shared = append(shared, mbs)
			}
			d.Close()
			term.Close()
			for _, stop := range stops {
				stop()
			}
		}
	}
	p := medianOf(plain)
	b.ReportMetric(p, "MB/s-raw")
	b.ReportMetric(medianOf(alone), "MB/s-terminal")
	b.ReportMetric(medianOf(shared), "MB/s-terminal-with-4-viewers")
	b.ReportMetric(medianOf(alone)/p, "ratio")
	b.ReportMetric(medianOf(shared)/p, "ratio-with-4-viewers")
}

// watch connects a viewer to url that reads everything, until the returned function is called.
func watch(b *testing.B, url string) (stop func()) {
	ws := dialIdle(b, url+"?v=", 1, false)[0]
	_ = ws.WriteMessage(websocket.BinaryMessage, binary.BigEndian.AppendUint64([]byte{msgHello, Version, RoleViewer, 0, 80, 0, 24}, 0))
	done := make(chan struct{})
	go func() {
		defer close(done)
		var m []byte
		for {
			var err error
			if m, err = wsread.Next(ws, m); err != nil {
				return
			}
		}
	}()
	return func() { ws.Close(); <-done }
}

// catOverSocket runs cat with one end of a socket pair as its stdin and stdout, and returns the other end as a TTY.
func catOverSocket(b *testing.B) *socketTTY { return overSocket(b, "cat") }

// overSocket runs a command with one end of a socket pair as its stdin and stdout, and returns the other end as a
// TTY.
func overSocket(b *testing.B, name string, args ...string) *socketTTY {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	theirs, ours := os.NewFile(uintptr(fds[0]), name), os.NewFile(uintptr(fds[1]), "terminal")
	cmd := exec.Command(name, args...)
	cmd.Stdin, cmd.Stdout = theirs, theirs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	theirs.Close()
	conn, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(); _ = cmd.Wait() })
	return &socketTTY{conn}
}

// socketTTY is a TTY over a socket: no size to set.
type socketTTY struct{ net.Conn }

func (socketTTY) Resize(cols, rows uint16) error { return nil }
