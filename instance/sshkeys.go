package instance

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/docker/docker/api/types/container"
	"golang.org/x/crypto/ssh"
)

// sshClientConfig lets root on a node ssh to the other nodes of its session without questions: their host keys are
// made at their first boot, so no node could know them in advance, and the session network is private.
const sshClientConfig = `Host *
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    LogLevel ERROR
`

// sessionKey is the ssh key pair of a session's nodes. It is derived from the driver's secret and the session id,
// not stored: every driver with the same secret (every server of a deployment) makes the same key for a session,
// and a different one for every other session.
func sessionKey(secret []byte, session string) ed25519.PrivateKey {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("sandlot-ssh:" + session))
	return ed25519.NewKeyFromSeed(mac.Sum(nil))
}

// sshFiles is a tar of root's .ssh directory for a node of session: the session's key pair, that same public key
// as the only authorized key, and the client config. Everything is owned by root, with the modes ssh insists on.
func sshFiles(secret []byte, session string) ([]byte, error) {
	key := sessionKey(secret, session)
	comment := "sandlot session " + session
	block, err := ssh.MarshalPrivateKey(key, comment)
	if err != nil {
		return nil, fmt.Errorf("marshal ssh key: %w", err)
	}
	pub, err := ssh.NewPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("ssh public key: %w", err)
	}
	publicLine := fmt.Appendf(nil, "%s %s\n", bytes.TrimSpace(ssh.MarshalAuthorizedKey(pub)), comment)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: ".ssh/", Mode: 0o700,
		Uname: "root", Gname: "root", ModTime: now}); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{
		{"id_ed25519", 0o600, pem.EncodeToMemory(block)},
		{"id_ed25519.pub", 0o644, publicLine},
		{"authorized_keys", 0o600, publicLine},
		{"config", 0o644, []byte(sshClientConfig)},
	} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: ".ssh/" + f.name, Mode: f.mode,
			Size: int64(len(f.data)), Uname: "root", Gname: "root", ModTime: now}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// copySSHKeys puts the session's ssh files into root's home on a node: its sshd (which reads authorized_keys at
// each login) then lets in exactly the nodes of its own session, and its ssh client logs in to them. The rest of
// /root stays as it is.
func (d *Driver) copySSHKeys(ctx context.Context, id, session string) error {
	files, err := sshFiles(d.cfg.KeySecret, session)
	if err != nil {
		return err
	}
	if err := d.docker.CopyToContainer(ctx, id, "/root", bytes.NewReader(files),
		container.CopyToContainerOptions{}); err != nil {
		return fmt.Errorf("copy ssh keys: %w", err)
	}
	return nil
}
