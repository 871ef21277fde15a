// Package holder keeps a shell and its recent output in a node, so that the shell outlives the Sandlot server that
// opened it. The holder (cmd/sandlot-holder, copied into the node) owns the shell's pseudo-terminal and a bounded
// ring of its output with byte offsets, and serves one Sandlot at a time on a unix socket in the node; a Sandlot
// that restarts connects again and carries on from the same offsets (see PROTOCOL.md in this directory).
//
// The holder runs where a learner is root: anything it says is untrusted. Attach bounds every frame, checks every
// offset and times out every wait, so a holder that lies, stalls or talks nonsense ends only its own terminal.
package holder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Version is the version of the protocol between Sandlot and a holder.
const Version = 1

// Frame types, Sandlot to holder.
const (
	frameHello = 'h' // version u8
	frameInput = 'd' // keystrokes
	frameSize  = 'w' // cols u16, rows u16
	frameAck   = 'a' // offset u64: the driver has consumed output up to here
	frameEnd   = 'e' // hang the shell up and exit
)

// Frame types, holder to Sandlot.
const (
	frameWelcome = 'W' // version u8, first u64, end u64, acked u64, cols u16, rows u16
	frameOutput  = 'o' // output bytes, continuing where the previous ended
	frameExit    = 'x' // code i32: the shell ended
	frameTaken   = 'r' // another Sandlot took the shell over: this connection ends, the shell does not
)

const (
	headerLen = 5 // type u8, payload length u32
	// MaxPayload is the largest payload either side accepts; a longer frame is a protocol error.
	MaxPayload = 64 << 10
	// outputChunk is the most output the holder puts in one frame.
	outputChunk = 32 << 10
	welcomeLen  = 1 + 8 + 8 + 8 + 2 + 2
	// maxOffset bounds offsets a holder may claim: far beyond any real shell's output (2^62 bytes), and far from
	// the point where sums of offsets would wrap.
	maxOffset = 1 << 62
)

// ErrProtocol is the error of a frame that breaks the protocol.
var ErrProtocol = errors.New("holder protocol error")

// header encodes a frame header.
func header(typ byte, n int) [headerLen]byte {
	var h [headerLen]byte
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], uint32(n))
	return h
}

// readFrame reads one frame into buf and returns its type and payload. A payload larger than buf (at most
// MaxPayload) is a protocol error.
func readFrame(r io.Reader, buf []byte) (byte, []byte, error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > uint32(min(len(buf), MaxPayload)) {
		return 0, nil, fmt.Errorf("%w: a frame of %d bytes (at most %d)", ErrProtocol, n, min(len(buf), MaxPayload))
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return h[0], buf[:n], nil
}

// welcome is what a holder says first.
type welcome struct {
	first, end, acked uint64
	cols, rows        uint16
}

func (w welcome) encode() []byte {
	b := make([]byte, welcomeLen)
	b[0] = Version
	binary.BigEndian.PutUint64(b[1:], w.first)
	binary.BigEndian.PutUint64(b[9:], w.end)
	binary.BigEndian.PutUint64(b[17:], w.acked)
	binary.BigEndian.PutUint16(b[25:], w.cols)
	binary.BigEndian.PutUint16(b[27:], w.rows)
	return b
}

// parseWelcome decodes and checks a welcome: a known version, first <= end, offsets far from wrapping, the kept
// output within maxKept, and acked clamped into [first, end].
func parseWelcome(p []byte, maxKept int) (welcome, error) {
	if len(p) != welcomeLen {
		return welcome{}, fmt.Errorf("%w: a welcome of %d bytes", ErrProtocol, len(p))
	}
	if p[0] != Version {
		return welcome{}, fmt.Errorf("%w: version %d (this Sandlot speaks %d)", ErrProtocol, p[0], Version)
	}
	w := welcome{first: binary.BigEndian.Uint64(p[1:]), end: binary.BigEndian.Uint64(p[9:]),
		acked: binary.BigEndian.Uint64(p[17:]), cols: binary.BigEndian.Uint16(p[25:]), rows: binary.BigEndian.Uint16(p[27:])}
	switch {
	case w.end > maxOffset || w.first > w.end:
		return welcome{}, fmt.Errorf("%w: output from %d to %d", ErrProtocol, w.first, w.end)
	case w.end-w.first > uint64(maxKept):
		return welcome{}, fmt.Errorf("%w: %d bytes kept (at most %d)", ErrProtocol, w.end-w.first, maxKept)
	}
	w.acked = min(max(w.acked, w.first), w.end)
	return w, nil
}
