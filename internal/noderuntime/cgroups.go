package noderuntime

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// mapping is the host uid and gid that a container's root is mapped to.
type mapping struct{ uid, gid int }

// rootMapping reads the user namespace of process pid: the host ids of its root, and whether it has its own user
// namespace at all (the identity mapping "0 0 4294967295" means it does not).
func rootMapping(pid int) (mapping, bool, error) {
	uid, own, err := firstMapping(fmt.Sprintf("/proc/%d/uid_map", pid))
	if err != nil || !own {
		return mapping{}, false, err
	}
	gid, _, err := firstMapping(fmt.Sprintf("/proc/%d/gid_map", pid))
	if err != nil {
		return mapping{}, false, err
	}
	return mapping{uid: uid, gid: gid}, true, nil
}

func firstMapping(path string) (host int, own bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false, err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "0" {
			continue
		}
		host, err := strconv.Atoi(f[1])
		if err != nil {
			return 0, false, fmt.Errorf("%s: %q", path, line)
		}
		return host, !(f[1] == "0" && f[2] == "4294967295"), nil
	}
	return 0, false, fmt.Errorf("%s maps no root", path)
}

// handOverCgroups gives a user-namespaced container what its own engine must create in: on cgroup v1 the
// directory of each of its cgroups (so that its engine can make child cgroups there), on cgroup v2 the directory
// and the three files the kernel's delegation rules name. Never the limit files: a container that owned its own
// memory.limit_in_bytes or pids.max could raise its own limits. Child cgroups are bounded by their parent, so what
// the container makes under its own stays inside its limits.
func handOverCgroups(cgroupRoot string, pid int, m mapping) error {
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return err
	}
	defer f.Close()
	// A host with both (cgroup v1 with the unified hierarchy beside it) keeps v2 at cgroupRoot/unified.
	unified := cgroupRoot
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err != nil {
		unified = filepath.Join(cgroupRoot, "unified")
	}
	var errs []error
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		controllers, path := parts[1], parts[2]
		var owned []string
		switch {
		case parts[0] == "0" && controllers == "": // cgroup v2 (untested on these cgroup v1 hosts)
			dir := filepath.Join(unified, path)
			owned = []string{dir, filepath.Join(dir, "cgroup.procs"), filepath.Join(dir, "cgroup.threads"),
				filepath.Join(dir, "cgroup.subtree_control")}
		case controllers == "":
			continue
		default:
			owned = []string{filepath.Join(cgroupRoot, strings.TrimPrefix(controllers, "name="), path)}
		}
		for _, p := range owned {
			if err := os.Lchown(p, m.uid, m.gid); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
