package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// Terminal survival in the browser: a page's shell outlives a restart of the server (kill -9, and SIGTERM). The
// page reconnects by itself; a line typed while the server is down is sent once it is back; the shell still has
// its variable, and what it printed before shows once, with no "a new shell" notice.
func TestBrowserShellSurvivesRestart(t *testing.T) {
	needEngine(t)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			data, addr := t.TempDir(), freeAddr(t)
			args := []string{"--data", data, "--admin-token", admin}
			srv := startServerAt(t, addr, args...)
			p := newPage(t, srv.url)
			p.start("1-node")
			id := sessionIDOf(p)
			p.waitNodes(1, 60*time.Second)
			p.pick("node1")
			p.waitPrompt("node1", 1)
			p.typeLine("export SHL_B=7; echo set-$((SHL_B*6))")
			p.waitScreen("node1", 1, `(?m)^set-42$`, 10*time.Second)

			if err := srv.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			<-srv.done
			p.typeLine("echo v=$SHL_B") // kept by the page until it is connected again
			srv2 := startServerAt(t, addr, args...)
			t.Cleanup(func() { deleteSession(t, srv2.url, id) })
			s := p.waitScreen("node1", 1, `(?m)^v=7$`, 30*time.Second)
			if n := strings.Count(s, "set-42\n"); n != 1 {
				t.Errorf("the output before the restart shows %d times, want once:\n%s", n, s)
			}
			if strings.Contains(s, "a new shell") {
				t.Errorf("the page says the shell is new:\n%s", s)
			}
		})
	}
}
