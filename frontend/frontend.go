// Package frontend serves Sandlot's web page: the TypeScript in src/ built by build.mjs into dist/ (make does
// that) and embedded into the binary. Without a build, the page says how to make one; the API works either way.
package frontend

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
)

//go:embed all:dist
var dist embed.FS

// asset is one file ready to serve: its bytes, gzipped when that is smaller, and its validator.
type asset struct {
	body, gz []byte
	ctype    string
	etag     string
}

// Site is the built page and its assets.
type Site struct {
	index  asset
	assets map[string]asset // by name under /assets/
	built  bool
}

// Load returns the embedded build, read (and gzipped) at the first call only.
var Load = sync.OnceValue(func() *Site { return load(dist) })

func load(fsys fs.FS) *Site {
	s := &Site{assets: map[string]asset{}}
	if b, err := fs.ReadFile(fsys, "dist/index.html"); err == nil {
		s.index, s.built = newAsset("index.html", b), true
	} else {
		s.index = newAsset("index.html", []byte(fallbackPage))
	}
	entries, _ := fs.ReadDir(fsys, "dist/assets")
	for _, e := range entries {
		if b, err := fs.ReadFile(fsys, "dist/assets/"+e.Name()); err == nil && !e.IsDir() {
			s.assets[e.Name()] = newAsset(e.Name(), b)
		}
	}
	return s
}

func newAsset(name string, b []byte) asset {
	sum := sha256.Sum256(b)
	a := asset{body: b, ctype: mime.TypeByExtension(path.Ext(name)), etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	if a.ctype == "" {
		a.ctype = "application/octet-stream"
	}
	var z bytes.Buffer
	w, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
	_, _ = w.Write(b)
	_ = w.Close()
	if z.Len() < len(b) {
		a.gz = z.Bytes()
	}
	return a
}

// sent is how many bytes a browser that takes gzip downloads for the asset.
func (a asset) sent() int {
	if a.gz != nil {
		return len(a.gz)
	}
	return len(a.body)
}

// Built reports whether the embedded page is a real build (not the how-to-build page).
func (s *Site) Built() bool { return s.built }

// Page serves the page itself: the same document for / and for /s/<id>; the script routes.
func (s *Site) Page() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; "+
			"img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'self'; base-uri 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		serve(w, r, s.index)
	})
}

// Embeds are the assets other pages load by a stable name: a terminal, a whole lab (which loads the terminal
// beside it when it starts), the SDK and the "Try in Sandlot" button. They are revalidated rather than cached for ever, and served to any
// origin (a module script from elsewhere needs CORS); what they may then do is the API's decision.
var Embeds = []string{"sandlot-terminal.js", "sandlot-lab.js", "sandlot-sdk.js", "try-in-sandlot.svg"}

func isEmbed(name string) bool {
	for _, e := range Embeds {
		if name == e {
			return true
		}
	}
	return false
}

// Assets serves /assets/<name>. Hashed names never change their content, so they are cached for a year;
// the Embeds keep their names for embedding pages and are revalidated.
func (s *Site) Assets() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("file")
		a, ok := s.assets[name]
		if !ok {
			http.Error(w, "no such asset: "+name, http.StatusNotFound)
			return
		}
		if !isEmbed(name) {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
			w.Header().Set("Access-Control-Allow-Origin", "*") // any page may load the script
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		serve(w, r, a)
	})
}

func serve(w http.ResponseWriter, r *http.Request, a asset) {
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("ETag", a.etag)
	h.Add("Vary", "Accept-Encoding")
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.body
	if a.gz != nil && acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		body = a.gz
	}
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(strings.TrimSpace(q), " ", "") != "q=0" {
			return true
		}
	}
	return false
}

const fallbackPage = `<!doctype html><meta charset="utf-8"><title>Sandlot</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:42em;margin:10vh auto;padding:0 1em}code{background:#eee;padding:0 4px}</style>
<h1>Sandlot</h1>
<p>This server was built without its web page. The API works: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.</p>
<p>To build the page, run <code>make</code> in the source tree (it needs Node.js and npm; it runs
<code>npm ci && node build.mjs</code> in <code>frontend/</code>), then rebuild the binary.</p>
<p>Start a session without it: <code>curl -X POST localhost:8080/api/v1/sessions -d '{"template":"1-node"}'</code></p>
`
