// Package wsread reads WebSocket messages into a buffer reused from message to message, as a straight reader
// reuses its own (websocket.Conn.ReadMessage grows a new slice for each: at 64 KiB a frame, that and the
// collection of the garbage cost a benchmark's client more CPU than the server spends relaying).
package wsread

import (
	"io"

	"github.com/gorilla/websocket"
)

// Next reads the next message into buf (grown as needed) and returns it.
func Next(ws *websocket.Conn, buf []byte) ([]byte, error) {
	_, r, err := ws.NextReader()
	if err != nil {
		return nil, err
	}
	m := buf[:0]
	for {
		if len(m) == cap(m) {
			m = append(m, 0)[:len(m)]
		}
		n, err := r.Read(m[len(m):cap(m)])
		m = m[:len(m)+n]
		if err == io.EOF {
			return m, nil
		}
		if err != nil {
			return m, err
		}
	}
}
