package api

import (
	"bytes"
	"encoding/binary"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sandlot/sandlot/internal/redistest"
)

// wsTerm is a minimal client of the terminal protocol.
type wsTerm struct {
	t     *testing.T
	ws    *websocket.Conn
	first uint64
	next  uint64
	out   bytes.Buffer
}

func (s *server) openTerminal(t *testing.T, path string, header http.Header, role uint8, resume uint64) (*wsTerm, *http.Response, error) {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.URL, "http")+path, header)
	if err != nil {
		return nil, resp, err
	}
	c := &wsTerm{t: t, ws: ws}
	hello := []byte{'h', 1, role}
	hello = binary.BigEndian.AppendUint16(hello, 100)
	hello = binary.BigEndian.AppendUint16(hello, 30)
	hello = binary.BigEndian.AppendUint64(hello, resume)
	if err := ws.WriteMessage(websocket.BinaryMessage, hello); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, b, err := ws.ReadMessage()
	if err != nil {
		return c, resp, err
	}
	if b[0] != 'W' {
		t.Fatalf("welcome: %q", b)
	}
	c.first = binary.BigEndian.Uint64(b[3:])
	c.next = c.first
	return c, resp, nil
}

func (c *wsTerm) typeLine(s string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, append([]byte{'i'}, s+"\n"...)); err != nil {
		c.t.Fatal(err)
	}
}

// readUntil reads output until it contains want; it returns the close error if the server closes first.
func (c *wsTerm) readUntil(want string) error {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !bytes.Contains(c.out.Bytes(), []byte(want)) {
		_ = c.ws.SetReadDeadline(deadline)
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			return err
		}
		if b[0] == 'o' {
			c.out.Write(b[9:])
			c.next = binary.BigEndian.Uint64(b[1:]) + uint64(len(b)-9)
			_ = c.ws.WriteMessage(websocket.BinaryMessage, binary.BigEndian.AppendUint64([]byte{'a'}, c.next))
		}
	}
	return nil
}

// A node's terminal over the API: a login shell on the node, resumable, one shell per terminal number; a viewer
// link only watches; other sessions' tokens and foreign origins are refused; the session's end closes it.
func TestNodeTerminal(t *testing.T) {
	s := newServer(t, redistest.New(t), serverOpts{})
	c := s.create(nil)
	s.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+c.ID+"/instances", c.Token, nil, nil)
	path := "/api/v1/sessions/" + c.ID + "/instances/node1/terminal"
	auth := http.Header{"Authorization": {"Bearer " + c.Token}}

	d, _, err := s.openTerminal(t, path, auth, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	d.typeLine("export X=42; echo on-$(hostname)-$((6*7))")
	if err := d.readUntil("on-node1-42"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.out.String(), "[node1 ") {
		t.Errorf("no node prompt in %q", d.out.String())
	}
	resume := d.next
	d.ws.Close()

	d2, _, err := s.openTerminal(t, path, auth, 0, resume)
	if err != nil || d2.first != resume {
		t.Fatalf("resume at %d: first %d, %v", resume, d2.first, err)
	}
	d2.typeLine("echo again-$X")
	if err := d2.readUntil("again-42"); err != nil {
		t.Fatal(err)
	}

	other, _, err := s.openTerminal(t, path+"?t=2", auth, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	other.typeLine("echo second-[$X]-$((1+1))")
	if err := other.readUntil("second-[]-2"); err != nil {
		t.Fatal(err)
	}

	var link viewerLink
	s.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+c.ID+"/viewer", c.Token, nil, &link)
	v, _, err := s.openTerminal(t, path+"?token="+link.Token, nil, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.readUntil("again-42"); err != nil {
		t.Fatalf("the viewer does not see the driver's shell: %v", err)
	}
	if _, _, err := s.openTerminal(t, path+"?token="+link.Token, nil, 0, 0); !websocket.IsCloseError(err, 4002) {
		t.Fatalf("a viewer link asking to drive: %v", err)
	}
	s.mustCall(http.StatusForbidden, "POST", "/api/v1/sessions/"+c.ID+"/instances", link.Token, nil, nil)

	b := s.create(nil)
	if _, resp, err := s.openTerminal(t, path, http.Header{"Authorization": {"Bearer " + b.Token}}, 0, 0); err == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("another session's token: %v", err)
	}
	foreign := http.Header{"Authorization": {"Bearer " + c.Token}, "Origin": {"https://evil.example"}}
	if _, resp, err := s.openTerminal(t, path, foreign, 0, 0); err == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a foreign origin: %v", err)
	}
	if _, resp, err := s.openTerminal(t, path+"?t=9", auth, 0, 0); err == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("terminal 9: %v", err)
	}

	s.mustCall(http.StatusOK, "DELETE", "/api/v1/sessions/"+c.ID, c.Token, nil, nil)
	if err := d2.readUntil("never printed"); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("after the session ended the terminal got %v", err)
	}
}
