package instance

import (
	"fmt"
	"path"
	"strings"
)

// MaxPath is the longest path CleanPath accepts, in bytes (Linux's PATH_MAX).
const MaxPath = 4096

// kernelRoots are the kernel's views into a node. Files there are not files: reading some of them blocks or never
// ends, and writing them changes the node's kernel settings, so the file functions refuse them.
var kernelRoots = []string{"/proc", "/sys", "/dev"}

// BadPathError is a path that CleanPath refuses; Rule says which rule it broke. It wraps ErrInvalid.
type BadPathError struct {
	Path string
	Rule string
}

func (e *BadPathError) Error() string {
	p := e.Path
	if len(p) > 200 {
		p = p[:200] + "..."
	}
	return fmt.Sprintf("bad path %q: %s", p, e.Rule)
}

func (e *BadPathError) Unwrap() error { return ErrInvalid }

// CleanPath checks a path in a node that a client gave and returns it cleaned. The path must be absolute, at most
// MaxPath bytes, without NUL bytes, without any ".." element (refused rather than cleaned away: a client that sends
// one is confused or probing, and either way should be told), and not under /proc, /sys or /dev.
func CleanPath(p string) (string, error) {
	bad := func(rule string) (string, error) { return "", &BadPathError{Path: p, Rule: rule} }
	switch {
	case len(p) > MaxPath:
		return bad(fmt.Sprintf("must be at most %d bytes", MaxPath))
	case strings.IndexByte(p, 0) >= 0:
		return bad("must not contain a NUL byte")
	case !strings.HasPrefix(p, "/"):
		return bad("must be absolute (start with /)")
	}
	for _, elem := range strings.Split(p, "/") {
		if elem == ".." {
			return bad(`must not contain a ".." element`)
		}
	}
	clean := path.Clean(p)
	for _, root := range kernelRoots {
		if clean == root || strings.HasPrefix(clean, root+"/") {
			return bad("must not be under " + root + " (the kernel's files are out of reach)")
		}
	}
	return clean, nil
}
