package testimages

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"path"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// entry is one file of a layer: a directory, a symlink (link set), or a regular file (body).
type entry struct {
	name string // path from the image's root, without a leading slash: "bin/busybox"
	mode int64
	dir  bool
	link string
	body []byte
}

func regular(name string, mode int64, body []byte) entry {
	return entry{name: name, mode: mode, body: body}
}

func symlink(name, target string) entry { return entry{name: name, mode: 0o777, link: target} }

func dir(name string, mode int64) entry { return entry{name: name, mode: mode, dir: true} }

// layer is a gzip-compressed layer of those entries, owned by root, dated 1970, with the directories that hold
// them (0755) before them. It is compressed once, here, at the level go-containerregistry uses by default, so
// that the same entries always give the same digest.
func layer(entries ...entry) (v1.Layer, error) {
	given := map[string]bool{}
	for _, e := range entries {
		given[e.name] = true
	}
	var all []entry
	for _, e := range entries {
		for d := path.Dir(e.name); d != "." && !given[d]; d = path.Dir(d) {
			given[d] = true
			all = append(all, dir(d, 0o755))
		}
	}
	// Sorted, a directory comes before what is in it.
	slices.SortFunc(all, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	all = append(all, entries...)

	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	for _, e := range all {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: created.Time, Format: tar.FormatPAX}
		switch {
		case e.dir:
			h.Typeflag, h.Name = tar.TypeDir, e.name+"/"
		case e.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	b := gz.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}
