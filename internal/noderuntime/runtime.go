// Package noderuntime is sandlot-runtime, the OCI runtime of Sandlot's node engine: runc, plus two things runc
// does not do for a user-namespaced Docker-in-Docker node.
//
//   - After `create`, it hands a user-namespaced container the directories of its own cgroups, so that the engine
//     inside can make child cgroups there (see handOverCgroups). Inside a user namespace the kernel refuses to
//     mount cgroup hierarchies, and the container's root cannot write what the host's root owns.
//   - Before `create`, it gives a container that asks for one a disk of its own: a sized filesystem that holds
//     everything the container writes (see disk.go); after `delete`, it unmounts it.
//
// Every other command, and everything else about these two, is runc's: the wrapper passes the command line on
// unchanged.
package noderuntime

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupRoot is where the host mounts its cgroups.
const cgroupRoot = "/sys/fs/cgroup"

// Main runs one runtime command line (without the program name) and returns its exit code.
func Main(args []string, stderr io.Writer) int {
	runc, err := findRunc()
	if err != nil {
		fmt.Fprintf(stderr, "sandlot-runtime: %v\n", err)
		return 1
	}
	c := parse(args)
	switch c.sub {
	case "create":
		return create(runc, args, c, stderr)
	case "delete":
		return remove(runc, args, c, stderr)
	}
	err = syscall.Exec(runc, append([]string{"runc"}, args...), os.Environ())
	fmt.Fprintf(stderr, "sandlot-runtime: run %s: %v\n", runc, err)
	return 1
}

// findRunc is the runc this runtime wraps: $SANDLOT_RUNC, else runc on the PATH or in the usual places.
func findRunc() (string, error) {
	if p := os.Getenv("SANDLOT_RUNC"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("runc"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc", "/usr/local/bin/runc"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("runc not found (set SANDLOT_RUNC)")
}

func create(runc string, args []string, c command, stderr io.Writer) int {
	var mounts []string
	if c.bundle != "" {
		d, wanted, err := readDisk(c.bundle)
		if err == nil && wanted {
			mounts, err = d.mount()
		}
		if err != nil {
			return fail(c, stderr, err)
		}
	}
	if code := runRunc(runc, args, c.fds); code != 0 {
		unmount(mounts)
		return code
	}
	if len(mounts) > 0 {
		if err := saveMounts(c, mounts); err != nil {
			return fail(c, stderr, err)
		}
	}
	if err := handOver(runc, c); err != nil {
		return fail(c, stderr, err)
	}
	return 0
}

// handOver gives a user-namespaced container its cgroups (see handOverCgroups).
func handOver(runc string, c command) error {
	pid, err := initPid(runc, c)
	if err != nil {
		return err
	}
	m, own, err := rootMapping(pid)
	if err != nil || !own {
		return err
	}
	if err := handOverCgroups(cgroupRoot, pid, m); err != nil {
		return fmt.Errorf("hand the container its cgroups: %w", err)
	}
	return nil
}

// initPid is the pid of a created container's init process: from the pid file runc wrote, else from runc state.
func initPid(runc string, c command) (int, error) {
	if c.pidFile != "" {
		if data, err := os.ReadFile(c.pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
				return pid, nil
			}
		}
	}
	var stateArgs []string
	if c.root != "" {
		stateArgs = append(stateArgs, "--root", c.root)
	}
	out, err := exec.Command(runc, append(stateArgs, "state", c.id)...).Output()
	if err != nil {
		return 0, fmt.Errorf("runc state %s: %w", c.id, err)
	}
	var state struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal(out, &state); err != nil || state.Pid == 0 {
		return 0, fmt.Errorf("runc state %s: no pid in %q", c.id, out)
	}
	return state.Pid, nil
}

// remove is `delete`: runc deletes the container, then its disk (if it has one) is unmounted. The disk's file
// stays for the container's next start.
func remove(runc string, args []string, c command, stderr io.Writer) int {
	mounts, _ := loadMounts(c)
	code := runRunc(runc, args, 0)
	if len(mounts) == 0 {
		return code
	}
	if code != 0 && containerExists(runc, c) {
		return code // still there (a delete of a running container without --force): keep its disk mounted
	}
	if err := unmount(mounts); err != nil {
		fmt.Fprintf(stderr, "sandlot-runtime: %v\n", err)
	}
	os.Remove(mountsFile(c))
	return code
}

func containerExists(runc string, c command) bool {
	var stateArgs []string
	if c.root != "" {
		stateArgs = append(stateArgs, "--root", c.root)
	}
	return exec.Command(runc, append(stateArgs, "state", c.id)...).Run() == nil
}

// runRunc runs runc with the same command line and the same standard streams, and the extra descriptors
// --preserve-fds asks to keep, and returns its exit code.
func runRunc(runc string, args []string, fds int) int {
	cmd := exec.Command(runc, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	for fd := 3; fd < 3+fds; fd++ {
		cmd.ExtraFiles = append(cmd.ExtraFiles, os.NewFile(uintptr(fd), "preserved-"+strconv.Itoa(fd)))
	}
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	}
	fmt.Fprintf(os.Stderr, "sandlot-runtime: run %s: %v\n", runc, err)
	return 1
}

// mountsFile is where the mounts of a container's disk are remembered between create and delete: beside runc's
// own state directory, never inside it.
func mountsFile(c command) string {
	root := c.root
	if root == "" {
		root = "/run/runc"
	}
	return filepath.Join(filepath.Dir(root), "sandlot-"+filepath.Base(root), c.id+".json")
}

func saveMounts(c command, mounts []string) error {
	path := mountsFile(c)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	data, _ := json.Marshal(mounts)
	return os.WriteFile(path, data, 0o600)
}

func loadMounts(c command) ([]string, error) {
	data, err := os.ReadFile(mountsFile(c))
	if err != nil {
		return nil, err
	}
	var mounts []string
	return mounts, json.Unmarshal(data, &mounts)
}

// fail reports an error where the caller looks for runc's own: on stderr, and in runc's log file in its format
// (containerd reads the last error from there and Docker shows it).
func fail(c command, stderr io.Writer, err error) int {
	msg := "sandlot-runtime: " + err.Error()
	fmt.Fprintln(stderr, msg)
	if c.log != "" {
		if f, ferr := os.OpenFile(c.log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); ferr == nil {
			if c.json {
				line, _ := json.Marshal(map[string]string{"level": "error", "msg": msg,
					"time": time.Now().UTC().Format(time.RFC3339Nano)})
				f.Write(append(line, '\n'))
			} else {
				fmt.Fprintln(f, msg)
			}
			f.Close()
		}
	}
	return 1
}
