package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMirrorAddr(t *testing.T) {
	for raw, want := range map[string]string{
		"http://10.0.0.5:5000":   "10.0.0.5:5000",
		"http://10.0.0.5":        "10.0.0.5:80",
		"http://127.0.0.1:5000/": "127.0.0.1:5000",
	} {
		got, err := mirrorAddr(raw)
		if err != nil || got.String() != want {
			t.Errorf("mirrorAddr(%q) = %v, %v; want %s", raw, got, err, want)
		}
	}
	for _, raw := range []string{"https://10.0.0.5:5000", "10.0.0.5:5000", "http://10.0.0.5:5000/v2/", "ftp://x", "http://[::1]:5000"} {
		if _, err := mirrorAddr(raw); err == nil {
			t.Errorf("mirrorAddr(%q): no error", raw)
		}
	}
}

func TestUpstreamAuth(t *testing.T) {
	file := filepath.Join(t.TempDir(), "auth")
	if err := os.WriteFile(file, []byte("alice:s3cret:with:colons\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for v, want := range map[string]string{"": ":", "bob:pw": "bob:pw", "@" + file: "alice:s3cret:with:colons"} {
		u, p, err := upstreamAuth(v)
		if err != nil || u+":"+p != want {
			t.Errorf("upstreamAuth(%q) = %q, %q, %v; want %s", v, u, p, err, want)
		}
	}
	for _, v := range []string{"nocolon", ":pw", "@/no/such/file"} {
		if _, _, err := upstreamAuth(v); err == nil || !strings.Contains(err.Error(), "--image-upstream-auth") {
			t.Errorf("upstreamAuth(%q): %v", v, err)
		}
	}
}
