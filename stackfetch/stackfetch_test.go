package stackfetch

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

const compose = "services:\n  web:\n    image: nginx:alpine\n    ports: [\"8080:80\"]\n"

// files serves the test's files: a compose file, redirects, and the misbehaving servers the policy refuses.
func files(t *testing.T) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/docker-compose.yml", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(compose)) })
	mux.HandleFunc("/to-private", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://10.1.2.3/docker-compose.yml", http.StatusFound)
	})
	mux.HandleFunc("/to-metadata", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
	})
	mux.HandleFunc("/to-blocked", func(w http.ResponseWriter, r *http.Request) {
		_, port, _ := strings.Cut(r.Host, ":")
		http.Redirect(w, r, "http://127.0.0.2:"+port+"/docker-compose.yml", http.StatusFound)
	})
	mux.HandleFunc("/to-file", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", http.StatusFound) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/docker-compose.yml", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("services:\n  web:\n    image: x\n#" + strings.Repeat("x", DefaultMaxSize) + "\n"))
	})
	mux.HandleFunc("/big-chunked", func(w http.ResponseWriter, r *http.Request) {
		for range 40 {
			w.Write([]byte("#" + strings.Repeat("x", 8<<10) + "\n"))
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/slow-answer", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/slow-body", func(w http.ResponseWriter, r *http.Request) {
		for range 50 {
			w.Write([]byte("#\n"))
			w.(http.Flusher).Flush()
			select {
			case <-time.After(100 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	})
	mux.HandleFunc("/page.html", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("<!doctype html><html><body><p>Not: a compose file</p></body></html>"))
	})
	mux.HandleFunc("/binary", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("\x7fELF\x02\x01\x01\x00")) })
	mux.HandleFunc("/no-services.yml", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("version: '3'\nnetworks: {}\n")) })
	mux.HandleFunc("/bad.yml", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("services:\n  web:\n image: [\n")) })
	mux.HandleFunc("/missing", http.NotFound)
	return mux
}

func TestFetch(t *testing.T) {
	srv := httptest.NewServer(files(t))
	t.Cleanup(srv.Close)
	_, port, _ := strings.Cut(strings.TrimPrefix(srv.URL, "http://"), ":")
	test := Config{AllowLoopback: true, FirstByte: 300 * time.Millisecond, Timeout: 1500 * time.Millisecond,
		Blocked: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}
	tests := []struct {
		name    string
		cfg     Config
		url     string
		code    string // "" for a fetch that works
		message string // part of the message
	}{
		{"a loopback file server, allowed by the test option", test, srv.URL + "/docker-compose.yml", "", ""},
		{"a redirect to it, allowed", test, srv.URL + "/moved", "", ""},
		{"loopback refused by default", Config{}, srv.URL + "/docker-compose.yml", CodeRefused, "127.0.0.1:" + port + " is a loopback address"},
		{"a name resolving to loopback refused at the dial", Config{}, "http://localhost:" + port + "/docker-compose.yml", CodeRefused, "resolves to"},
		{"IPv6 loopback refused", Config{}, "http://[::1]:" + port + "/", CodeRefused, "loopback"},
		{"IPv4-mapped loopback refused", Config{}, "http://[::ffff:127.0.0.1]:" + port + "/", CodeRefused, "loopback"},
		{"private refused", Config{}, "http://192.168.1.10/docker-compose.yml", CodeRefused, "private address"},
		{"CGNAT refused", Config{}, "http://100.64.0.1/", CodeRefused, "carrier-grade NAT"},
		{"node subnet refused", Config{}, "http://198.18.0.5/", CodeRefused, "node subnets"},
		{"image cache address refused", Config{}, "http://169.254.169.254/", CodeRefused, "link-local"},
		{"unspecified refused", Config{}, "http://0.0.0.0:" + port + "/", CodeRefused, "unspecified"},
		{"multicast refused", Config{}, "http://224.0.0.1/", CodeRefused, "multicast"},
		{"redirect to a private address refused", test, srv.URL + "/to-private", CodeRefused, "10.1.2.3 is a private address"},
		{"redirect to link-local refused", test, srv.URL + "/to-metadata", CodeRefused, "link-local"},
		{"redirect to a blocked address refused even with loopback allowed", test, srv.URL + "/to-blocked", CodeRefused, "an address of this Sandlot"},
		{"redirect to file: refused", test, srv.URL + "/to-file", CodeBadURL, "only http and https"},
		{"endless redirects", test, srv.URL + "/loop", CodeFetchFailed, "redirected more than 5 times"},
		{"ftp refused", Config{}, "ftp://example.com/docker-compose.yml", CodeBadURL, "only http and https"},
		{"file refused", Config{}, "file:///etc/passwd", CodeBadURL, "only http and https"},
		{"credentials refused", test, "http://u:p@" + strings.TrimPrefix(srv.URL, "http://") + "/docker-compose.yml", CodeBadURL, "user name or password"},
		{"not a URL", Config{}, "docker-compose.yml", CodeBadURL, "not a URL"},
		{"oversized", test, srv.URL + "/big", CodeTooLarge, "larger than 256 KiB"},
		{"oversized without a length", test, srv.URL + "/big-chunked", CodeTooLarge, "larger than 256 KiB"},
		{"slow to answer", test, srv.URL + "/slow-answer", CodeTimeout, "did not send the compose file in time"},
		{"slow to send", test, srv.URL + "/slow-body", CodeTimeout, "did not send the compose file in time"},
		{"an HTML page", test, srv.URL + "/page.html", CodeNotCompose, "is not a compose file"},
		{"bad YAML", test, srv.URL + "/bad.yml", CodeNotCompose, "not YAML"},
		{"a binary", test, srv.URL + "/binary", CodeNotCompose, "not text"},
		{"YAML without services", test, srv.URL + "/no-services.yml", CodeNotCompose, "has no services"},
		{"not found", test, srv.URL + "/missing", CodeFetchFailed, "answered 404 Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data, err := New(tt.cfg).Fetch(context.Background(), tt.url)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Fetch(%s): %v", tt.url, err)
				}
				if string(data) != compose {
					t.Fatalf("Fetch(%s) = %q, want the file as served", tt.url, data)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Fetch(%s) = %q, %v; want an *Error %s", tt.url, data, err, tt.code)
			}
			if e.Code != tt.code || !strings.Contains(e.Message, tt.message) {
				t.Fatalf("Fetch(%s): %s %q; want %s with %q", tt.url, e.Code, e.Message, tt.code, tt.message)
			}
		})
	}
}

