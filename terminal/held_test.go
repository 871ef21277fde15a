package terminal

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sandlot/sandlot/internal/holder"
)

// A shell held by a holder (internal/holder, here on this host rather than in a node) outlives the terminal that
// served it, as it outlives a server: a second terminal over a new connection continues the same offsets, so a
// client that resumes gets exactly what it had not seen, and the shell still has its variable. Both ways a server
// goes: Release (SIGTERM: clients are told 1012) and the connection simply dropping (kill -9); and when another
// server takes the shell over, the first one's clients are told 1012 too (reconnect), not that the shell ended.
func TestHeldShellOutlivesTerminal(t *testing.T) {
	for _, how := range []string{"release", "drop", "taken"} {
		t.Run(how, func(t *testing.T) {
			socket := filepath.Join(t.TempDir(), "hold", "1.sock")
			served := make(chan error, 1)
			go func() {
				served <- holder.Serve(holder.Config{Socket: socket, Cmd: []string{"sh", "-i"},
					Env: append(os.Environ(), "PS1=$ ", "TERM=dumb"), Orphan: 30 * time.Second})
			}()
			attach := func() *holder.Conn {
				t.Helper()
				deadline := time.Now().Add(5 * time.Second)
				for {
					c, err := net.Dial("unix", socket)
					if err == nil {
						h, err := holder.Attach(c, 1<<20)
						if err != nil {
							t.Fatal(err)
						}
						return h
					}
					if time.Now().After(deadline) {
						t.Fatal(err)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			h1 := attach()
			term1 := New(h1, 80, 24, Options{})
			c := dial(t, serve(t, term1), RoleDriver, 0)
			c.input("SHL_V=7; echo set-$((SHL_V*6))\n")
			c.readUntil("set-42", 10*time.Second)
			c.readUntil("$ ", 5*time.Second)
			before := c.out.String()
			resume := c.next
			time.Sleep(50 * time.Millisecond) // the last acknowledgement reaches the holder
			var h2 *holder.Conn
			if how == "taken" {
				h2 = attach()
			}
			if how == "release" || how == "taken" {
				if how == "release" {
					term1.Release()
				}
				_ = c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
				for {
					if _, _, err := c.ws.ReadMessage(); err != nil {
						if !websocket.IsCloseError(err, websocket.CloseServiceRestart) {
							t.Fatalf("released terminal closed the client with %v, want 1012", err)
						}
						break
					}
				}
			} else {
				h1.Release() // the connection goes as a killed server's does: no word to the holder
				c.ws.Close()
			}

			if h2 == nil {
				h2 = attach()
			}
			defer h2.Close()
			term2 := New(h2, 80, 24, Options{})
			c2 := dial(t, serve(t, term2), RoleDriver, resume)
			if c2.first != resume || c2.lost {
				t.Fatalf("resumed at %d (lost %v), want %d", c2.first, c2.lost, resume)
			}
			c2.input("echo v=$SHL_V\n")
			c2.readUntil("v=7", 10*time.Second)
			if strings.Contains(c2.out.String(), "set-42") {
				t.Errorf("output repeated after the reattach: %q", c2.out.String())
			}
			// A fresh client (resume 0) gets the whole history, once.
			c3 := dial(t, serve(t, term2), RoleViewer, 0)
			c3.readUntil("v=7", 10*time.Second)
			if c3.first != 0 || !bytes.HasPrefix(c3.out.Bytes(), []byte(before)) || strings.Count(c3.out.String(), "set-42") != 1 {
				t.Errorf("history from %d: %q, want it to start with %q", c3.first, c3.out.String(), before)
			}
			term2.Close()
			select {
			case err := <-served:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("closing the terminal did not end the held shell")
			}
		})
	}
}
