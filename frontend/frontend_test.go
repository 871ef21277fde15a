package frontend

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func serveWith(s *Site) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", s.Page())
	mux.Handle("GET /s/{id}", s.Page())
	mux.Handle("GET /assets/{file}", s.Assets())
	return mux
}

func get(t *testing.T, h http.Handler, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

var built = fstest.MapFS{
	"dist/index.html":                 {Data: []byte(`<!doctype html><script type="module" src="/assets/app-AAAAAAAA.js"></script>`)},
	"dist/assets/app-AAAAAAAA.js":     {Data: bytes.Repeat([]byte("console.log('sandlot');\n"), 200)},
	"dist/assets/sandlot-terminal.js": {Data: []byte("customElements.define('sandlot-terminal', class extends HTMLElement {})")},
}

// Without a build the page says how to make one; the API does not depend on it.
func TestFallbackPageWithoutBuild(t *testing.T) {
	s := load(fstest.MapFS{"dist/.gitkeep": {}})
	if s.Built() {
		t.Fatal("an empty dist counts as built")
	}
	w := get(t, serveWith(s), "/")
	if w.Code != 200 || !strings.Contains(w.Body.String(), "make") || !strings.Contains(w.Body.String(), "npm") {
		t.Fatalf("fallback page: %d %q", w.Code, w.Body.String())
	}
	if w := get(t, serveWith(s), "/assets/app.js"); w.Code != 404 {
		t.Fatalf("an asset of no build: %d", w.Code)
	}
}

// The same document for / and for a session's page, never cached stale, with a content security policy that
// allows nothing from elsewhere.
func TestPageServedForEveryRoute(t *testing.T) {
	h := serveWith(load(built))
	for _, path := range []string{"/", "/s/abc123"} {
		w := get(t, h, path)
		if w.Code != 200 || !strings.Contains(w.Body.String(), "app-AAAAAAAA.js") {
			t.Fatalf("GET %s: %d %q", path, w.Code, w.Body.String())
		}
		if w.Header().Get("Cache-Control") != "no-cache" || !strings.Contains(w.Header().Get("Content-Security-Policy"), "default-src 'self'") {
			t.Fatalf("GET %s headers: %v", path, w.Header())
		}
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Fatalf("GET %s: content type %q", path, ct)
		}
	}
}

// Assets: gzip when the browser takes it, the plain bytes when it does not, 304 for a known ETag, long caching
// for content-hashed names, and 404 for anything else (no path reaches outside the embedded build).
func TestAssets(t *testing.T) {
	h := serveWith(load(built))
	plain := get(t, h, "/assets/app-AAAAAAAA.js")
	if plain.Code != 200 || plain.Header().Get("Content-Encoding") != "" || plain.Body.Len() != 200*24 {
		t.Fatalf("plain: %d %v %d bytes", plain.Code, plain.Header(), plain.Body.Len())
	}
	if !strings.HasPrefix(plain.Header().Get("Content-Type"), "text/javascript") {
		t.Fatalf("content type %q", plain.Header().Get("Content-Type"))
	}
	if !strings.Contains(plain.Header().Get("Cache-Control"), "immutable") {
		t.Fatalf("hashed asset cache control %q", plain.Header().Get("Cache-Control"))
	}
	zipped := get(t, h, "/assets/app-AAAAAAAA.js", "Accept-Encoding", "br, gzip;q=0.8")
	if zipped.Header().Get("Content-Encoding") != "gzip" || zipped.Body.Len() >= plain.Body.Len() {
		t.Fatalf("gzip: %v, %d bytes", zipped.Header(), zipped.Body.Len())
	}
	zr, err := gzip.NewReader(zipped.Body)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(zr); !bytes.Equal(b, plain.Body.Bytes()) {
		t.Fatal("gzipped body differs from the plain one")
	}
	if w := get(t, h, "/assets/app-AAAAAAAA.js", "Accept-Encoding", "gzip;q=0"); w.Header().Get("Content-Encoding") != "" {
		t.Fatal("gzip sent to a client that refused it")
	}
	if w := get(t, h, "/assets/app-AAAAAAAA.js", "If-None-Match", plain.Header().Get("ETag")); w.Code != 304 || w.Body.Len() != 0 {
		t.Fatalf("If-None-Match: %d", w.Code)
	}
	embed := get(t, h, "/assets/sandlot-terminal.js")
	if embed.Header().Get("Cache-Control") != "no-cache" || embed.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("the element's script for other pages: %v", embed.Header())
	}
	for _, path := range []string{"/assets/nope.js", "/assets/..%2findex.html", "/assets/%2e%2e%2f%2e%2e%2fgo.mod"} {
		if w := get(t, h, path); w.Code != 404 {
			t.Fatalf("GET %s: %d", path, w.Code)
		}
	}
}

// The real build, when there is one: the bundle (scripts and styles, gzipped, xterm.js included) stays small.
// Its size is reported by BenchmarkBundleSize; this only checks that a build is whole.
func TestEmbeddedBuild(t *testing.T) {
	s := Load()
	if !s.Built() {
		t.Skip("the page is not built (make ui)")
	}
	forOtherPages := map[string]bool{"sandlot-terminal.js": true, "try-in-sandlot.svg": true} // stable names
	for name := range forOtherPages {
		if _, ok := s.assets[name]; !ok {
			t.Fatalf("the build has no %s", name)
		}
	}
	index := string(s.index.body)
	for name := range s.assets {
		if !forOtherPages[name] && !strings.Contains(index, "/assets/"+name) {
			t.Errorf("index.html does not use %s (a stale file in dist/assets?)", name)
		}
	}
}

// BenchmarkBundleSize reports what a browser downloads for the page: its scripts and styles, gzipped.
func BenchmarkBundleSize(b *testing.B) {
	s := Load()
	if !s.Built() {
		b.Skip("the page is not built (make ui)")
	}
	var gz, raw int
	for b.Loop() {
		gz, raw = 0, 0
		for name, a := range s.assets {
			if name == "sandlot-terminal.js" {
				continue // for embedding pages, not loaded by this one
			}
			raw += len(a.body)
			if gz += len(a.gz); a.gz == nil {
				gz += len(a.body) // not worth compressing: sent as it is
			}
		}
	}
	b.ReportMetric(float64(gz)/1024, "KiB-gzipped")
	b.ReportMetric(float64(raw)/1024, "KiB-raw")
}
