package instance

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
)

// Every tool lab material expects is in the node, and the shell is a login bash.
func TestNodeTools(t *testing.T) {
	d := newDriver(t, NetworkBridge, nil)
	session, _ := newSession(t, d)
	createNodes(t, d, session, 1)
	tools := []string{"docker", "docker-compose", "git", "curl", "wget", "ip", "tc", "iptables", "ping", "dig",
		"telnet", "socat", "nc", "sqlite3", "python3", "ssh", "scp", "sshd", "vim", "nano", "less", "tree", "jq",
		"tmux", "tini", "busybox"}
	script := "for t in " + strings.Join(tools, " ") + `; do command -v $t >/dev/null || echo "missing $t"; done
test -r /usr/share/bash-completion/completions/docker || echo "missing docker completion"`
	if out := sh(t, d, session, "node1", "PATH=$PATH:/usr/sbin:/sbin; "+script); out != "" {
		t.Error(out)
	}
}

// A node gets no host path, no host namespace and no host block device, whatever its root user tries.
func TestNodeConfinement(t *testing.T) {
	d := newDriver(t, NetworkBridge, nil)
	session, _ := newSession(t, d)
	nodes := createNodes(t, d, session, 1)
	inspect, err := d.docker.ContainerInspect(testContext(t), nodes[0].ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	hc := inspect.HostConfig
	if len(hc.Binds) != 0 || hc.NetworkMode.IsHost() || hc.PidMode.IsHost() || hc.IpcMode.IsHost() ||
		hc.UTSMode.IsHost() || hc.UsernsMode.IsHost() {
		t.Errorf("node shares the host's paths or namespaces: binds %v, network %s, pid %s, ipc %s, uts %s",
			hc.Binds, hc.NetworkMode, hc.PidMode, hc.IpcMode, hc.UTSMode)
	}
	for _, m := range inspect.Mounts {
		if m.Type == "bind" && m.Destination != "/etc/hosts" && m.Destination != "/etc/hostname" &&
			m.Destination != "/etc/resolv.conf" {
			t.Errorf("node has a host path mounted: %s -> %s", m.Source, m.Destination)
		}
	}
	// The only engine a node can talk to is its own.
	if got := sh(t, d, session, "node1", "docker info --format '{{.Name}}'"); got != "node1" {
		t.Errorf("docker in node1 talks to the engine of %q", got)
	}
	if d.Isolation() == IsolationPrivileged {
		t.Skip("privileged nodes have every host device")
	}
	// The host's root disk, by its device number: the node may create the device node but not open it.
	var st syscall.Stat_t
	if err := syscall.Stat("/", &st); err != nil {
		t.Fatal(err)
	}
	major, minor := (st.Dev>>8)&0xfff, (st.Dev&0xff)|((st.Dev>>12)&0xfff00)
	if _, err := os.Stat(fmt.Sprintf("/sys/dev/block/%d:%d", major, minor)); err != nil {
		t.Skipf("the host's root is not on a block device (%d:%d)", major, minor)
	}
	code, out := exitCode(t, d, session, "node1", fmt.Sprintf("mknod /tmp/disk b %d %d && head -c 512 /tmp/disk >/dev/null", major, minor))
	if code == 0 || !strings.Contains(out, "not permitted") {
		t.Errorf("node1 read the host's disk %d:%d: exit %d: %s", major, minor, code, out)
	}
}
