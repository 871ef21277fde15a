package terminal

import (
	"errors"
	"testing"
)

// The decoder of client messages never panics, and whatever it accepts is within the protocol's bounds.
func FuzzDecodeClient(f *testing.F) {
	f.Add([]byte{msgHello, Version, RoleDriver, 0, 80, 0, 24, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{msgInput, 'l', 's', '\n'})
	f.Add([]byte{msgResize, 0, 0, 0, 0})
	f.Add([]byte{msgAck, 0, 0, 0, 0, 0, 0, 1, 0})
	f.Add([]byte{msgPing, 1, 2, 3})
	f.Add([]byte{})
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeClient(b)
		if err != nil {
			var pe *protocolError
			if !errors.As(err, &pe) || (pe.code != CloseProtocol && pe.code != CloseBadSize) {
				t.Fatalf("error without a close code: %v", err)
			}
			return
		}
		switch m.kind {
		case msgHello:
			if m.hello.version != Version || m.hello.role > RoleViewer || checkSize(m.hello.cols, m.hello.rows) != nil {
				t.Fatalf("accepted hello %+v", m.hello)
			}
		case msgResize:
			if checkSize(m.cols, m.rows) != nil {
				t.Fatalf("accepted resize %dx%d", m.cols, m.rows)
			}
		case msgPing:
			if len(m.data) > maxPingPayload {
				t.Fatal("accepted a long ping")
			}
		case msgInput, msgAck:
		default:
			t.Fatalf("accepted type %q", m.kind)
		}
	})
}
