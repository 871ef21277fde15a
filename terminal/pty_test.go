package terminal

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// A command that ignores SIGHUP (as everything started under nohup does, or a shell trapping HUP) is ended by
// closing its terminal all the same, with what it started in its process group, and Close does not wait forever.
func TestCloseEndsCommandIgnoringHangup(t *testing.T) {
	p, err := StartLocal("sh", "-c", `trap "" HUP; sleep 1000 & echo "PIDS $$ $! END"; wait`)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	buf := make([]byte, 256)
	for !bytes.Contains(out.Bytes(), []byte(" END")) {
		n, err := p.Read(buf)
		if err != nil {
			t.Fatalf("%v; got %q", err, out.Bytes())
		}
		out.Write(buf[:n])
	}
	var shell, sleep int
	if _, err := fmt.Sscanf(out.String()[strings.Index(out.String(), "PIDS"):], "PIDS %d %d", &shell, &sleep); err != nil {
		t.Fatalf("%q: %v", out.Bytes(), err)
	}

	term := New(p, 80, 24, Options{})
	closed := make(chan struct{})
	go func() { term.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	for _, pid := range []int{shell, sleep} {
		for deadline := time.Now().Add(10 * time.Second); alive(pid); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d is still there after Close", pid)
			}
		}
	}
}

// alive reports whether process pid exists and is not a zombie (one that ended, waiting for its parent).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}

// Resizing a PTY while it closes is safe (go test -race): a terminal resizes in the background, and may be closed
// meanwhile.
func TestResizeWhileClosing(t *testing.T) {
	for range 50 {
		p, err := StartLocal("cat")
		if err != nil {
			t.Fatal(err)
		}
		resized := make(chan struct{})
		go func() {
			defer close(resized)
			for range 20 {
				_ = p.Resize(100, 30)
			}
		}()
		p.Close()
		<-resized
	}
}
