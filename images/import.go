package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// ErrNotAnArchive is returned by Import for input that is not a `docker save` archive.
var ErrNotAnArchive = errors.New("not a `docker save` archive")

// Import puts the images of a `docker save` archive into the cache, under the names they have in it, and returns
// those names. Nodes pull them as they pull anything else; with no upstream (or the upstream down), they come from
// here. An image whose upload fails is not listed (its tag is written last).
func (c *Cache) Import(ctx context.Context, archive io.Reader) ([]string, error) {
	if err := ensureDir(filepath.Join(c.cfg.Dir, "tmp")); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Join(c.cfg.Dir, "tmp"), "import-*.tar")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := io.Copy(f, archive); err != nil {
		return nil, fmt.Errorf("read the archive: %w", err)
	}
	opener := func() (io.ReadCloser, error) { return os.Open(f.Name()) }
	entries, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotAnArchive, err)
	}
	var tagged []name.Tag
	for _, e := range entries {
		if len(e.RepoTags) == 0 {
			return nil, fmt.Errorf("%w: image %s in it has no name (save it as `docker save IMAGE:TAG`)", ErrNotAnArchive, e.Config)
		}
		for _, rt := range e.RepoTags {
			t, err := name.NewTag(rt)
			if err != nil {
				return nil, fmt.Errorf("%w: %q is not an image name", ErrNotAnArchive, rt)
			}
			if reg := t.RegistryStr(); reg != name.DefaultRegistry {
				return nil, fmt.Errorf("%s is on %s: the cache holds images of Docker Hub only", rt, reg)
			}
			tagged = append(tagged, t)
		}
	}
	_, store, release := c.registries()
	defer release()
	host := strings.TrimPrefix(store, "http://")
	var names []string
	for _, t := range tagged {
		img, err := tarball.Image(opener, &t)
		if err != nil {
			return names, fmt.Errorf("%w: %s: %v", ErrNotAnArchive, t, err)
		}
		if err := checkLayers(img); err != nil {
			return names, fmt.Errorf("%w: %s: %v", ErrNotAnArchive, t, err)
		}
		dst, err := name.NewTag(host+"/"+t.RepositoryStr()+":"+t.TagStr(), name.Insecure)
		if err != nil {
			return names, err
		}
		if err := remote.Write(dst, img, remote.WithContext(ctx)); err != nil {
			return names, fmt.Errorf("store %s: %w", t, err)
		}
		c.uses.touch(t.RepositoryStr(), t.TagStr())
		names = append(names, strings.TrimPrefix(t.Context().RepositoryStr(), "library/")+":"+t.TagStr())
	}
	return names, nil
}

// checkLayers reads the archive's manifest of img and its layers' digests, so that a damaged archive is refused
// before anything of it is stored.
func checkLayers(img v1.Image) error {
	if _, err := img.Manifest(); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		if _, err := l.Digest(); err != nil {
			return err
		}
	}
	return nil
}
