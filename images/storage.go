package images

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// The registries' storage, as distribution lays it out: blobs by digest, shared; repositories with links to the
// blobs they hold and their tags. Sandlot reads it to answer what is there, and removes repositories from it
// (with the registries stopped) to keep under the size cap.

func v2(storage string) string { return filepath.Join(storage, "docker", "registry", "v2") }

func blobData(storage, digest string) string {
	hex := strings.TrimPrefix(digest, "sha256:")
	return filepath.Join(v2(storage), "blobs", "sha256", hex[:2], hex, "data")
}

func repoDir(storage, repo string) string { return filepath.Join(v2(storage), "repositories", repo) }

// hasBlob says whether repo holds the blob (a node may fetch it from the store).
func hasBlob(storage, repo, digest string) bool {
	hex := strings.TrimPrefix(digest, "sha256:")
	if _, err := os.Stat(filepath.Join(repoDir(storage, repo), "_layers", "sha256", hex, "link")); err != nil {
		return false
	}
	_, err := os.Stat(blobData(storage, digest))
	return err == nil
}

// mountBlob links a blob another repository holds into repo, so that layers shared by images (a base image's)
// are fetched once.
func mountBlob(ctx context.Context, client *http.Client, storage, store, repo, digest string) error {
	if _, err := os.Stat(blobData(storage, digest)); err != nil {
		return err
	}
	hex := strings.TrimPrefix(digest, "sha256:")
	from := ""
	for _, r := range repositories(storage) {
		if _, err := os.Stat(filepath.Join(repoDir(storage, r), "_layers", "sha256", hex, "link")); err == nil {
			from = r
			break
		}
	}
	if from == "" {
		return fs.ErrNotExist
	}
	q := url.Values{"mount": {digest}, "from": {from}}
	_, err := do(ctx, client, http.MethodPost, store+"/v2/"+repo+"/blobs/uploads/?"+q.Encode(), nil, http.StatusCreated)
	return err
}

// repositories lists the repositories in the storage ("library/nginx"), in no order.
func repositories(storage string) []string {
	root := filepath.Join(v2(storage), "repositories")
	var repos []string
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), "_") {
			if d.Name() == "_manifests" {
				rel, _ := filepath.Rel(root, filepath.Dir(path))
				repos = append(repos, filepath.ToSlash(rel))
			}
			return fs.SkipDir
		}
		return nil
	})
	return repos
}

// tags maps each tag of repo to the digest of its manifest.
func tags(storage, repo string) map[string]string {
	dir := filepath.Join(repoDir(storage, repo), "_manifests", "tags")
	entries, _ := os.ReadDir(dir)
	out := map[string]string{}
	for _, e := range entries {
		link, err := os.ReadFile(filepath.Join(dir, e.Name(), "current", "link"))
		if err == nil {
			out[e.Name()] = strings.TrimSpace(string(link))
		}
	}
	return out
}

// manifest is the part of an image manifest or an index that says what it is made of.
type manifest struct {
	MediaType string       `json:"mediaType"`
	Config    *descriptor  `json:"config"`
	Layers    []descriptor `json:"layers"`
	Manifests []struct {
		descriptor
		Platform *struct {
			OS           string `json:"os"`
			Architecture string `json:"architecture"`
		} `json:"platform"`
	} `json:"manifests"`
}

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

func readManifest(storage, digest string) (manifest, error) {
	var m manifest
	if !validDigest(digest) {
		return m, errors.New("not a sha256 digest: " + digest)
	}
	b, err := os.ReadFile(blobData(storage, digest))
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(b, &m)
}

// image says what of the manifest at digest is in the storage: for an index, the first platform stored whole
// (linux/amd64 first). complete is false when a blob it needs is missing (a pull cut short): such an image is not
// there.
func image(storage, digest string) (platform string, size int64, blobs []string, complete bool) {
	m, err := readManifest(storage, digest)
	if err != nil {
		return "", 0, nil, false
	}
	if len(m.Manifests) > 0 {
		for _, amd64First := range []bool{true, false} {
			for _, child := range m.Manifests {
				p := child.Platform
				if p == nil || (amd64First != (p.OS == "linux" && p.Architecture == "amd64")) {
					continue
				}
				if _, size, blobs, ok := image(storage, child.Digest); ok {
					return p.OS + "/" + p.Architecture, size, append(blobs, digest, child.Digest), true
				}
			}
		}
		return "", 0, nil, false
	}
	if m.Config == nil {
		return "", 0, nil, false
	}
	blobs = []string{digest}
	for _, d := range append([]descriptor{*m.Config}, m.Layers...) {
		if !validDigest(d.Digest) {
			return "", 0, nil, false
		}
		if _, err := os.Stat(blobData(storage, d.Digest)); err != nil {
			return "", 0, nil, false
		}
		size += d.Size
		blobs = append(blobs, d.Digest)
	}
	return "", size, blobs, true
}

func validDigest(d string) bool {
	hex, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(hex) != 64 {
		return false
	}
	for _, c := range hex {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

// storedBytes is the size of every blob in the storage.
func storedBytes(storage string) int64 {
	var total int64
	_ = filepath.WalkDir(filepath.Join(v2(storage), "blobs"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}
