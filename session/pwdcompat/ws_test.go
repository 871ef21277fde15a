package pwdcompat

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecodeFrame(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want clientEvent
		err  bool
	}{
		{`{"name":"instance terminal in","args":["node1","ls\r"]}`, clientEvent{kind: "input", node: "node1", data: "ls\r"}, false},
		{`{"name":"instance viewport resize","args":[120,40]}`, clientEvent{kind: "resize", cols: 120, rows: 40}, false},
		{`{"name":"session close","args":[]}`, clientEvent{kind: "close"}, false},
		{`{"name":"instance stats","args":["node1"]}`, clientEvent{}, false}, // PWD's, not served: ignored
		{`{"name":"instance terminal in","args":["node1"]}`, clientEvent{}, true},
		{`{"name":"instance terminal in","args":["","x"]}`, clientEvent{}, true},
		{`{"name":"instance terminal in","args":[{},"x"]}`, clientEvent{}, true},
		{`{"name":"instance viewport resize","args":[0,40]}`, clientEvent{}, true},
		{`{"name":"instance viewport resize","args":[1e9,40]}`, clientEvent{}, true},
		{`{"name":"instance viewport resize","args":["80","24"]}`, clientEvent{}, true},
		{`{"args":[]}`, clientEvent{}, true},
		{`[]`, clientEvent{}, true},
		{`not json`, clientEvent{}, true},
	} {
		got, err := decodeFrame([]byte(tc.in))
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%s: %+v %v, want %+v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add([]byte(`{"name":"instance terminal in","args":["node1","ls\r"]}`))
	f.Add([]byte(`{"name":"instance viewport resize","args":[120,40]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := decodeFrame(b)
		if err == nil && ev.kind == "resize" && (ev.cols == 0 || ev.rows == 0) {
			t.Fatalf("a size of zero let through: %+v", ev)
		}
	})
}

// Output cut inside a character is sent whole in the next frame, never as replacement characters.
func TestSplitUTF8(t *testing.T) {
	text := []byte("héllo ✓ 𝄞 done")
	for cut := 0; cut <= len(text); cut++ {
		a, rest := splitUTF8(append([]byte(nil), text[:cut]...))
		b, rest2 := splitUTF8(append(append([]byte(nil), rest...), text[cut:]...))
		if !utf8.Valid(a) || !utf8.Valid(b) || len(rest2) != 0 || string(a)+string(b) != string(text) {
			t.Fatalf("cut at %d: %q + %q (left %q)", cut, a, b, rest2)
		}
	}
	if a, rest := splitUTF8([]byte("\xff\xfe")); string(a) != "\xff\xfe" || rest != nil {
		t.Errorf("invalid bytes are not held back forever: %q %q", a, rest)
	}
}

func TestIDs(t *testing.T) {
	p := &compat{cfg: Config{Key: []byte("k")}}
	id := strings.Repeat("a", idLen)
	pwd := p.pwdID(id)
	if got, ok := p.sessionID(pwd); !ok || got != id {
		t.Fatalf("%s: %s %v", pwd, got, ok)
	}
	other := &compat{cfg: Config{Key: []byte("another key")}}
	for _, bad := range []string{id, id + id, pwd[:len(pwd)-1], pwd + "a", other.pwdID(id)} {
		if _, ok := p.sessionID(bad); ok {
			t.Errorf("%s accepted", bad)
		}
	}
}
