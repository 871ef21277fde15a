package testimages

import (
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Save writes a `docker save` archive of images, each under its tag ("web:1", "node1:5000/x:latest"), for
// `docker load` or Sandlot's import. Images that are the same are stored once.
func Save(w io.Writer, images map[string]v1.Image) error {
	refs := make(map[name.Reference]v1.Image, len(images))
	for ref, img := range images {
		tag, err := name.NewTag(ref)
		if err != nil {
			return fmt.Errorf("save %q: %w", ref, err)
		}
		refs[tag] = img
	}
	if err := tarball.MultiRefWrite(refs, w); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}
