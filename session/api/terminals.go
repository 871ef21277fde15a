package api

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/sandlot/sandlot/session"
	"github.com/sandlot/sandlot/terminal"
)

// terminal upgrades to the WebSocket terminal protocol (terminal/PROTOCOL.md) on terminal ?t= (default 1) of a
// node. A grant that may not drive the session (a viewer link) may only watch.
func (a *api) terminal() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tid := 1
		if t := r.URL.Query().Get("t"); t != "" {
			n, err := strconv.Atoi(t)
			if err != nil {
				fail(w, a.log, fmt.Errorf("%w: terminal %q is not a number", session.ErrInvalid, t))
				return
			}
			tid = n
		}
		client := a.clientIP(r)
		release, ok := a.sockets.acquire(client)
		if !ok {
			failWith(w, http.StatusTooManyRequests, "too_many_connections",
				fmt.Sprintf("%s has %d terminal connections open, the most one client may have", client, a.cfg.SocketsPerClient))
			return
		}
		defer release()
		id := r.PathValue("id")
		term, err := a.svc.Terminal(r.Context(), id, r.PathValue("name"), tid)
		if err != nil {
			fail(w, a.log, err)
			return
		}
		ws, err := a.upgrader.Upgrade(w, r, nil)
		if err != nil {
			return // the upgrader has answered
		}
		readOnly := a.svc.Check(r.Context(), grantOf(r.Context()), id, session.PermDrive) != nil
		terminal.Serve(ws, term, readOnly)
	})
}
