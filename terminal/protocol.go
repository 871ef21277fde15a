// Package terminal bridges browser terminals to TTYs over WebSocket, with the protocol in PROTOCOL.md: resume after
// a reload from a sequence-numbered scrollback, one driver and any number of viewers, and flow control so that no
// amount of output makes the server's memory grow. It knows nothing about sessions: it is given something that
// can open a TTY.
package terminal

import (
	"encoding/binary"
	"fmt"
)

// Version is the protocol version this package speaks.
const Version = 1

// Message types, client to server.
const (
	msgHello  = 'h'
	msgInput  = 'i'
	msgResize = 'r'
	msgAck    = 'a'
	msgPing   = 'p'
)

// Message types, server to client.
const (
	msgWelcome = 'W'
	msgOutput  = 'o'
	msgLost    = 'l'
	msgSize    = 's'
	msgExit    = 'x'
	msgPong    = 'P'
)

// Roles of a client.
const (
	RoleDriver = 0
	RoleViewer = 1
)

// Size bounds a terminal may have.
const (
	MaxCols = 1000
	MaxRows = 500
)

// Close codes (see PROTOCOL.md).
const (
	CloseProtocol  = 4000
	CloseBadSize   = 4001
	CloseReadOnly  = 4002
	CloseTooSlow   = 4003
	CloseReplaced  = 4004
	maxPingPayload = 32
)

// protocolError is a client mistake that closes its connection with code.
type protocolError struct {
	code int
	msg  string
}

func (e *protocolError) Error() string { return e.msg }

func protoErr(code int, format string, args ...any) error {
	return &protocolError{code: code, msg: fmt.Sprintf(format, args...)}
}

// hello is a client's first message.
type hello struct {
	version, role uint8
	cols, rows    uint16
	resume        uint64
}

// clientMsg is any message from a client, decoded.
type clientMsg struct {
	kind       byte
	hello      hello
	data       []byte // input bytes, or ping payload
	cols, rows uint16
	offset     uint64
}

// decodeClient decodes one client message. It checks shapes and bounds, not roles.
func decodeClient(b []byte) (clientMsg, error) {
	if len(b) == 0 {
		return clientMsg{}, protoErr(CloseProtocol, "empty message")
	}
	m := clientMsg{kind: b[0]}
	p := b[1:]
	switch m.kind {
	case msgHello:
		if len(p) != 14 {
			return m, protoErr(CloseProtocol, "HELLO needs 14 bytes, got %d", len(p))
		}
		m.hello = hello{version: p[0], role: p[1], cols: binary.BigEndian.Uint16(p[2:]),
			rows: binary.BigEndian.Uint16(p[4:]), resume: binary.BigEndian.Uint64(p[6:])}
		if m.hello.version != Version {
			return m, protoErr(CloseProtocol, "protocol version %d; this server speaks %d", m.hello.version, Version)
		}
		if m.hello.role != RoleDriver && m.hello.role != RoleViewer {
			return m, protoErr(CloseProtocol, "unknown role %d", m.hello.role)
		}
		if err := checkSize(m.hello.cols, m.hello.rows); err != nil {
			return m, err
		}
	case msgInput:
		m.data = p
	case msgResize:
		if len(p) != 4 {
			return m, protoErr(CloseProtocol, "RESIZE needs 4 bytes, got %d", len(p))
		}
		m.cols, m.rows = binary.BigEndian.Uint16(p), binary.BigEndian.Uint16(p[2:])
		if err := checkSize(m.cols, m.rows); err != nil {
			return m, err
		}
	case msgAck:
		if len(p) != 8 {
			return m, protoErr(CloseProtocol, "ACK needs 8 bytes, got %d", len(p))
		}
		m.offset = binary.BigEndian.Uint64(p)
	case msgPing:
		if len(p) > maxPingPayload {
			return m, protoErr(CloseProtocol, "PING carries at most %d bytes", maxPingPayload)
		}
		m.data = p
	default:
		return m, protoErr(CloseProtocol, "unknown message type %q", m.kind)
	}
	return m, nil
}

func checkSize(cols, rows uint16) error {
	if cols < 1 || cols > MaxCols || rows < 1 || rows > MaxRows {
		return protoErr(CloseBadSize, "size %dx%d out of range (1..%d columns, 1..%d rows)", cols, rows, MaxCols, MaxRows)
	}
	return nil
}

// Encoders of server messages.

func encodeWelcome(role uint8, first uint64, lost bool, cols, rows uint16) []byte {
	b := []byte{msgWelcome, Version, role}
	b = binary.BigEndian.AppendUint64(b, first)
	b = append(b, boolByte(lost))
	b = binary.BigEndian.AppendUint16(b, cols)
	return binary.BigEndian.AppendUint16(b, rows)
}

func encodeLost(offset uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{msgLost}, offset)
}

func encodeSize(cols, rows uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16([]byte{msgSize}, cols), rows)
}

func encodeExit(code int32) []byte {
	return binary.BigEndian.AppendUint32([]byte{msgExit}, uint32(code))
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}
