package images

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Collected says what Collect did.
type Collected struct {
	Before, After int64    // bytes stored
	Removed       []string // repositories taken out, least recently used first
}

// Collect keeps the cache under its size cap: while it holds more than the cap, the least recently used
// repositories go (whole: distribution 2.8's garbage collection cannot take single tags of multi-platform images
// safely), then the registries stop for a moment while `docker-registry garbage-collect` deletes the blobs nothing
// refers to any more. Nodes pulling meanwhile are answered "unavailable", and their engines go to Docker Hub.
func (c *Cache) Collect(ctx context.Context) (Collected, error) {
	c.collecting.Lock()
	defer c.collecting.Unlock()
	r := Collected{Before: storedBytes(c.storage)}
	r.After = r.Before
	if c.cfg.MaxBytes <= 0 || r.Before <= c.cfg.MaxBytes {
		return r, nil
	}
	type repoUse struct {
		name  string
		last  time.Time
		blobs []string
	}
	var repos []repoUse
	for _, name := range repositories(c.storage) {
		last, ok := c.uses.get(name)
		if !ok {
			if info, err := os.Stat(repoDir(c.storage, name)); err == nil {
				last = info.ModTime()
			}
		}
		repos = append(repos, repoUse{name: name, last: last, blobs: revisionBlobs(c.storage, name)})
	}
	slices.SortFunc(repos, func(a, b repoUse) int { return cmp.Or(a.last.Compare(b.last), cmp.Compare(a.name, b.name)) })
	target := c.cfg.MaxBytes * 9 / 10 // some room, so that the next pull does not collect again at once
	kept := func(from int) int64 {
		seen := map[string]bool{}
		var total int64
		for _, repo := range repos[from:] {
			for _, d := range repo.blobs {
				if !seen[d] {
					seen[d] = true
					if info, err := os.Stat(blobData(c.storage, d)); err == nil {
						total += info.Size()
					}
				}
			}
		}
		return total
	}
	drop := 0
	for drop < len(repos) && kept(drop) > target {
		drop++
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopRegistries()
	for _, repo := range repos[:drop] {
		if err := os.RemoveAll(repoDir(c.storage, repo.name)); err != nil {
			return r, fmt.Errorf("remove %s: %w", repo.name, err)
		}
		c.uses.forget(repo.name)
		r.Removed = append(r.Removed, repo.name)
	}
	out, gcErr := exec.CommandContext(ctx, "docker-registry", "garbage-collect",
		filepath.Join(c.cfg.Dir, "store", "config.yml")).CombinedOutput()
	if err := c.startRegistries(context.WithoutCancel(ctx)); err != nil {
		return r, fmt.Errorf("image cache: start again after collecting: %w", err)
	}
	r.After = storedBytes(c.storage)
	if gcErr != nil {
		return r, fmt.Errorf("docker-registry garbage-collect: %v: %s", gcErr, lastLine(string(out)))
	}
	c.cfg.Log.Info("image cache: kept under its size cap", "cap", c.cfg.MaxBytes, "before", r.Before,
		"after", r.After, "removed", r.Removed)
	return r, nil
}

// revisionBlobs lists the blobs repo's manifests refer to (the manifests included), as the garbage collection
// marks them.
func revisionBlobs(storage, repo string) []string {
	dir := filepath.Join(repoDir(storage, repo), "_manifests", "revisions", "sha256")
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		digest := "sha256:" + e.Name()
		out = append(out, digest)
		m, err := readManifest(storage, digest)
		if err != nil {
			continue
		}
		if m.Config != nil {
			out = append(out, m.Config.Digest)
		}
		for _, l := range m.Layers {
			out = append(out, l.Digest)
		}
	}
	return out
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
