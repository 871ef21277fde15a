package instance

import (
	"errors"
	"path"
	"strings"
	"testing"
)

func TestCleanPath(t *testing.T) {
	tests := []struct {
		in   string
		want string
		rule string // part of the refusal's message; "" when the path is accepted
	}{
		{"/root/docker-compose.yml", "/root/docker-compose.yml", ""},
		{"/", "/", ""},
		{"/root/", "/root", ""},
		{"//root///a/./b", "/root/a/b", ""},
		{"/root/a..b/..c/d..", "/root/a..b/..c/d..", ""},
		{"/root/.bashrc", "/root/.bashrc", ""},
		{"/root/with space/tab\there", "/root/with space/tab\there", ""},
		{"/procfs/x", "/procfs/x", ""},
		{"/root/proc", "/root/proc", ""},
		{"/devices", "/devices", ""},
		{"/" + strings.Repeat("a", MaxPath-1), "/" + strings.Repeat("a", MaxPath-1), ""},
		{"", "", "absolute"},
		{"root/x", "", "absolute"},
		{"./x", "", "absolute"},
		{"../etc/passwd", "", "absolute"},
		{"/root/../etc/passwd", "", `".."`},
		{"/..", "", `".."`},
		{"/root/..", "", `".."`},
		{"/root/x/../../..", "", `".."`},
		{"/root/a\x00b", "", "NUL"},
		{"/proc", "", "under /proc"},
		{"/proc/1/environ", "", "under /proc"},
		{"//proc/self", "", "under /proc"},
		{"/./proc/self", "", "under /proc"},
		{"/sys/fs/cgroup", "", "under /sys"},
		{"/dev/", "", "under /dev"},
		{"/dev/sda", "", "under /dev"},
		{"/" + strings.Repeat("a", MaxPath), "", "at most 4096 bytes"},
	}
	for _, tt := range tests {
		got, err := CleanPath(tt.in)
		if tt.rule == "" {
			if err != nil || got != tt.want {
				t.Errorf("CleanPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			continue
		}
		var bad *BadPathError
		if !errors.As(err, &bad) || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.rule) || got != "" {
			t.Errorf("CleanPath(%q) = %q, %v; want a refusal saying %q", tt.in, got, err, tt.rule)
		}
	}
}

// Whatever a client sends, an accepted path is absolute, clean, free of ".." and NUL, short enough and outside the
// kernel's file systems, and cleaning it again changes nothing.
func FuzzCleanPath(f *testing.F) {
	for _, seed := range []string{"/root/a", "/", "", "..", "/root/../x", "/proc/self", "//dev/", "/a/./b/", "a/b",
		"/sys", "/a\x00", "/.../x", "/root/..x"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := CleanPath(p)
		if err != nil {
			if got != "" || !errors.Is(err, ErrInvalid) {
				t.Fatalf("CleanPath(%q) = %q, %v", p, got, err)
			}
			return
		}
		if !strings.HasPrefix(got, "/") || path.Clean(got) != got || len(got) > MaxPath ||
			strings.IndexByte(got, 0) >= 0 {
			t.Fatalf("CleanPath(%q) = %q", p, got)
		}
		for _, elem := range strings.Split(got, "/") {
			if elem == ".." {
				t.Fatalf("CleanPath(%q) = %q, with a .. element", p, got)
			}
		}
		for _, root := range kernelRoots {
			if got == root || strings.HasPrefix(got, root+"/") {
				t.Fatalf("CleanPath(%q) = %q, under %s", p, got, root)
			}
		}
		if again, err := CleanPath(got); err != nil || again != got {
			t.Fatalf("CleanPath(%q) = %q, %v; not idempotent", got, again, err)
		}
	})
}
