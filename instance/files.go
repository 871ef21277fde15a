package instance

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
)

// Files in a node go only through the engine's API: the archive endpoints (CopyToContainer, CopyFromContainer and
// their stat) and exec. The engine resolves paths and symlinks inside the container's own root, so no path a
// client sends can reach the host's files, whatever links the learner made.

// FileInfo describes a regular file read from a node.
type FileInfo struct {
	Path    string // the path asked for, cleaned
	Size    int64
	Mode    fs.FileMode
	ModTime time.Time
}

// FileEntry is one entry of a directory listing.
type FileEntry struct {
	Path    string    `json:"path"`
	Type    string    `json:"type"` // file, dir, symlink or other
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
}

// The defaults of ListDir.
const (
	DefaultListDepth = 3
	DefaultListLimit = 2000
)

// WriteFile writes size bytes from r to path p in a running node and replaces the file whole or not at all: the
// bytes stream (never held in memory) through the engine's archive API into a temporary file beside p, which is
// then renamed over p. Missing parent directories are made. A symlink is written through to what it points at.
// mode 0 keeps the mode of the file replaced (0644 for a new one). Writing over a directory is ErrIsDir; a parent
// that is not a directory, ErrNotDir. r must yield at least size bytes, and quickly: the engine holds the node's
// lock while it takes the content in, so the node's execs and new terminals wait. Give it a file or memory, never a
// client's connection.
func (d *Driver) WriteFile(ctx context.Context, session, name, p string, mode fs.FileMode, size int64, r io.Reader) error {
	p, err := CleanPath(p)
	if err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("%w: size %d", ErrInvalid, size)
	}
	id, err := d.runningNode(ctx, session, name)
	if err != nil {
		return err
	}
	target, st, err := d.stat(ctx, id, p)
	switch {
	case err == nil && st.Mode.IsDir():
		return fmt.Errorf("%w: %s, so it cannot be written as a file", ErrIsDir, p)
	case err == nil && mode == 0:
		mode = st.Mode.Perm()
	case errors.Is(err, ErrNotFound):
		// A new file; its directory may be new too. CopyToContainer needs the directory to exist.
		var failed *exitError
		if err := d.sh(ctx, session, name, id, `mkdir -p -- "$1"`, path.Dir(target)); errors.As(err, &failed) {
			return fmt.Errorf("%w: cannot make the directory of %s: %v", ErrNotDir, p, err)
		} else if err != nil {
			return err
		}
	case err != nil:
		return err
	}
	if mode == 0 {
		mode = 0o644
	}
	dir := path.Dir(target)
	tmp := path.Join(dir, ".sandlot-upload-"+randomHex(8))
	if err := d.copyTo(ctx, id, tmp, mode, size, r); err != nil {
		d.removeQuietly(ctx, session, name, id, tmp)
		return fmt.Errorf("write %s in %s of session %s: %w", p, name, session, err)
	}
	// -T: never move the file into a directory that appeared at p meanwhile.
	if err := d.sh(ctx, session, name, id, `mv -fT -- "$1" "$2"`, tmp, target); err != nil {
		d.removeQuietly(ctx, session, name, id, tmp)
		return fmt.Errorf("write %s in %s of session %s: %w", p, name, session, err)
	}
	return nil
}

// copyTo streams a tar of one file through a pipe into the node, so that memory use does not depend on size.
func (d *Driver) copyTo(ctx context.Context, id, p string, mode fs.FileMode, size int64, r io.Reader) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := writeTar(pw, path.Base(p), mode, size, r)
		pw.CloseWithError(err)
		done <- err
	}()
	err := d.docker.CopyToContainer(ctx, id, path.Dir(p), pr, container.CopyToContainerOptions{})
	pr.CloseWithError(errEngineStopped) // ends the writer if the engine answered before reading everything
	if werr := <-done; werr != nil && !errors.Is(werr, errEngineStopped) {
		return werr // the content failed first; the engine's error would only echo it
	}
	return err
}

var errEngineStopped = errors.New("the engine stopped reading")

func writeTar(w io.Writer, name string, mode fs.FileMode, size int64, r io.Reader) error {
	tw := tar.NewWriter(w)
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(mode.Perm()), Size: size, ModTime: time.Now()}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, r, size); err != nil {
		switch {
		case errors.Is(err, errEngineStopped):
			return err
		case errors.Is(err, io.EOF):
			return fmt.Errorf("the content ended before its %d bytes", size)
		}
		return fmt.Errorf("read the content: %w", err)
	}
	return tw.Close()
}

