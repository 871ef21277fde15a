package labproxy

import (
	"log/slog"
	"strconv"
	"testing"
)

// The lab host names: only <node>-<port>-<session>.<lab domain> is the proxy's.
func TestLabHost(t *testing.T) {
	p := New(nil, Config{Domain: "labs.example.com"}, slog.Default())
	for host, want := range map[string]string{
		"node1-8080-abcdefgh12.labs.example.com":      "abcdefgh12 node1 8080",
		"node12-80-abcdefgh12.labs.example.com:8443":  "abcdefgh12 node12 80",
		"NODE1-8080-ABCDEFGH12.LABS.EXAMPLE.COM":      "abcdefgh12 node1 8080",
		"node1-65536-abcdefgh12.labs.example.com":     "",
		"node1-0-abcdefgh12.labs.example.com":         "",
		"x.node1-8080-abcdefgh12.labs.example.com":    "",
		"node1-8080-abcdefgh12.labs.example.com.evil": "",
		"labs.example.com":                            "",
		"node1-8080-abc.labs.example.com":             "",
		"evil-8080-abcdefgh12.labs.example.com":       "",
	} {
		got := ""
		if tg, ok := p.HostTarget(host); ok {
			got = tg.Session + " " + tg.Node + " " + strconv.Itoa(tg.Port)
		}
		if got != want {
			t.Errorf("%s: %q, want %q", host, got, want)
		}
	}
}
