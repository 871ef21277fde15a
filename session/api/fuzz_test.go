package api

import (
	"errors"
	"strings"
	"testing"

	"github.com/sandlot/sandlot/session"
)

// Request bodies never panic the decoder, and every refusal is ErrInvalid.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{`{}`, ``, `{"template":"1-node","duration":"30m"}`, `{"cmd":["sh","-c","x"]}`,
		`{"hostname":"a"}`, `{`, `[]`, `{"cmd":null}`, `{"a":1}{}`, `"x"`, "\x00", `{"duration":1e999}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []any{&createSessionRequest{}, &execRequest{}, &addInstanceRequest{}, &extendRequest{},
			&setupRequest{}} {
			if err := decodeBytes(data, v); err != nil && !errors.Is(err, session.ErrInvalid) {
				t.Fatalf("%T: %v", v, err)
			}
		}
		var req execRequest
		if decodeBytes(data, &req) == nil {
			if err := checkCmd(req.Cmd); err == nil && (len(req.Cmd) == 0 || strings.ContainsRune(strings.Join(req.Cmd, ""), 0)) {
				t.Fatalf("accepted cmd %q", req.Cmd)
			}
		}
	})
}