func TestFetchHTTPS(t *testing.T) {
	srv := httptest.NewTLSServer(files(t))
	t.Cleanup(srv.Close)
	f := New(Config{AllowLoopback: true})
	f.client.Transport.(*http.Transport).TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig
	data, err := f.Fetch(context.Background(), srv.URL+"/docker-compose.yml")
	if err != nil || string(data) != compose {
		t.Fatalf("Fetch over https = %q, %v", data, err)
	}
	// A certificate that is not trusted is a failure, not a fetch.
	_, err = New(Config{AllowLoopback: true}).Fetch(context.Background(), srv.URL+"/docker-compose.yml")
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeFetchFailed || !strings.Contains(e.Message, "certificate") {
		t.Fatalf("Fetch from an untrusted certificate: %v", err)
	}
}

func TestRefuse(t *testing.T) {
	f := New(Config{})
	for _, tt := range []struct {
		addr string
		ok   bool
	}{
		{"93.184.215.14", true}, {"140.82.112.3", true}, {"2606:4700::6810:84e5", true},
		{"127.0.0.1", false}, {"127.8.9.10", false}, {"10.0.0.1", false}, {"172.16.0.1", false}, {"172.31.255.255", false},
		{"192.168.0.1", false}, {"169.254.1.1", false}, {"100.64.0.1", false}, {"100.127.255.255", false},
		{"198.18.0.1", false}, {"198.19.255.255", false}, {"0.0.0.0", false}, {"0.1.2.3", false}, {"224.0.0.251", false},
		{"255.255.255.255", false}, {"240.0.0.1", false}, {"192.0.2.1", false}, {"::", false}, {"::1", false},
		{"fe80::1", false}, {"fc00::1", false}, {"fd12::1", false}, {"ff02::1", false}, {"::ffff:10.0.0.1", false},
		{"64:ff9b::a00:1", false}, {"2002:a00:1::", false}, {"2001:db8::1", false},
	} {
		if why := f.refuse(netip.MustParseAddr(tt.addr)); (why == "") != tt.ok {
			t.Errorf("refuse(%s) = %q, want allowed %v", tt.addr, why, tt.ok)
		}
	}
}

func TestCheckCompose(t *testing.T) {
	for _, tt := range []struct {
		name, file string
		ok         bool
	}{
		{"compose", compose, true},
		{"with version and anchors", "version: '3.8'\nx-base: &base\n  image: alpine\nservices:\n  a: *base\n  b:\n    <<: *base\n", true},
		{"empty", "", false},
		{"a list", "- services\n", false},
		{"a string", "services", false},
		{"services a list", "services:\n  - web\n", false},
		{"services empty", "services: {}\n", false},
		{"a service not a mapping", "services:\n  web: nginx\n", false},
		{"JSON compose (YAML too)", `{"services":{"web":{"image":"nginx"}}}`, true},
		{"bad YAML", "services:\n  web:\n image: [\n", false},
		{"two documents", "services:\n  a: {}\n---\nservices:\n  b: {}\n", true},
	} {
		err := CheckCompose([]byte(tt.file))
		if (err == nil) != tt.ok {
			t.Errorf("%s: CheckCompose = %v, want ok %v", tt.name, err, tt.ok)
		}
		var e *Error
		if err != nil && (!errors.As(err, &e) || e.Code != CodeNotCompose) {
			t.Errorf("%s: %v is not a not_compose *Error", tt.name, err)
		}
	}
}

// FuzzCheckCompose: no input makes the check panic or hang.
func FuzzCheckCompose(f *testing.F) {
	f.Add([]byte(compose))
	f.Add([]byte("a: &a [*a, *a]\nservices: {x: {}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) { _ = CheckCompose(data) })
}
