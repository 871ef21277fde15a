package instance

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// Every process Sandlot starts in a node (a shell, a port watcher, a command) runs under the node's supervisor,
// sandlot-run (ops/node/rootfs/usr/local/sbin/sandlot-run, docs/decisions/0017-processes-in-nodes.md), in a
// docker exec whose stdin is attached. The engine never ends an exec, but it does close the exec's stdin when the
// attach connection closes; the supervisor takes that as Sandlot letting go, and ends the command's whole session
// (SIGHUP, SIGTERM, SIGKILL after 2 s). So closing the connection is how Sandlot ends what it started, whatever the
// reason: TTY.Close, a context that ends, this process dying. Nothing is recorded in the node, so there is nothing
// to go stale, and ending twice, or ending what has finished, closes what is already closed.
//
// The supervisor's stdin carries frames (typed, length-prefixed), so that a command's own input, its end, and a
// terminal's size can travel without ever closing the connection; the engine frames the output (stdcopy) as for
// any exec without a terminal.

// supervisorPath is where the node image has the supervisor.
const supervisorPath = "/usr/local/sbin/sandlot-run"

// Frame types of the supervisor's input.
const (
	frameData = 'd' // input for the command (its stdin, or the terminal's keyboard)
	frameEnd  = 'e' // end of the command's stdin
	frameSize = 'w' // terminal size: columns and rows, 2-byte big-endian each
)

// maxFrame is the most input one frame carries; the supervisor refuses frames above 1 MiB.
const maxFrame = 32 << 10

// supervised is cmd run under the supervisor. With feed, its stdin is fed from data frames (else it reads
// /dev/null); with cols and rows not zero, it runs on a terminal of that size instead, also served on the unix
// socket at path socket in the node if that is not "" (see shortway.go).
func supervised(cmd []string, feed bool, cols, rows uint, socket string) []string {
	out := []string{supervisorPath}
	switch {
	case cols > 0 && rows > 0:
		out = append(out, "--tty", fmt.Sprintf("%dx%d", clampSize(cols), clampSize(rows)))
		if socket != "" {
			out = append(out, "--socket", socket)
		}
	case feed:
		out = append(out, "--stdin")
	}
	return append(append(out, "--"), cmd...)
}

// clampSize keeps a terminal dimension within what the kernel's winsize holds.
func clampSize(n uint) uint { return min(max(n, 1), 65535) }

// lifeline writes frames to a supervisor. It is safe for concurrent use: frames never interleave.
type lifeline struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lifeline) send(typ byte, payload []byte) error {
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	l.mu.Lock()
	defer l.mu.Unlock()
	bufs := net.Buffers{hdr[:], payload} // one writev on a socket
	_, err := bufs.WriteTo(l.w)
	return err
}

// Write sends p as input for the command, in frames of at most maxFrame bytes.
func (l *lifeline) Write(p []byte) (int, error) {
	done := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), maxFrame)]
		if err := l.send(frameData, chunk); err != nil {
			return done, err
		}
		done += len(chunk)
		p = p[len(chunk):]
	}
	return done, nil
}

// endInput closes the command's stdin, after the input sent before.
func (l *lifeline) endInput() error { return l.send(frameEnd, nil) }

// resize sets the size of the command's terminal.
func (l *lifeline) resize(cols, rows uint) error {
	var b [4]byte
	binary.BigEndian.PutUint16(b[0:], uint16(clampSize(cols)))
	binary.BigEndian.PutUint16(b[2:], uint16(clampSize(rows)))
	return l.send(frameSize, b[:])
}

// demux reads the output of an exec without a terminal as one stream: stdout and stderr in the order they came,
// without the engine's frame headers (8 bytes: the stream, three zeros, a 4-byte big-endian length). It is not
// safe for concurrent use.
type demux struct {
	r    io.Reader
	left uint32 // bytes left in the current frame
	hdr  [8]byte
}

func (m *demux) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for m.left == 0 {
		if _, err := io.ReadFull(m.r, m.hdr[:]); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.EOF
			}
			return 0, err
		}
		m.left = binary.BigEndian.Uint32(m.hdr[4:])
	}
	if uint32(len(p)) > m.left {
		p = p[:m.left]
	}
	n, err := m.r.Read(p)
	m.left -= uint32(n)
	return n, err
}