// removeQuietly removes a temporary file after a failed write, even when ctx is done. Failing to is not worth
// reporting over the error that caused it.
func (d *Driver) removeQuietly(ctx context.Context, session, name, id, p string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = d.sh(ctx, session, name, id, `rm -f -- "$1"`, p)
}

// ReadFile opens the regular file at path p in a node and returns its bytes as they stream from the engine. A
// symlink is followed. The caller must close the reader. A directory is ErrIsDir; a missing file, ErrNotFound;
// anything else that is not a regular file, ErrInvalid. A stopped node can be read unless it has a disk of its own
// (which is mounted only while it runs): then it is ErrNotRunning.
func (d *Driver) ReadFile(ctx context.Context, session, name, p string) (io.ReadCloser, FileInfo, error) {
	p, err := CleanPath(p)
	if err != nil {
		return nil, FileInfo{}, err
	}
	nodeID := d.containerID
	if d.nodeDisks {
		nodeID = d.runningNode
	}
	id, err := nodeID(ctx, session, name)
	if err != nil {
		return nil, FileInfo{}, err
	}
	target, st, err := d.stat(ctx, id, p)
	switch {
	case err != nil:
		return nil, FileInfo{}, err
	case st.Mode.IsDir():
		return nil, FileInfo{}, fmt.Errorf("%w: %s", ErrIsDir, p)
	case !st.Mode.IsRegular():
		return nil, FileInfo{}, fmt.Errorf("%w: %s is not a regular file (%s)", ErrInvalid, p, st.Mode.Type())
	}
	rc, _, err := d.docker.CopyFromContainer(ctx, id, target)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, FileInfo{}, fmt.Errorf("%w: %s in %s", ErrNotFound, p, name)
		}
		return nil, FileInfo{}, fmt.Errorf("read %s in %s of session %s: %w", p, name, session, err)
	}
	tr := tar.NewReader(rc)
	hdr, err := tr.Next()
	if err == nil && hdr.Typeflag != tar.TypeReg {
		err = fmt.Errorf("the engine sent a %q entry, not a file", hdr.Typeflag)
	}
	if err != nil {
		rc.Close()
		return nil, FileInfo{}, fmt.Errorf("read %s in %s of session %s: %w", p, name, session, err)
	}
	return fileReader{Reader: tr, Closer: rc}, FileInfo{Path: p, Size: hdr.Size, Mode: st.Mode, ModTime: st.Mtime}, nil
}

// fileReader reads one file's bytes out of the engine's tar stream; closing it closes the stream.
type fileReader struct {
	io.Reader
	io.Closer
}

// listScript lists a directory: one NUL-terminated record per entry (depth, type, size, mtime, path; the path
// last, as it may hold tabs), shallow entries first so that a truncated listing still shows the top levels.
// The kernel's file systems are not entered.
const listScript = `find -H "$1" -mindepth 1 -maxdepth "$2" \( -path /proc -o -path /sys -o -path /dev \) -prune ` +
	`-o -printf '%d\t%y\t%s\t%T@\t%p\0' | sort -z -s -n -k1,1 | head -z -n "$3"`

// ListDir lists the directory at path p in a running node down to depth levels (DefaultListDepth if 0), at most
// limit entries (DefaultListLimit if 0), in tree order: each directory followed by what it holds, siblings by name.
// truncated says entries were left out; the shallowest are kept. A missing directory is ErrNotFound; a path that
// is not a directory, ErrNotDir.
func (d *Driver) ListDir(ctx context.Context, session, name, p string, depth, limit int) ([]FileEntry, bool, error) {
	p, err := CleanPath(p)
	if err != nil {
		return nil, false, err
	}
	if depth <= 0 {
		depth = DefaultListDepth
	}
	if limit <= 0 {
		limit = DefaultListLimit
	}
	id, err := d.runningNode(ctx, session, name)
	if err != nil {
		return nil, false, err
	}
	if _, st, err := d.stat(ctx, id, p); err != nil {
		return nil, false, err
	} else if !st.Mode.IsDir() {
		return nil, false, fmt.Errorf("%w: %s", ErrNotDir, p)
	}
	res, err := d.execIn(ctx, session, name, id,
		[]string{"sh", "-c", listScript, "sh", p, strconv.Itoa(depth), strconv.Itoa(limit + 1)},
		ExecOptions{MaxOutput: (limit + 1) * (MaxPath + 64)})
	if err != nil {
		return nil, false, err
	}
	if res.ExitCode != 0 {
		return nil, false, fmt.Errorf("list %s in %s of session %s: exit %d: %s", p, name, session, res.ExitCode,
			strings.TrimSpace(string(res.Stderr)))
	}
	records := strings.Split(string(res.Stdout), "\x00")
	records = records[:len(records)-1] // what follows the last NUL: nothing, or a record cut short
	truncated := res.Truncated || len(records) > limit
	if len(records) > limit {
		records = records[:limit]
	}
	entries := make([]FileEntry, 0, len(records))
	for _, rec := range records {
		e, err := parseEntry(rec)
		if err != nil {
			return nil, false, fmt.Errorf("list %s in %s of session %s: %w", p, name, session, err)
		}
		entries = append(entries, e)
	}
	// '/' sorts before every other byte once it is NUL, which keeps a directory's entries right after it.
	key := func(p string) string { return strings.ReplaceAll(p, "/", "\x00") }
	slices.SortFunc(entries, func(a, b FileEntry) int { return strings.Compare(key(a.Path), key(b.Path)) })
	return entries, truncated, nil
}

