package terminal

import (
	"errors"
	"testing"
	"time"
)

// What the server types reaches the shell with no driver connected, and a client that connects later sees it and
// its output; a closed terminal refuses it.
func TestType(t *testing.T) {
	term, url := serveLocal(t, Options{}, "bash", "--norc", "--noprofile", "-i")
	if err := term.Type([]byte("echo typed-$((6*7))\n")); err != nil {
		t.Fatal(err)
	}
	viewer := dial(t, url, RoleViewer, 0)
	viewer.readUntil("typed-42", 10*time.Second)
	term.Close()
	if err := term.Type([]byte("echo late\n")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Type after Close: %v, want ErrClosed", err)
	}
}
