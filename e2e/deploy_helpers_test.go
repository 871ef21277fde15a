package e2e

import (
	"bytes"
	bin "encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// apiClient calls one Sandlot's API with its own HTTP client (TLS settings, cookies).
type apiClient struct {
	base string
	http *http.Client
}

// call sends a JSON request (body may be empty) and decodes a JSON answer into out (when not nil); it returns the
// answer's status and headers.
func (c apiClient) call(t testing.TB, method, path, token, body string, out any) (int, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
	return resp.StatusCode, resp.Header
}

// exec runs cmd in a node through the API, or reports why it could not.
func (c apiClient) exec(t testing.TB, id, token, node string, cmd ...string) (execResult, error) {
	t.Helper()
	body, _ := json.Marshal(map[string][]string{"cmd": cmd})
	req, _ := http.NewRequest("POST", c.base+"/api/v1/sessions/"+id+"/instances/"+node+"/exec", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.http.Do(req)
	if err != nil {
		return execResult{}, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return execResult{}, fmt.Errorf("exec %q: %s %s", cmd, resp.Status, data)
	}
	var res execResult
	return res, json.Unmarshal(data, &res)
}

// driverHello is a terminal's HELLO (terminal/PROTOCOL.md) for a driver of 100x30 that needs output from resume on.
func driverHello(resume uint64) []byte {
	hello := []byte{'h', 1, 0}
	hello = bin.BigEndian.AppendUint16(hello, 100)
	hello = bin.BigEndian.AppendUint16(hello, 30)
	return bin.BigEndian.AppendUint64(hello, resume)
}

// terminalSays opens a terminal (terminal/PROTOCOL.md) as its driver with dialer and header, types line, and
// waits until the output matches want; it returns the output seen.
func terminalSays(t testing.TB, dialer *websocket.Dialer, url string, header http.Header, line string, want *regexp.Regexp) string {
	t.Helper()
	conn, resp, err := dialer.Dial(url, header)
	if err != nil {
		status := ""
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("open terminal %s: %v %s", url, err, status)
	}
	defer conn.Close()
	if err := conn.WriteMessage(websocket.BinaryMessage, driverHello(0)); err != nil {
		t.Fatal(err)
	}
	if err := conn.WriteMessage(websocket.BinaryMessage, append([]byte{'i'}, line+"\r"...)); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	deadline := time.Now().Add(30 * time.Second)
	_ = conn.SetReadDeadline(deadline)
	for !want.MatchString(out.String()) {
		kind, msg, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("terminal: %v; output so far: %q", err, out.String())
		}
		if kind == websocket.BinaryMessage && len(msg) > 9 && msg[0] == 'o' {
			out.Write(msg[9:])
		}
	}
	return out.String()
}
