package images

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// uses remembers when each repository, and each of its tags, was last pulled, in a file beside the storage (the
// registries do not keep that): the size cap takes the least recently used first, and `images list` shows it.
type uses struct {
	path string
	mu   sync.Mutex
	last map[string]time.Time // "library/nginx" and "library/nginx:alpine"
}

func loadUses(path string) (*uses, error) {
	u := &uses{path: path, last: map[string]time.Time{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return u, nil
	}
	if err != nil {
		return nil, fmt.Errorf("image cache: read last uses: %w", err)
	}
	if err := json.Unmarshal(b, &u.last); err != nil { // a damaged file costs the dates, nothing else
		u.last = map[string]time.Time{}
	}
	return u, nil
}

// touch records a pull of repo's manifest ref (a tag or a digest) now.
func (u *uses) touch(repo, ref string) {
	now := time.Now().UTC()
	u.mu.Lock()
	defer u.mu.Unlock()
	u.last[repo] = now
	if !validDigest(ref) {
		u.last[repo+":"+ref] = now
	}
}

func (u *uses) get(key string) (time.Time, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	t, ok := u.last[key]
	return t, ok
}

func (u *uses) forget(repo string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for k := range u.last {
		if k == repo || (len(k) > len(repo) && k[:len(repo)+1] == repo+":") {
			delete(u.last, k)
		}
	}
}

// save writes the file whole (a crash leaves the old one or the new one).
func (u *uses) save() error {
	u.mu.Lock()
	b, err := json.Marshal(u.last)
	u.mu.Unlock()
	if err != nil {
		return err
	}
	if err := ensureDir(filepath.Dir(u.path)); err != nil {
		return err
	}
	tmp := u.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, u.path)
}
