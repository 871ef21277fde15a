package e2e

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// echoTerm is a terminal driver that measures keystroke echo.
type echoTerm struct {
	conn *websocket.Conn
}

func openEchoTerm(b *testing.B, url, token string) *echoTerm {
	b.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		b.Fatalf("open terminal %s: %v", url, err)
	}
	b.Cleanup(func() { conn.Close() })
	if err := conn.WriteMessage(websocket.BinaryMessage, driverHello(0)); err != nil {
		b.Fatal(err)
	}
	t := &echoTerm{conn: conn}
	// Wait for the prompt, then for the output to settle.
	var out strings.Builder
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for !strings.Contains(out.String(), "# ") {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			b.Fatalf("terminal: %v (%q)", err, out.String())
		}
		if len(msg) > 9 && msg[0] == 'o' {
			out.Write(msg[9:])
		}
	}
	for {
		_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, _, err := conn.ReadMessage(); err != nil {
			break
		}
	}
	// A read deadline that passed breaks gorilla's connection for reading; open a fresh one on the same shell.
	conn.Close()
	conn, _, err = websocket.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	// Only what comes from now on (the server resends its tail).
	if err := conn.WriteMessage(websocket.BinaryMessage, driverHello(1<<62)); err != nil {
		b.Fatal(err)
	}
	t.conn = conn
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for { // WELCOME, then whatever tail it resends
		kind, msg, err := conn.ReadMessage()
		if err != nil {
			b.Fatal(err)
		}
		if kind == websocket.BinaryMessage && msg[0] == 'W' {
			break
		}
	}
	return t
}

// key types one byte and returns how long its echo took to arrive.
func (t *echoTerm) key(b *testing.B, c byte) time.Duration {
	start := time.Now()
	if err := t.conn.WriteMessage(websocket.BinaryMessage, []byte{'i', c}); err != nil {
		b.Fatal(err)
	}
	_ = t.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, msg, err := t.conn.ReadMessage()
		if err != nil {
			b.Fatal(err)
		}
		if len(msg) > 9 && msg[0] == 'o' {
			return time.Since(start)
		}
	}
}

// BenchmarkDeployEcho: keystroke echo through Sandlot in the compose deployment (a container on the host's
// network and PID namespace) against Sandlot run on the host (make run's way), on the same node engine, keystrokes
// interleaved one by one between the two.
func BenchmarkDeployEcho(b *testing.B) {
	p := newComposeProject(b)
	p.mustCompose("up", "-d")
	p.waitReady(90 * time.Second)
	p.deployment = p.owner()
	host := startServer(b, "--data", b.TempDir())
	terms := map[string]*echoTerm{}
	for name, url := range map[string]string{"compose": p.url, "host": host.url} {
		c := apiClient{base: url, http: &http.Client{Timeout: 2 * time.Minute}}
		var sess struct{ ID, Token string }
		if status, _ := c.call(b, "POST", "/api/v1/sessions", "", `{"template":"1-node"}`, &sess); status != http.StatusCreated {
			b.Fatalf("%s: create session: %d", name, status)
		}
		b.Cleanup(func() { c.call(b, "DELETE", "/api/v1/sessions/"+sess.ID, sess.Token, "", nil) })
		terms[name] = openEchoTerm(b, "ws"+strings.TrimPrefix(url, "http")+"/api/v1/sessions/"+sess.ID+"/instances/node1/terminal?t=1", sess.Token)
	}
	b.ResetTimer()
	times := map[string][]time.Duration{}
	for range b.N {
		for i := range 1000 {
			c := byte('x')
			if i%2 == 1 {
				c = 0x7f // erase it again: the line stays short
			}
			for _, name := range []string{"compose", "host"} {
				times[name] = append(times[name], terms[name].key(b, c))
			}
		}
	}
	b.StopTimer()
	p50 := map[string]float64{}
	for name, ts := range times {
		slices.Sort(ts)
		p50[name] = float64(ts[len(ts)/2].Microseconds())
		b.ReportMetric(p50[name], name+"-p50-µs")
		b.ReportMetric(float64(ts[len(ts)*99/100].Microseconds()), name+"-p99-µs")
	}
	b.ReportMetric(p50["compose"]/p50["host"], "p50-ratio")
}
