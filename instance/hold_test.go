package instance

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sandlot/sandlot/internal/holder"
	"github.com/sandlot/sandlot/internal/testengine"
)

// heldSession is a session (its id starts with shl) with one node, on a driver that holds shells.
func heldSession(t testing.TB) (*Driver, string) {
	t.Helper()
	return heldSessionOn(t, nil)
}

// heldSessionOn is heldSession on a driver that tune adjusts.
func heldSessionOn(t testing.TB, tune func(*Config)) (*Driver, string) {
	t.Helper()
	bin := testengine.Holder(t)
	d := newDriver(t, NetworkBridge, func(c *Config) {
		c.Holder = bin
		if tune != nil {
			tune(c)
		}
	})
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	session := "shl" + hex.EncodeToString(b)
	t.Cleanup(func() {
		if err := d.DeleteSession(testContext(t), session); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if _, err := d.CreateNetwork(testContext(t), session); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Create(testContext(t), session, Spec{Name: "node1"}); err != nil {
		t.Fatal(err)
	}
	return d, session
}

// heldReader collects a held shell's output, from its replay on.
type heldReader struct {
	t   *testing.T
	h   *holder.Conn
	out bytes.Buffer
}

func newHeldReader(t *testing.T, h *holder.Conn) *heldReader {
	_, kept, _ := h.Replay()
	r := &heldReader{t: t, h: h}
	r.out.Write(kept)
	return r
}

// until reads until the output contains want; it returns the read error that came first, if any.
func (r *heldReader) until(want string) error {
	r.t.Helper()
	buf := make([]byte, 4096)
	stop := time.AfterFunc(20*time.Second, func() { r.h.Release() })
	defer stop.Stop()
	for !strings.Contains(r.out.String(), want) {
		n, err := r.h.Read(buf)
		r.out.Write(buf[:n])
		if err != nil {
			return err
		}
	}
	return nil
}

// holdSlot1 holds node1's shell in slot 1 and reads it from its replay on.
func holdSlot1(t *testing.T, d *Driver, session string) (*holder.Conn, *heldReader) {
	t.Helper()
	h, _, err := d.HoldTTY(testContext(t), session, "node1", HoldOptions{Slot: 1})
	if err != nil {
		t.Fatal(err)
	}
	return h, newHeldReader(t, h)
}

func (r *heldReader) mustUntil(want string) {
	r.t.Helper()
	if err := r.until(want); err != nil {
		r.t.Fatalf("waiting for %q: %v; got %q", want, err, r.out.String())
	}
}

// A held shell outlives the driver that opened it: another driver (a restarted server) reattaches to the same
// shell, its whole output from offset 0 kept and nothing twice, and the variable set before is still set. Closing
// ends the shell and its holder.
func TestHeldShellReattach(t *testing.T) {
	d, session := heldSession(t)
	testReattach(t, d, session, nil)
}

// The same in the caps isolation (SANDLOT_CAPS_ENGINE, no user namespace): the copied holder and its socket work
// there too.
func TestHeldShellCaps(t *testing.T) {
	engine := os.Getenv("SANDLOT_CAPS_ENGINE")
	if engine == "" {
		if os.Getenv("SANDLOT_REQUIRE_DOCKER") == "1" {
			t.Fatal("SANDLOT_CAPS_ENGINE names no engine for the caps isolation (make test sets it)")
		}
		t.Skip("SANDLOT_CAPS_ENGINE names no engine for the caps isolation")
	}
	tune := func(c *Config) {
		c.Engine, c.Isolation = engine, IsolationCaps
		c.SubnetPool = netip.MustParsePrefix("198.19.192.0/18") // apart from the node engine's pool
	}
	d, session := heldSessionOn(t, tune)
	t.Cleanup(func() { removeFirewall(t, d) })
	testReattach(t, d, session, tune)
}

// testReattach holds a shell, lets go of it, and reattaches from a second driver (made with tune too).
func testReattach(t *testing.T, d *Driver, session string, tune func(*Config)) {
	ctx := testContext(t)
	h, reattached, err := d.HoldTTY(ctx, session, "node1", HoldOptions{Slot: 1})
	if err != nil || reattached {
		t.Fatalf("hold: reattached %v, %v", reattached, err)
	}
	r := newHeldReader(t, h)
	r.mustUntil("[node1 ")
	if _, err := h.Write([]byte("export SHL_V=42; echo set-$((SHL_V+1))\n")); err != nil {
		t.Fatal(err)
	}
	r.mustUntil("set-43")
	h.Ack(uint64(r.out.Len()))
	before := r.out.String()
	time.Sleep(50 * time.Millisecond)
	h.Release() // as a server that stops (or is killed: the connection just goes)

	d2 := newDriver(t, NetworkBridge, func(c *Config) {
		c.Holder = d.cfg.Holder
		if tune != nil {
			tune(c)
		}
	})
	h2, reattached, err := d2.HoldTTY(ctx, session, "node1", HoldOptions{Slot: 1})
	if err != nil || !reattached {
		t.Fatalf("reattach: reattached %v, %v", reattached, err)
	}
	first, kept, acked := h2.Replay()
	if first != 0 || !strings.HasPrefix(string(kept), before) || acked != uint64(len(before)) {
		t.Fatalf("replay from %d (acked %d): %q, want it to start with %q", first, acked, kept, before)
	}
	r2 := newHeldReader(t, h2)
	if _, err := h2.Write([]byte("echo v=$SHL_V\n")); err != nil {
		t.Fatal(err)
	}
	r2.mustUntil("v=42")
	if strings.Count(r2.out.String(), "set-43") != 1 {
		t.Errorf("output repeated: %q", r2.out.String())
	}
	holders := func() int {
		n := 0
		for _, p := range nodeProcs(t, d, session, "node1") {
			if strings.HasPrefix(p.args, d.holder.path+" ") {
				n++
			}
		}
		return n
	}
	if n := holders(); n != 1 {
		t.Fatalf("%d holders running, want 1: %v", n, nodeProcs(t, d, session, "node1"))
	}
	h2.Close()
	eventually(t, 10*time.Second, want(0, "holders", holders))
	eventually(t, 10*time.Second, want(0, "shells", func() int { return countProcs(t, d, session, "node1", "bash -l") }))
}

// A learner is root in the node and may kill their holder: the terminal ends (as a holder that went, -1) and the
// next HoldTTY starts a fresh shell in the slot. A holder's socket swapped for a symlink to a host socket is
// refused, and garbage on a socket is refused; neither touches anything outside the node.
func TestHeldShellHostileNode(t *testing.T) {
	d, session := heldSession(t)
	ctx := testContext(t)
	h, r := holdSlot1(t, d, session)
	h.Write([]byte("export SHL_V=1; echo ready\n"))
	r.mustUntil("ready")
	sh(t, d, session, "node1", "pkill -KILL -f /usr/local/lib/sandlot/holde[r]-")
	err := r.until("never")
	var exit *holder.ShellExit
	if !errors.As(err, &exit) || exit.Code != -1 {
		t.Fatalf("after the holder was killed: %v", err)
	}
	h2, reattached, err := d.HoldTTY(ctx, session, "node1", HoldOptions{Slot: 1})
	if err != nil || reattached {
		t.Fatalf("a new shell after the kill: reattached %v, %v", reattached, err)
	}
	defer h2.Close()
	r2 := newHeldReader(t, h2)
	h2.Write([]byte("echo \"v=[$SHL_V]\"\n"))
	r2.mustUntil("v=[]")

	// A symlink where a holder's socket would be, to a socket of the host's (the node engine's, or Docker's).
	sh(t, d, session, "node1", "mkdir -p /run/sandlot/hold && ln -sf /run/sandlot/engine.sock /run/sandlot/hold/3.sock && "+
		"ln -sf /var/run/docker.sock /run/sandlot/hold/4.sock")
	for _, slot := range []int{3, 4} {
		if _, _, err := d.HoldTTY(ctx, session, "node1", HoldOptions{Slot: slot}); err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Errorf("slot %d behind a symlink to the host: %v", slot, err)
		}
	}
	// A directory symlink on the way resolves inside the node: /run/sandlot/hold -> / finds no socket of the host's.
	sh(t, d, session, "node1", "rm -rf /run/sandlot/hold && ln -s /run/docker /run/sandlot/hold && mkdir -p /run/docker")
	if h5, _, err := d.HoldTTY(ctx, session, "node1", HoldOptions{Slot: 5}); err != nil {
		t.Errorf("slot 5 behind a directory symlink in the node: %v", err)
	} else {
		h5.Close()
	}
	sh(t, d, session, "node1", "rm -f /run/sandlot/hold && mkdir -p /run/sandlot/hold")

	// Garbage on a socket: a listener that answers with an endless stream of junk.
	d.Exec(ctx, session, "node1", []string{"sh", "-c",
		"setsid socat UNIX-LISTEN:/run/sandlot/hold/6.sock,fork SYSTEM:'yes junk' >/dev/null 2>&1 &"}, ExecOptions{})
	eventually(t, 10*time.Second, func() error {
		if code, _ := exitCode(t, d, session, "node1", "test -S /run/sandlot/hold/6.sock"); code != 0 {
			return errors.New("no socket yet")
		}
		return nil
	})
	start := time.Now()
	if _, _, err := d.HoldTTY(ctx, session, "node1", HoldOptions{Slot: 6}); err == nil || !errors.Is(err, holder.ErrProtocol) {
		t.Errorf("garbage on the socket: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("refused only after %s", time.Since(start))
	}
}

// A shell that floods its terminal while no server is connected is paused by its holder, not buffered: the
// holder's memory stays small, and the output nobody acknowledged is all there for the next server, which then
// takes the rest to the end, every byte once.
func TestHeldShellPausesWithoutServer(t *testing.T) {
	d, session := heldSession(t)
	ctx := testContext(t)
	h, r := holdSlot1(t, d, session)
	r.mustUntil("[node1 ")
	const total = 20 << 20
	h.Write([]byte("stty -echo; head -c 20971520 /dev/zero | tr '\\0' z; echo; echo FLOOD-$((6*7))\n"))
	r.mustUntil("zzzz")
	acked := uint64(r.out.Len())
	h.Ack(acked)
	time.Sleep(50 * time.Millisecond)
	h.Release()
	time.Sleep(2 * time.Second) // the shell prints into a holder nobody reads

	rss := sh(t, d, session, "node1", `p=$(pgrep -f '/usr/local/lib/sandlot/holde[r]-' | head -1); awk '/^Rss:/ {print $2}' /proc/$p/smaps_rollup`)
	if kib, _ := strconv.Atoi(rss); kib == 0 || kib > 16<<10 {
		t.Errorf("the holder of a flooding shell uses %s KiB", rss)
	}
	h2, reattached, err := d.HoldTTY(ctx, session, "node1", HoldOptions{Slot: 1})
	if err != nil || !reattached {
		t.Fatalf("reattach: %v %v", reattached, err)
	}
	defer h2.Close()
	first, kept, _ := h2.Replay()
	end := first + uint64(len(kept))
	if first > acked || end-acked > 1<<20 {
		t.Fatalf("kept [%d, %d) after an acknowledgement at %d: unacknowledged output dropped, or more than 1 MiB of it", first, end, acked)
	}
	// Take the rest, acknowledging as a page does: every z arrives once.
	zs := strings.Count(r.out.String(), "z") + strings.Count(string(kept[min(uint64(len(kept)), uint64(r.out.Len())-first):]), "z")
	buf := make([]byte, 64<<10)
	next := end
	h2.Ack(next)    // the replay is consumed: the holder reads on
	var tail []byte // the last bytes read, across reads
	stop := time.AfterFunc(2*time.Minute, func() { h2.Release() })
	defer stop.Stop()
	for !strings.Contains(string(tail), "FLOOD-42") {
		n, err := h2.Read(buf)
		if err != nil {
			t.Fatalf("after %d bytes of the flood (ending %q, at %d): %v", zs, tail, next, err)
		}
		zs += strings.Count(string(buf[:n]), "z")
		next += uint64(n)
		h2.Ack(next)
		tail = append(tail, buf[:n]...)
		tail = tail[max(0, len(tail)-4096):]
	}
	if zs -= 2; zs != total { // the command line's echo has two: /dev/zero, tr's z
		t.Fatalf("%d of %d bytes of the flood arrived", zs, total)
	}
}
