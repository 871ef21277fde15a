package api

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

// X-Forwarded-For is believed only from trusted proxies, and then only up to the first address they did not add.
func TestClientIP(t *testing.T) {
	a := &api{cfg: Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	tests := []struct {
		name, remote, xff, want string
	}{
		{"direct", "203.0.113.7:5000", "", "203.0.113.7"},
		{"untrusted peer's header is ignored", "203.0.113.7:5000", "198.51.100.1", "203.0.113.7"},
		{"trusted proxy", "10.1.1.1:443", "198.51.100.1", "198.51.100.1"},
		{"spoofed left entries skipped", "10.1.1.1:443", "6.6.6.6, 198.51.100.1", "198.51.100.1"},
		{"proxy chain", "10.1.1.1:443", "198.51.100.1, 10.2.2.2", "198.51.100.1"},
		{"garbage header", "10.1.1.1:443", "not-an-ip", "10.1.1.1"},
		{"IPv4-mapped peer", "[::ffff:203.0.113.9]:1", "", "203.0.113.9"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.remote
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
		}
		if got := a.clientIP(r); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}