// parseEntry reads one record of listScript.
func parseEntry(rec string) (FileEntry, error) {
	f := strings.SplitN(rec, "\t", 5)
	if len(f) != 5 {
		return FileEntry{}, fmt.Errorf("malformed listing record %q", rec)
	}
	size, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return FileEntry{}, fmt.Errorf("malformed size in %q", rec)
	}
	secs, frac, _ := strings.Cut(f[3], ".")
	sec, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return FileEntry{}, fmt.Errorf("malformed mtime in %q", rec)
	}
	nsec, _ := strconv.ParseInt((frac + "000000000")[:9], 10, 64)
	types := map[string]string{"f": "file", "d": "dir", "l": "symlink"}
	typ, ok := types[f[1]]
	if !ok {
		typ = "other"
	}
	return FileEntry{Path: f[4], Type: typ, Size: size, ModTime: time.Unix(sec, nsec).UTC()}, nil
}

// stat describes path p in a container. A symlink is followed to what it points at (the engine resolves it within
// the container), and that path must pass CleanPath too; stat returns it with what it found there.
func (d *Driver) stat(ctx context.Context, id, p string) (string, container.PathStat, error) {
	st, err := d.docker.ContainerStatPath(ctx, id, p)
	if err == nil && st.Mode&fs.ModeSymlink != 0 {
		target, cerr := CleanPath(st.LinkTarget)
		if cerr != nil {
			return "", st, fmt.Errorf("%s is a symlink: %w", p, cerr)
		}
		p = target
		st, err = d.docker.ContainerStatPath(ctx, id, p)
	}
	switch {
	case err == nil:
		return p, st, nil
	case cerrdefs.IsNotFound(err), d.throughFile(ctx, id, p):
		return p, st, fmt.Errorf("%w: %s", ErrNotFound, p)
	}
	return p, st, fmt.Errorf("stat %s: %w", p, err)
}

// throughFile reports whether a path that the engine failed to stat goes through a file or a missing directory:
// the engine answers that (ENOTDIR) with a bare 500, like a real failure. Only the nearest few ancestors are asked,
// so that a long path costs a bounded number of calls.
func (d *Driver) throughFile(ctx context.Context, id, p string) bool {
	for dir, i := path.Dir(p), 0; dir != "/" && i < 8; dir, i = path.Dir(dir), i+1 {
		st, err := d.docker.ContainerStatPath(ctx, id, dir)
		if cerrdefs.IsNotFound(err) || (err == nil && st.Mode.Type() == 0) {
			return true // missing, or a regular file
		}
		if err == nil {
			return false // a directory, or a symlink (the engine would have followed it)
		}
	}
	return false
}

// runningNode is the container of a node that must be running: writing and listing need its shell.
func (d *Driver) runningNode(ctx context.Context, session, name string) (string, error) {
	if err := checkSession(session); err != nil {
		return "", err
	}
	in, err := d.Get(ctx, session, name)
	if err != nil {
		return "", err
	}
	if in.Status != "running" {
		return "", fmt.Errorf("%w: %s in session %s is %s (start it first)", ErrNotRunning, name, session, in.Status)
	}
	return in.ContainerID, nil
}

// sh runs a shell script with arguments ($1, ...) in a node; a non-zero exit is an *exitError. Arguments are never
// part of the script, so no path is ever parsed by the shell.
func (d *Driver) sh(ctx context.Context, session, name, id, script string, args ...string) error {
	res, err := d.execIn(ctx, session, name, id, append([]string{"sh", "-c", script, "sh"}, args...), ExecOptions{})
	if err == nil && res.ExitCode != 0 {
		err = &exitError{stderr: strings.TrimSpace(string(res.Stderr))}
	}
	return err
}

// exitError is a command that ran in a node and failed, as opposed to one the engine could not run.
type exitError struct{ stderr string }

func (e *exitError) Error() string { return e.stderr }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
