package noderuntime

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		args []string
		want command
	}{
		{strings.Fields("--root /run/r --log /run/l.json --log-format json create --bundle /b --pid-file /b/init.pid abc"),
			command{sub: "create", id: "abc", root: "/run/r", log: "/run/l.json", json: true, bundle: "/b", pidFile: "/b/init.pid"}},
		{strings.Fields("--root=/run/r --systemd-cgroup create -b /b --pid-file=/p --console-socket /s --preserve-fds 2 --no-pivot x1"),
			command{sub: "create", id: "x1", root: "/run/r", bundle: "/b", pidFile: "/p", fds: 2}},
		{strings.Fields("--root /run/r delete --force abc"), command{sub: "delete", id: "abc", root: "/run/r", force: true}},
		{strings.Fields("--root /run/r delete abc"), command{sub: "delete", id: "abc", root: "/run/r"}},
		{strings.Fields("--root /run/r start abc"), command{sub: "start", id: "abc", root: "/run/r"}},
		{strings.Fields("--version"), command{}},
		{nil, command{}},
	}
	for _, tt := range tests {
		if got := parse(tt.args); got != tt.want {
			t.Errorf("parse(%q) = %+v, want %+v", tt.args, got, tt.want)
		}
	}
}

func TestReadDisk(t *testing.T) {
	bundle := t.TempDir()
	write := func(s map[string]any) {
		data, _ := json.Marshal(s)
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := func(env ...string) map[string]any {
		return map[string]any{
			"root":    map[string]any{"path": "/var/lib/e/overlay2/x/merged"},
			"process": map[string]any{"env": env},
			"mounts": []any{map[string]any{"destination": "/var/lib/docker", "type": "bind",
				"source": "/var/lib/e/volumes/v1/_data"}},
			"linux": map[string]any{"uidMappings": []any{map[string]any{"containerID": 0, "hostID": 100000, "size": 65536}},
				"gidMappings": []any{map[string]any{"containerID": 0, "hostID": 100001, "size": 65536}}},
		}
	}
	write(cfg("PATH=/bin"))
	if _, wanted, err := readDisk(bundle); wanted || err != nil {
		t.Fatalf("without %s: wanted %v, err %v", diskEnv, wanted, err)
	}
	write(cfg(diskEnv + "=1073741824"))
	d, wanted, err := readDisk(bundle)
	want := disk{size: 1 << 30, rootfs: "/var/lib/e/overlay2/x/merged", volume: "/var/lib/e/volumes/v1/_data",
		owner: mapping{uid: 100000, gid: 100001}}
	if !wanted || err != nil || !reflect.DeepEqual(d, want) {
		t.Fatalf("readDisk = %+v, %v, %v; want %+v", d, wanted, err, want)
	}
	for _, bad := range []string{diskEnv + "=ten", diskEnv + "=1024", diskEnv + "=-1"} {
		write(cfg(bad))
		if _, _, err := readDisk(bundle); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	c := cfg(diskEnv + "=1073741824")
	c["mounts"] = []any{}
	write(c)
	if _, _, err := readDisk(bundle); err == nil || !strings.Contains(err.Error(), "anonymous volume") {
		t.Errorf("a disk without a volume on /var/lib/docker: %v", err)
	}
}

// The directories of a process's cgroups, and only those, go to the given ids.
func TestHandOverCgroups(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	root := t.TempDir()
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if parts[1] == "" {
			continue
		}
		dir := filepath.Join(root, strings.TrimPrefix(parts[1], "name="), parts[2])
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "memory.limit_in_bytes"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
	}
	if len(dirs) == 0 {
		t.Skip("this host has no cgroup v1 hierarchies")
	}
	if err := handOverCgroups(root, os.Getpid(), mapping{uid: 4242, gid: 4343}); err != nil {
		t.Fatal(err)
	}
	for _, dir := range dirs {
		if st := stat(t, dir); st.Uid != 4242 || st.Gid != 4343 {
			t.Errorf("%s is %d:%d, want 4242:4343", dir, st.Uid, st.Gid)
		}
		if st := stat(t, filepath.Join(dir, "memory.limit_in_bytes")); st.Uid != 0 {
			t.Errorf("a limit file in %s was handed over too", dir)
		}
	}
}

func TestRootMapping(t *testing.T) {
	if _, own, err := rootMapping(os.Getpid()); err != nil || own {
		t.Fatalf("this process: own user namespace %v, err %v", own, err)
	}
}

func stat(t *testing.T, path string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}
