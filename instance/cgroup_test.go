package instance

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/docker/docker/client"
)

// cgroupDir is where the host keeps one controller's files for a container.
type cgroupDir struct {
	path string
	v1   bool
}

// cgroupFiles finds a container's cgroup directory for controller through its init process's /proc/PID/cgroup.
func cgroupFiles(t testing.TB, containerID, controller string) cgroupDir {
	t.Helper()
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer docker.Close()
	inspect, err := docker.ContainerInspect(context.Background(), containerID)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(inspect.State.Pid), "cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			return cgroupDir{path: filepath.Join("/sys/fs/cgroup", parts[2])}
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				return cgroupDir{path: filepath.Join("/sys/fs/cgroup", controller, parts[2]), v1: true}
			}
		}
	}
	t.Fatalf("no %s cgroup for container %s", controller, containerID)
	return cgroupDir{}
}

// readInt reads a number from the v1 or v2 file of a cgroup ("max" reads as -1).
func readInt(t testing.TB, dir cgroupDir, v1File, v2File string) int64 {
	t.Helper()
	name := v1File
	if !dir.v1 {
		name = v2File
	}
	if name == "" {
		return 0
	}
	data, err := os.ReadFile(filepath.Join(dir.path, name))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSpace(string(data))
	if s == "max" {
		return -1
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return n
}
