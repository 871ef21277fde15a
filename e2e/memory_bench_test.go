package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// BenchmarkExecMemory: 20 commands at once, each printing 2 MiB (random bytes, so the answers are base64), in five
// sessions of one node each (a session runs at most 4 at once), through the real server; reports the server's
// peak resident memory (VmHWM) and what it held before. Target: under 150 MB.
func BenchmarkExecMemory(b *testing.B) {
	needEngine(b)
	srv := startServer(b, "--data", b.TempDir(), "--admin-token", admin, "--max-sessions-per-client", "10")
	type sess struct{ ID, Token string }
	var sessions []sess
	for range 5 {
		var s sess
		post(b, srv.url+"/api/v1/sessions", "", `{"template":"1-node"}`, http.StatusCreated, &s)
		sessions = append(sessions, s)
	}
	defer func() {
		for _, s := range sessions {
			req, _ := http.NewRequest("DELETE", srv.url+"/api/v1/sessions/"+s.ID, nil)
			req.Header.Set("Authorization", "Bearer "+s.Token)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}()
	before := memoryKiB(b, srv.cmd.Process.Pid, "VmRSS")
	for b.Loop() {
		var wg sync.WaitGroup
		for _, s := range sessions {
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var out struct {
						Stdout    string `json:"stdout"`
						Encoding  string `json:"encoding"`
						Truncated bool   `json:"truncated"`
					}
					post(b, srv.url+"/api/v1/sessions/"+s.ID+"/instances/node1/exec", s.Token,
						`{"cmd":["head","-c","2097152","/dev/urandom"]}`, http.StatusOK, &out)
					if out.Encoding != "base64" || !out.Truncated || len(out.Stdout) < 1<<20 {
						b.Errorf("answer: encoding %q, truncated %v, %d bytes", out.Encoding, out.Truncated, len(out.Stdout))
					}
				}()
			}
		}
		wg.Wait()
	}
	peak := memoryKiB(b, srv.cmd.Process.Pid, "VmHWM")
	b.ReportMetric(float64(before)/1024, "MiB-rss-before")
	b.ReportMetric(float64(peak)/1024, "MiB-peak-rss")
}

// post sends a JSON body (with the token, if any) and decodes the answer, which must have status want.
func post(b testing.TB, url, token, body string, want int, out any) {
	b.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		b.Fatalf("POST %s: %d %s", url, resp.StatusCode, data)
	}
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(out); err != nil {
		b.Fatal(err)
	}
}

// memoryKiB reads a field (VmRSS, VmHWM) of a process's /proc status, in KiB.
func memoryKiB(b testing.TB, pid int, field string) int64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
