package api

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/sandlot/sandlot/session"
)

type execRequest struct {
	Cmd []string `json:"cmd"`
}

// execResponse is a finished command. Its output is text when both streams are UTF-8 that JSON carries at little
// cost, and base64 otherwise (encoding says which), so that no output, whatever its bytes, makes an answer larger
// than 4/3 of what was kept of it; truncated says a stream was longer than the server keeps.
type execResponse struct {
	ExitCode  int    `json:"exit_code"`
	Stdout    string `json:"stdout"`
	Stderr    string `json:"stderr"`
	Encoding  string `json:"encoding"` // "text" or "base64"
	Truncated bool   `json:"truncated"`
}

func (a *api) exec() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req execRequest
		if err := decode(w, r, &req); err != nil {
			fail(w, a.log, err)
			return
		}
		if err := checkCmd(req.Cmd); err != nil {
			fail(w, a.log, err)
			return
		}
		res, err := a.svc.Exec(r.Context(), r.PathValue("id"), r.PathValue("name"), req.Cmd, a.cfg.MaxExecOutput)
		if err != nil {
			fail(w, a.log, err)
			return
		}
		out := execResponse{ExitCode: res.ExitCode, Encoding: "text", Truncated: res.Truncated}
		if cheapText(res.Stdout) && cheapText(res.Stderr) {
			out.Stdout, out.Stderr = string(res.Stdout), string(res.Stderr)
		} else {
			out.Encoding = "base64"
			out.Stdout = base64.StdEncoding.EncodeToString(res.Stdout)
			out.Stderr = base64.StdEncoding.EncodeToString(res.Stderr)
		}
		respond(w, http.StatusOK, out)
	})
}

// cheapText says whether b is UTF-8 whose JSON string costs at most 4/3 of its length, give or take 64 bytes (so
// that short text stays text). JSON escapes a control character in six bytes (but \n, \t, \r in two), as the
// API's encoder does <, > and & (and two line separators in six), where base64 never goes beyond 4/3.
func cheapText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	cost := len(b) + 3*bytes.Count(b, []byte("\u2028")) + 3*bytes.Count(b, []byte("\u2029"))
	for _, c := range b {
		switch c {
		case '\n', '\r', '\t', '\b', '\f', '"', '\\':
			cost++
		case '<', '>', '&':
			cost += 5
		default:
			if c < 0x20 {
				cost += 5
			}
		}
	}
	return cost*3 <= len(b)*4+3*64
}

// checkCmd accepts 1 to 256 arguments, none with a NUL byte.
func checkCmd(cmd []string) error {
	if len(cmd) == 0 || len(cmd) > 256 {
		return fmt.Errorf("%w: cmd needs 1 to 256 arguments, like [\"sh\", \"-c\", \"docker ps\"]", session.ErrInvalid)
	}
	for _, arg := range cmd {
		if strings.ContainsRune(arg, 0) {
			return fmt.Errorf("%w: cmd arguments may not contain NUL bytes", session.ErrInvalid)
		}
	}
	return nil
}
