package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sandlot/sandlot/images"
	"github.com/sandlot/sandlot/internal/redistest"
	"github.com/sandlot/sandlot/internal/registryproc"
	"github.com/sandlot/sandlot/internal/testimages"
	"github.com/sandlot/sandlot/session"
	"github.com/sandlot/sandlot/session/memnodes"
	"github.com/sandlot/sandlot/session/templates"
)

// A template's images are pulled into each of its nodes as they are made, and into a node added to its session
// later; nodes of other templates get none.
func TestTemplateImagesIntoNodes(t *testing.T) {
	nodes := memnodes.New(netip.MustParseAddr("127.0.0.1"))
	s := newServer(t, redistest.New(t), serverOpts{nodes: nodes, extra: templates.Set{
		"web-lab": {Name: "web-lab", Title: "web", Workers: 2, Images: []string{"nginx:alpine", "redis:7"}, PreloadIntoNodes: true},
	}})
	c := s.create(map[string]string{"template": "web-lab"})
	var in session.Instance
	s.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+c.ID+"/instances", c.Token, nil, &in)
	for _, name := range []string{"node1", "node2", in.Name} {
		if got := nodes.Preloaded(c.ID, name); !slices.Equal(got, []string{"nginx:alpine", "redis:7"}) {
			t.Errorf("%s was made to preload %v", name, got)
		}
	}
	other := s.create(map[string]string{"template": "1-node"})
	if got := nodes.Preloaded(other.ID, "node1"); got != nil {
		t.Errorf("a node of 1-node was made to preload %v", got)
	}
}

// The image routes, with a real cache (real registries, a stand-in upstream): what anyone may read, what only the
// admin may do, and bad input refused with its code and nothing listed.
func TestImageRoutes(t *testing.T) {
	up := testimages.NewUpstream(t)
	web, err := testimages.Web("api")
	if err != nil {
		t.Fatal(err)
	}
	up.Push("library/web:1", web)
	listen, err := registryproc.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	cache, err := images.Start(context.Background(), images.Config{Dir: t.TempDir(), Listen: listen, Upstream: up.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	s := newServer(t, redistest.New(t), serverOpts{nodes: memnodes.New(netip.MustParseAddr("127.0.0.1")),
		api: Config{Images: cache, MaxImport: 8 << 20}})
	c := s.create(nil)

	for _, tok := range []string{"", c.Token, "garbage"} {
		resp := s.call("POST", "/api/v1/images/preload", tok, map[string]any{"images": []string{"web:1"}}, nil)
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
			t.Errorf("preload with token %q: %d", tok, resp.StatusCode)
		}
		resp = s.call("POST", "/api/v1/images/import", tok, "junk", nil)
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
			t.Errorf("import with token %q: %d", tok, resp.StatusCode)
		}
	}
	for body, code := range map[string]string{
		`{"images":[]}`:                "invalid_request",
		`{"images":["Not An Image"]}`:  "invalid_request",
		`{"images":["ghcr.io/x/y:1"]}`: "invalid_request",
		`{"images":["web:1"],"x":1}`:   "invalid_request",
		`{"images":"web:1"}`:           "invalid_request",
		`not json`:                     "invalid_request",
	} {
		var e errorBody
		s.mustCall(http.StatusBadRequest, "POST", "/api/v1/images/preload", testAdmin, body, &e)
		if e.Error.Code != code {
			t.Errorf("preload %s: code %s, want %s", body, e.Error.Code, code)
		}
	}

	resp := s.call("POST", "/api/v1/images/preload", testAdmin, map[string]any{"images": []string{"web:1", "nosuch:1"}}, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("preload: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var lines []map[string]any
	dec := json.NewDecoder(resp.Body)
	for dec.More() {
		var l map[string]any
		if err := dec.Decode(&l); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	last := lines[len(lines)-1]
	if last["finished"] != true || !strings.Contains(last["error"].(string), "nosuch:1") {
		t.Errorf("last line %v, want finished with the error of nosuch:1", last)
	}
	wd, _ := web.Digest()
	var sawDigest, sawError bool
	for _, l := range lines {
		sawDigest = sawDigest || (l["image"] == "web:1" && l["digest"] == wd.String())
		sawError = sawError || (l["image"] == "nosuch:1" && strings.Contains(l["error"].(string), "no such image"))
	}
	if !sawDigest || !sawError {
		t.Errorf("lines %v: want web:1's digest and nosuch:1's error", lines)
	}

	var archive bytes.Buffer
	if err := testimages.Save(&archive, map[string]v1.Image{"sandlot-test/lab:1": web}); err != nil {
		t.Fatal(err)
	}
	var imported struct{ Images []string }
	s.mustCall(http.StatusOK, "POST", "/api/v1/images/import", testAdmin, archive.Bytes(), &imported)
	if !slices.Equal(imported.Images, []string{"sandlot-test/lab:1"}) {
		t.Errorf("imported %v", imported.Images)
	}
	for what, tc := range map[string]struct {
		body   []byte
		status int
		code   string
	}{
		"not a tar": {[]byte("hello"), http.StatusBadRequest, "not_an_archive"},
		"too large": {bytes.Repeat([]byte{0}, 9<<20), http.StatusRequestEntityTooLarge, "too_large"},
	} {
		var e errorBody
		s.mustCall(tc.status, "POST", "/api/v1/images/import", testAdmin, tc.body, &e)
		if e.Error.Code != tc.code {
			t.Errorf("import %s: code %s, want %s", what, e.Error.Code, tc.code)
		}
	}

	var list struct{ Images []images.Image }
	s.mustCall(http.StatusOK, "GET", "/api/v1/images", "", nil, &list)
	var names []string
	for _, img := range list.Images {
		names = append(names, img.Name+":"+img.Tag)
	}
	if !slices.Equal(names, []string{"sandlot-test/lab:1", "web:1"}) {
		t.Errorf("listed %v", names)
	}

	none := newServer(t, redistest.New(t), serverOpts{nodes: memnodes.New(netip.MustParseAddr("127.0.0.1"))})
	var e errorBody
	none.mustCall(http.StatusNotFound, "GET", "/api/v1/images", "", nil, &e)
	if e.Error.Code != "no_image_cache" {
		t.Errorf("no cache: code %s", e.Error.Code)
	}
}
