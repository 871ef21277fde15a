package instance

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Files in a node through the engine's API: what is written reads back byte for byte and is what the node's own
// tools see; big files stream; directories are made; modes and symlinks are kept; escaping paths, directories,
// missing files and failed writes are refused and change nothing.
func TestFiles(t *testing.T) {
	d := newDriver(t, NetworkBridge, nil)
	session, _ := newSession(t, d)
	createNodes(t, d, session, 1)
	ctx := testContext(t)
	write := func(p string, mode fs.FileMode, data []byte) error {
		return d.WriteFile(ctx, session, "node1", p, mode, int64(len(data)), bytes.NewReader(data))
	}
	read := func(p string) ([]byte, FileInfo, error) {
		rc, info, err := d.ReadFile(ctx, session, "node1", p)
		if err != nil {
			return nil, info, err
		}
		defer rc.Close()
		data, err := io.ReadAll(rc)
		return data, info, err
	}
	mustWrite := func(t *testing.T, p string, mode fs.FileMode, data []byte) {
		t.Helper()
		if err := write(p, mode, data); err != nil {
			t.Fatal(err)
		}
	}
	mustRead := func(t *testing.T, p string) ([]byte, FileInfo) {
		t.Helper()
		data, info, err := read(p)
		if err != nil {
			t.Fatal(err)
		}
		return data, info
	}
	node := func(t *testing.T, script string) string { t.Helper(); return sh(t, d, session, "node1", script) }

	t.Run("every byte value", func(t *testing.T) {
		var data []byte
		for range 3 {
			for b := range 256 {
				data = append(data, byte(b))
			}
		}
		before := time.Now()
		mustWrite(t, "/root/bin.dat", 0, data)
		got, info := mustRead(t, "/root/bin.dat")
		if !bytes.Equal(got, data) {
			t.Fatalf("read back %d bytes that differ from the %d written", len(got), len(data))
		}
		if info.Path != "/root/bin.dat" || info.Size != 768 || info.Mode != 0o644 ||
			info.ModTime.Before(before.Add(-time.Minute)) {
			t.Fatalf("info %+v", info)
		}
		sum := sha256.Sum256(data)
		if got := node(t, "sha256sum /root/bin.dat | cut -d' ' -f1"); got != hex.EncodeToString(sum[:]) {
			t.Fatalf("the node's sha256sum is %s", got)
		}
		mustWrite(t, "/root/empty", 0, nil)
		if got, info := mustRead(t, "/root/empty"); len(got) != 0 || info.Size != 0 {
			t.Fatalf("empty file read back as %q, %+v", got, info)
		}
		node(t, "test -f /root/empty && ! test -s /root/empty")
	})

	// Writing and reading 8 MiB allocates a small part of that: the content streams, it is never held whole.
	t.Run("big files stream", func(t *testing.T) {
		const size = 8 << 20
		content := func() io.Reader { return io.LimitReader(rand.NewChaCha8([32]byte{1}), size) }
		var err error
		wrote := allocated(func() { err = d.WriteFile(ctx, session, "node1", "/root/big/file.bin", 0, size, content()) })
		if err != nil {
			t.Fatal(err)
		}
		want, got := sha256.New(), sha256.New()
		_, _ = io.Copy(want, content())
		var n int64
		var info FileInfo
		read := allocated(func() {
			var rc io.ReadCloser
			if rc, info, err = d.ReadFile(ctx, session, "node1", "/root/big/file.bin"); err == nil {
				n, err = io.Copy(got, rc)
				rc.Close()
			}
		})
		if err != nil || n != size || info.Size != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
			t.Fatalf("read back %d bytes (info %d), err %v, same bytes: %v", n, info.Size, err,
				bytes.Equal(got.Sum(nil), want.Sum(nil)))
		}
		if got := node(t, "sha256sum /root/big/file.bin | cut -d' ' -f1"); got != hex.EncodeToString(want.Sum(nil)) {
			t.Fatalf("the node's sha256sum is %s", got)
		}
		t.Logf("allocated %d KiB to write and %d KiB to read %d MiB", wrote>>10, read>>10, size>>20)
		if wrote > size/4 || read > size/4 {
			t.Fatalf("allocated %d bytes to write and %d to read a file of %d", wrote, read, size)
		}
	})

	t.Run("nested directories are made", func(t *testing.T) {
		mustWrite(t, "/root/a/b/c/d.txt", 0, []byte("deep"))
		node(t, "test -d /root/a/b/c && test \"$(cat /root/a/b/c/d.txt)\" = deep")
		// Odd names are names: spaces, tabs, newlines, quotes and a leading dash.
		mustWrite(t, "/root/odd dir/-n\t'x'\n\"y\"", 0, []byte("odd"))
		if got, _ := mustRead(t, "/root/odd dir/-n\t'x'\n\"y\""); string(got) != "odd" {
			t.Fatalf("odd name read back %q", got)
		}
	})

	t.Run("mode is kept", func(t *testing.T) {
		mustWrite(t, "/root/run.sh", 0o755, []byte("#!/bin/sh\necho hi\n"))
		if got := node(t, "/root/run.sh"); got != "hi" {
			t.Fatalf("run.sh printed %q", got)
		}
		mustWrite(t, "/root/run.sh", 0, []byte("#!/bin/sh\necho bye\n"))
		if got := node(t, "stat -c %a /root/run.sh && /root/run.sh"); got != "755\nbye" {
			t.Fatalf("after a save: %q", got)
		}
		if _, info := mustRead(t, "/root/run.sh"); info.Mode != 0o755 {
			t.Fatalf("mode %s", info.Mode)
		}
		mustWrite(t, "/root/run.sh", 0o600, []byte("x"))
		if got := node(t, "stat -c %a /root/run.sh"); got != "600" {
			t.Fatalf("mode %s after writing with 0600", got)
		}
	})

	t.Run("overwrite and symlinks", func(t *testing.T) {
		mustWrite(t, "/root/o.txt", 0, []byte("a longer first content"))
		mustWrite(t, "/root/o.txt", 0, []byte("short"))
		if got, _ := mustRead(t, "/root/o.txt"); string(got) != "short" {
			t.Fatalf("after overwriting: %q", got)
		}
		node(t, "ln -s /root/o.txt /root/abs-link && ln -s o.txt /root/rel-link")
		for _, link := range []string{"/root/abs-link", "/root/rel-link"} {
			if got, info := mustRead(t, link); string(got) != "short" || info.Path != link {
				t.Fatalf("%s reads %q, %+v", link, got, info)
			}
		}
		mustWrite(t, "/root/rel-link", 0, []byte("through the link"))
		if got := node(t, "test -L /root/rel-link && cat /root/o.txt"); got != "through the link" {
			t.Fatalf("writing through a link: o.txt holds %q", got)
		}
	})

	t.Run("listing", func(t *testing.T) {
		entries, truncated, err := d.ListDir(ctx, session, "node1", "/root", 0, 0)
		if err != nil || truncated {
			t.Fatalf("truncated %v, err %v", truncated, err)
		}
		byPath := map[string]FileEntry{}
		var order []string
		for _, e := range entries {
			byPath[e.Path] = e
			order = append(order, e.Path)
		}
		for p, typ := range map[string]string{"/root/a": "dir", "/root/a/b": "dir", "/root/a/b/c": "dir",
			"/root/bin.dat": "file", "/root/abs-link": "symlink", "/root/odd dir/-n\t'x'\n\"y\"": "file"} {
			if byPath[p].Type != typ {
				t.Errorf("%q: %+v, want a %s", p, byPath[p], typ)
			}
		}
		if e := byPath["/root/bin.dat"]; e.Size != 768 || time.Since(e.ModTime) > 10*time.Minute {
			t.Errorf("bin.dat: %+v", e)
		}
		if _, ok := byPath["/root/a/b/c/d.txt"]; ok {
			t.Error("the default depth is 3, but a 4th level is listed")
		}
		// Tree order: a directory, then what it holds, then its next sibling.
		ia, ic, iabs := index(order, "/root/a"), index(order, "/root/a/b/c"), index(order, "/root/abs-link")
		if !(ia < ic && ic < iabs) {
			t.Errorf("order: %q", order)
		}

		entries, truncated, err = d.ListDir(ctx, session, "node1", "/root", 1, 3)
		if err != nil || !truncated || len(entries) != 3 {
			t.Fatalf("limit 3: %d entries, truncated %v, err %v", len(entries), truncated, err)
		}
		for _, e := range entries {
			if strings.Count(e.Path, "/") != 2 {
				t.Errorf("depth 1 lists %q", e.Path)
			}
		}
		// Listing / does not enter the kernel's file systems.
		entries, _, err = d.ListDir(ctx, session, "node1", "/", 2, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Path == "/proc" || strings.HasPrefix(e.Path, "/proc/") || strings.HasPrefix(e.Path, "/sys/") {
				t.Fatalf("listing / shows %s", e.Path)
			}
		}
	})

	t.Run("escaping paths are refused and touch nothing", func(t *testing.T) {
		node(t, "ln -sfn /proc/version /root/kernel && ln -sfn /sys /root/sys-link")
		for _, p := range []string{"/root/../etc/sandlot-escape", "etc/sandlot-escape", "../sandlot-escape", "./sandlot-escape", "", "/root/x/../../sandlot-escape",
			"/proc/sys/kernel/hostname", "/dev/sandlot-escape", "/sys/sandlot-escape", "/root/sandlot-escape\x00", "/root/kernel", "/root/sys-link"} {
			var bad *BadPathError
			if err := write(p, 0, []byte("sandlot-escape")); !errors.As(err, &bad) {
				t.Errorf("write %q: %v", p, err)
			}
			if _, _, err := read(p); !errors.As(err, &bad) {
				t.Errorf("read %q: %v", p, err)
			}
			if _, _, err := d.ListDir(ctx, session, "node1", p, 1, 0); !errors.As(err, &bad) {
				t.Errorf("list %q: %v", p, err)
			}
		}
		if got := node(t, "find / -xdev -name '*sandlot-escape*' | wc -l; hostname"); got != "0\nnode1" {
			t.Fatalf("after the refusals: %q", got)
		}
	})

	t.Run("directories and missing files", func(t *testing.T) {
		if _, _, err := read("/root/a"); !errors.Is(err, ErrIsDir) {
			t.Errorf("read a directory: %v", err)
		}
		if err := write("/root/a", 0, []byte("x")); !errors.Is(err, ErrIsDir) {
			t.Errorf("write over a directory: %v", err)
		}
		if err := write("/", 0, []byte("x")); !errors.Is(err, ErrIsDir) {
			t.Errorf("write over /: %v", err)
		}
		node(t, "test -d /root/a/b/c")
		for _, p := range []string{"/root/o.txt/x", "/root/o.txt/x/y/z"} {
			if err := write(p, 0, []byte("x")); !errors.Is(err, ErrNotDir) {
				t.Errorf("write under a file: %v", err)
			}
			if _, _, err := read(p); !errors.Is(err, ErrNotFound) {
				t.Errorf("read under a file: %v", err)
			}
		}
		if _, _, err := d.ListDir(ctx, session, "node1", "/root/o.txt", 0, 0); !errors.Is(err, ErrNotDir) {
			t.Errorf("list a file: %v", err)
		}
		if _, _, err := read("/root/nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("read a missing file: %v", err)
		}
		if _, _, err := d.ListDir(ctx, session, "node1", "/nope", 0, 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("list a missing directory: %v", err)
		}
		if _, _, err := d.ReadFile(ctx, session, "node9", "/root/o.txt"); !errors.Is(err, ErrNotFound) {
			t.Errorf("read in a missing node: %v", err)
		}
		node(t, "mkfifo /root/fifo")
		if _, _, err := read("/root/fifo"); !errors.Is(err, ErrInvalid) {
			t.Errorf("read a fifo: %v", err)
		}
	})

	t.Run("a failed write keeps the old file", func(t *testing.T) {
		mustWrite(t, "/root/keep.txt", 0, []byte("old"))
		failing := io.MultiReader(strings.NewReader(strings.Repeat("n", 1000)), errReader{errors.New("client went away")})
		if err := d.WriteFile(ctx, session, "node1", "/root/keep.txt", 0, 5000, failing); err == nil ||
			!strings.Contains(err.Error(), "client went away") {
			t.Fatalf("write from a failing reader: %v", err)
		}
		if err := d.WriteFile(ctx, session, "node1", "/root/keep.txt", 0, 5000, strings.NewReader("short")); err == nil {
			t.Fatal("write of fewer bytes than announced succeeded")
		}
		if got, _ := mustRead(t, "/root/keep.txt"); string(got) != "old" {
			t.Fatalf("after failed writes: %q", got)
		}
		if got := node(t, "find / -xdev -name '.sandlot-upload-*' | wc -l"); got != "0" {
			t.Fatalf("%s temporary files left", got)
		}
	})

	t.Run("stopped node", func(t *testing.T) {
		if err := d.Stop(ctx, session, "node1"); err != nil {
			t.Fatal(err)
		}
		if d.nodeDisks {
			if _, _, err := d.ReadFile(ctx, session, "node1", "/root/keep.txt"); !errors.Is(err, ErrNotRunning) {
				t.Fatalf("read in a stopped node whose disk is not mounted: %v", err)
			}
		} else if got, _ := mustRead(t, "/root/keep.txt"); string(got) != "old" {
			t.Fatalf("read in a stopped node: %q", got)
		}
		if err := write("/root/keep.txt", 0, []byte("new")); !errors.Is(err, ErrNotRunning) {
			t.Fatalf("write in a stopped node: %v", err)
		}
		if _, _, err := d.ListDir(ctx, session, "node1", "/root", 0, 0); !errors.Is(err, ErrNotRunning) {
			t.Fatalf("list in a stopped node: %v", err)
		}
		if _, err := d.Exec(ctx, session, "node1", []string{"true"}, ExecOptions{}); !errors.Is(err, ErrNotRunning) {
			t.Fatalf("exec in a stopped node: %v", err)
		}
	})
}

func index(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// allocated is how many bytes of heap f allocated. Tests that run alongside add theirs, so only a margin tells.
func allocated(f func()) uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	before := m.TotalAlloc
	f()
	runtime.ReadMemStats(&m)
	return m.TotalAlloc - before
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
