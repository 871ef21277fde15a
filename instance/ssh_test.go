package instance

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// A session's key is the same for the same secret and differs for another session or another secret; the files
// hold that key, in the formats and with the modes ssh wants.
func TestSessionKey(t *testing.T) {
	secret := bytes.Repeat([]byte{1}, 32)
	other := bytes.Repeat([]byte{2}, 32)
	a := sessionKey(secret, "sessiona")
	if !a.Equal(sessionKey(secret, "sessiona")) {
		t.Error("the same secret and session gave two keys")
	}
	if a.Equal(sessionKey(secret, "sessionb")) {
		t.Error("two sessions share a key")
	}
	if a.Equal(sessionKey(other, "sessiona")) {
		t.Error("two secrets give a session the same key")
	}

	files, err := sshFiles(secret, "sessiona")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	modes := map[string]int64{}
	tr := tar.NewReader(bytes.NewReader(files))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s is owned by %d:%d, want root", h.Name, h.Uid, h.Gid)
		}
		data, _ := io.ReadAll(tr)
		got[h.Name], modes[h.Name] = string(data), h.Mode
	}
	wantModes := map[string]int64{".ssh/": 0o700, ".ssh/id_ed25519": 0o600, ".ssh/id_ed25519.pub": 0o644,
		".ssh/authorized_keys": 0o600, ".ssh/config": 0o644}
	for name, mode := range wantModes {
		if m, ok := modes[name]; !ok || m != mode {
			t.Errorf("%s: mode %o (present %v), want %o", name, m, ok, mode)
		}
	}
	if len(modes) != len(wantModes) {
		t.Errorf("the tar holds %d entries, want %d", len(modes), len(wantModes))
	}
	priv, err := ssh.ParsePrivateKey([]byte(got[".ssh/id_ed25519"]))
	if err != nil {
		t.Fatalf("the private key does not parse: %v", err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(got[".ssh/authorized_keys"]))
	if err != nil {
		t.Fatalf("authorized_keys does not parse: %v", err)
	}
	if !bytes.Equal(pub.Marshal(), priv.PublicKey().Marshal()) {
		t.Error("authorized_keys does not hold the private key's public half")
	}
	if got[".ssh/id_ed25519.pub"] != got[".ssh/authorized_keys"] {
		t.Error("id_ed25519.pub and authorized_keys differ")
	}
	if !strings.Contains(got[".ssh/config"], "StrictHostKeyChecking no") {
		t.Errorf("config: %q", got[".ssh/config"])
	}
}

// Root on a node sshes and scps to another node of its session, with no password or host key prompt, also when
// the two nodes were made by two drivers that share a secret (as the servers of a deployment do). A node of
// another session cannot log in with its own key.
func TestSSHBetweenNodes(t *testing.T) {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	withSecret := func(c *Config) { c.KeySecret = secret }
	for _, kind := range kinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			d := newDriver(t, kind, withSecret)
			d2 := newDriver(t, kind, withSecret)
			session, _ := newSession(t, d)
			other, _ := newSession(t, d)
			done := make(chan error, 3)
			go func() { _, err := d.Create(testContext(t), session, Spec{Name: "node1"}); done <- err }()
			go func() { _, err := d2.Create(testContext(t), session, Spec{Name: "node2"}); done <- err }()
			go func() { _, err := d.Create(testContext(t), other, Spec{Name: "node1"}); done <- err }()
			for range 3 {
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}

			if code, _ := exitCode(t, d, session, "node1", "test -f /etc/ssh/sshd_config.d/sandlot.conf"); code != 0 {
				t.Fatalf("the node image %s predates ssh between nodes: rebuild it with ops/build-node-image", d.cfg.Image)
			}
			// No TTY and no stdin: a password or host key prompt would fail the command rather than wait.
			if got := sh(t, d, session, "node1", "timeout 30 ssh node2 hostname </dev/null"); got != "node2" {
				t.Errorf("ssh node2 hostname in node1 printed %q", got)
			}
			if got := sh(t, d, session, "node2", "timeout 30 ssh node1 hostname </dev/null"); got != "node1" {
				t.Errorf("ssh node1 hostname in node2 printed %q", got)
			}

			want := sh(t, d, session, "node1", "head -c 100000 /dev/urandom >/tmp/sent && sha256sum </tmp/sent")
			sh(t, d, session, "node1", "timeout 30 scp /tmp/sent node2:/tmp/received </dev/null")
			if got := sh(t, d, session, "node2", "sha256sum </tmp/received"); got != want {
				t.Errorf("scp: node2 has %q, node1 sent %q", got, want)
			}

			modes := sh(t, d, session, "node1", "cd /root && stat -c '%n %a %u:%g' .ssh .ssh/id_ed25519 "+
				".ssh/authorized_keys .ssh/config .bashrc")
			if want := ".ssh 700 0:0\n.ssh/id_ed25519 600 0:0\n.ssh/authorized_keys 600 0:0\n" +
				".ssh/config 644 0:0\n.bashrc 644 0:0"; modes != want {
				t.Errorf("root's files:\n%s\nwant\n%s", modes, want)
			}

			// The other session's key, taken from its node, is refused by this session's nodes; the same command
			// with this session's key is let in, so the refusal is the key's doing.
			otherKey := sh(t, d, other, "node1", "cat /root/.ssh/id_ed25519")
			if _, err := d.Exec(testContext(t), session, "node1",
				[]string{"sh", "-c", "umask 077 && cat >/tmp/other_key"},
				ExecOptions{Stdin: strings.NewReader(otherKey + "\n")}); err != nil {
				t.Fatal(err)
			}
			login := "timeout 30 ssh -o BatchMode=yes -o IdentitiesOnly=yes -i %s node2 hostname </dev/null"
			code, out := exitCode(t, d, session, "node1", fmt.Sprintf(login, "/tmp/other_key"))
			if code == 0 || !strings.Contains(out, "Permission denied") {
				t.Errorf("node2 let in the other session's key: exit %d: %s", code, out)
			}
			if got := sh(t, d, session, "node1", fmt.Sprintf(login, "/root/.ssh/id_ed25519")); got != "node2" {
				t.Errorf("control: login with the session's own key printed %q", got)
			}
			if sh(t, d, other, "node1", "cat /root/.ssh/authorized_keys") ==
				sh(t, d, session, "node2", "cat /root/.ssh/authorized_keys") {
				t.Error("two sessions have the same authorized_keys")
			}
		})
	}
}
