package images

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// Image is an image the cache holds whole.
type Image struct {
	Name     string     `json:"name"` // as docker names it: "nginx", "training/whoami"
	Tag      string     `json:"tag"`
	Digest   string     `json:"digest"`             // of the tag's manifest (an index for multi-platform images)
	Platform string     `json:"platform,omitempty"` // the platform stored, for an index
	Size     int64      `json:"size"`               // bytes of its compressed layers and configuration
	LastUsed *time.Time `json:"last_used,omitempty"`
}

// List returns the tagged images the cache holds whole, by name and tag; an image some blob of which is missing (a
// pull cut short) is not listed.
func (c *Cache) List() []Image {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []Image
	for _, repo := range repositories(c.storage) {
		for tag, digest := range tags(c.storage, repo) {
			platform, size, _, ok := image(c.storage, digest)
			if !ok {
				continue
			}
			img := Image{Name: strings.TrimPrefix(repo, "library/"), Tag: tag, Digest: digest, Platform: platform, Size: size}
			if t, ok := c.uses.get(repo + ":" + tag); ok {
				img.LastUsed = &t
			}
			out = append(out, img)
		}
	}
	slices.SortFunc(out, func(a, b Image) int { return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Tag, b.Tag)) })
	return out
}

// Has says whether the cache holds ref (a name as docker takes it) whole.
func (c *Cache) Has(ref string) bool {
	repo, tag, err := dockerHubRef(ref)
	if err != nil {
		return false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	digest := tag
	if !validDigest(tag) {
		digest = tags(c.storage, repo)[tag]
	}
	_, _, _, ok := image(c.storage, digest)
	return ok && digest != ""
}
