package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/sandlot/sandlot/internal/testengine"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/redis/go-redis/v9"
)

const admin = "e2e-admin-token-0123456789"

// kill -9 of the server in the middle of a template setup, then a restart on the same data directory (its
// embedded Redis included): the session ends with reason error, and none of its containers or networks remain.
func TestKillDuringSetup(t *testing.T) {
	needEngine(t)
	data := t.TempDir()
	first := startServer(t, "--data", data, "--admin-token", admin)

	answered := make(chan string, 1)
	go func() {
		resp, err := http.Post(first.url+"/api/v1/sessions", "application/json", strings.NewReader(`{"template":"swarm-3m2w"}`))
		if err != nil {
			answered <- err.Error()
			return
		}
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		resp.Body.Close()
		answered <- fmt.Sprintf("%d %s", resp.StatusCode, b.String())
	}()
	rdb := redis.NewClient(&redis.Options{Network: "unix", Addr: filepath.Join(data, "redis", "redis.sock")})
	defer rdb.Close()
	ctx := context.Background()
	var id string
	waitFor(t, 60*time.Second, "two nodes of the template made", func() bool {
		select {
		case a := <-answered:
			t.Fatalf("the setup was answered before the kill: %s", a)
		default:
		}
		ids, _ := rdb.SMembers(ctx, "sandlot:live").Result()
		if len(ids) == 1 {
			id = ids[0]
			return countLabelled(t, id) >= 2
		}
		return false
	})
	rdb.Close()
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.done

	second := startServer(t, "--data", data, "--admin-token", admin)
	var sess struct {
		State  string `json:"state"`
		Reason string `json:"end_reason"`
	}
	waitFor(t, 30*time.Second, "the session ended", func() bool {
		get(t, second.url+"/api/v1/sessions/"+id, &sess)
		return sess.State == "ended" || sess.State == "active"
	})
	if sess.State != "ended" || sess.Reason != "error" {
		t.Fatalf("after the crash the session is %s (%s), want ended for error", sess.State, sess.Reason)
	}
	waitFor(t, 20*time.Second, "nothing of the session left in Docker", func() bool { return countLabelled(t, id) == 0 })

	// A clean stop: SIGTERM ends the server (and its Redis) with status 0.
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-second.done:
		if second.err != nil {
			t.Fatalf("server stopped with %v", second.err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("server did not stop within 40 s of SIGTERM")
	}
}

func get(t *testing.T, url string, out any) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, buf.String())
	}
	if err := json.Unmarshal(buf.Bytes(), out); err != nil {
		t.Fatal(err)
	}
}

// countLabelled counts what the engine holds of a session; an engine that does not answer fails the test.
func countLabelled(t testing.TB, id string) int {
	t.Helper()
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer docker.Close()
	left, err := testengine.Labelled(context.Background(), docker, id)
	if err != nil {
		t.Fatal(err)
	}
	return len(left)
}

// A leak check must not read an engine that does not answer as "nothing left behind".
func TestLeakCheckNeedsAnAnswer(t *testing.T) {
	docker, err := client.NewClientWithOpts(client.WithHost("unix:///nonexistent/engine.sock"), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer docker.Close()
	if left, err := testengine.Labelled(context.Background(), docker, "s1"); err == nil {
		t.Fatalf("an engine that does not answer holds %v of the session, and no error", left)
	}
}

func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
