package noderuntime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A node's disk is one sparse file holding an ext4 filesystem of the node's size, which takes everything the node
// writes: its engine's store (bound over the node's /var/lib/docker volume) and every change to its root
// filesystem (an overlay mounted over the root filesystem Docker prepared, which becomes its lower layer). A full
// disk is ENOSPC in the node and nowhere else; `df` in the node shows its size. The file lives in the directory of
// the node's /var/lib/docker volume, so it goes when Docker removes the volume, and it stays while the node is
// stopped, so a restarted node keeps its images and files.
//
// A container asks for a disk with the environment variable SANDLOT_DISK_BYTES and an anonymous volume on
// /var/lib/docker; other containers are left as Docker made them.
const diskEnv = "SANDLOT_DISK_BYTES"

// minDisk is the smallest disk this runtime makes: an engine's store needs a few MiB, ext4 a few more.
const minDisk = 32 << 20

// spec is the part of an OCI bundle's config.json this runtime reads.
type spec struct {
	Root struct {
		Path string `json:"path"`
	} `json:"root"`
	Process struct {
		Env []string `json:"env"`
	} `json:"process"`
	Mounts []struct {
		Destination string `json:"destination"`
		Type        string `json:"type"`
		Source      string `json:"source"`
	} `json:"mounts"`
	Linux struct {
		UIDMappings []idMapping `json:"uidMappings"`
		GIDMappings []idMapping `json:"gidMappings"`
	} `json:"linux"`
}

type idMapping struct {
	ContainerID uint32 `json:"containerID"`
	HostID      uint32 `json:"hostID"`
}

// disk is the disk a container asked for.
type disk struct {
	size   int64
	rootfs string  // the root filesystem Docker prepared (an overlay mount)
	volume string  // the host directory Docker binds on /var/lib/docker
	owner  mapping // the host ids of the container's root
}

// readDisk reads from a bundle whether its container wants a disk, and which.
func readDisk(bundle string) (disk, bool, error) {
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return disk{}, false, err
	}
	var s spec
	if err := json.Unmarshal(data, &s); err != nil {
		return disk{}, false, fmt.Errorf("read %s/config.json: %w", bundle, err)
	}
	var want string
	for _, e := range s.Process.Env {
		if v, ok := strings.CutPrefix(e, diskEnv+"="); ok {
			want = v
		}
	}
	if want == "" {
		return disk{}, false, nil
	}
	size, err := strconv.ParseInt(want, 10, 64)
	if err != nil || size < minDisk {
		return disk{}, false, fmt.Errorf("%s=%q: a size in bytes, at least %d", diskEnv, want, minDisk)
	}
	d := disk{size: size, rootfs: s.Root.Path}
	for _, m := range s.Mounts {
		if m.Destination == "/var/lib/docker" && m.Type == "bind" && filepath.Base(m.Source) == "_data" {
			d.volume = m.Source
		}
	}
	if d.volume == "" || !filepath.IsAbs(d.rootfs) {
		return disk{}, false, fmt.Errorf("%s needs an anonymous volume on /var/lib/docker and an absolute root path", diskEnv)
	}
	for _, m := range s.Linux.UIDMappings {
		if m.ContainerID == 0 {
			d.owner.uid = int(m.HostID)
		}
	}
	for _, m := range s.Linux.GIDMappings {
		if m.ContainerID == 0 {
			d.owner.gid = int(m.HostID)
		}
	}
	return d, true, nil
}

// mount makes the disk if it is new, and mounts it: the filesystem, its store over the volume, the overlay over
// the root filesystem. It returns what it mounted, in order, so that unmount can undo it; on failure it has undone
// what it did.
func (d disk) mount() (mounts []string, err error) {
	dir := filepath.Dir(d.volume)
	image, fs := filepath.Join(dir, "sandlot-disk.img"), filepath.Join(dir, "sandlot-disk")
	defer func() {
		if err != nil {
			unmount(mounts)
			mounts = nil
		}
	}()
	fresh, err := makeFilesystem(image, d.size, d.owner)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(fs, 0o700); err != nil {
		return nil, err
	}
	if out, err := exec.Command("mount", "-o", "loop", image, fs).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mount the node's disk: %v: %s", err, strings.TrimSpace(string(out)))
	}
	mounts = append(mounts, fs)
	store, upper, work := filepath.Join(fs, "docker"), filepath.Join(fs, "root", "upper"), filepath.Join(fs, "root", "work")
	if fresh {
		if err := d.lay(fs, store, upper, work); err != nil {
			return mounts, err
		}
	}
	if err := unix.Mount(store, d.volume, "", unix.MS_BIND, ""); err != nil {
		return mounts, fmt.Errorf("bind the disk over %s: %w", d.volume, err)
	}
	mounts = append(mounts, d.volume)
	// lowerdir is the root filesystem as it is now: the overlay goes on top of it, at the same place.
	opts := "lowerdir=" + d.rootfs + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", d.rootfs, "overlay", 0, opts); err != nil {
		return mounts, fmt.Errorf("mount the node's root filesystem on its disk: %w", err)
	}
	return append(mounts, d.rootfs), nil
}

// makeFilesystem makes the disk's file and filesystem unless it exists; fresh says it made them.
func makeFilesystem(image string, size int64, owner mapping) (fresh bool, err error) {
	f, err := os.OpenFile(image, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil {
			os.Remove(image)
		}
	}()
	err = f.Truncate(size) // sparse: the host gives the space only as the node writes
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("make the node's disk: %w", err)
	}
	// -m 0: no blocks reserved for the host's root, who never writes here; lazy init: a 10 GiB disk in ~40 ms.
	out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", "-E",
		fmt.Sprintf("root_owner=%d:%d,lazy_itable_init=1,lazy_journal_init=1", owner.uid, owner.gid), image).CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("make the node's filesystem: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return true, nil
}

// lay prepares a fresh disk: the store starts as a copy of the volume (the image's seeded /var/lib/docker), the
// overlay's directories belong to the container's root.
func (d disk) lay(fs, store, upper, work string) error {
	info, err := os.Stat(d.volume)
	if err != nil {
		return err
	}
	st := info.Sys().(*syscall.Stat_t)
	for _, dir := range []string{store, upper, work} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.Chown(dir, d.owner.uid, d.owner.gid); err != nil {
			return err
		}
	}
	if err := os.Chown(store, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := os.Chmod(store, info.Mode().Perm()); err != nil {
		return err
	}
	if err := os.Chown(filepath.Join(fs, "root"), d.owner.uid, d.owner.gid); err != nil {
		return err
	}
	if out, err := exec.Command("cp", "-a", d.volume+"/.", store+"/").CombinedOutput(); err != nil {
		return fmt.Errorf("copy the node's seeded store onto its disk: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// unmount undoes mounts, last first. Detached: a mount some process still holds goes when it lets go.
func unmount(mounts []string) error {
	var errs []error
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := unix.Unmount(mounts[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mounts[i], err))
		}
	}
	return errors.Join(errs...)
}
