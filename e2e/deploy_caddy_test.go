package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestDeployBehindCaddy: the Caddy setup of docs/deploy.md, with Caddy's own CA in place of the DNS challenge
// (`tls internal`): Sandlot on loopback believes Caddy's X-Forwarded-For and sets Secure cookies; through Caddy the
// API answers with HSTS, lab links are https on the wildcard lab domain and open through the proxy host-based, and
// a terminal works over wss on the cookie. Every name resolves to loopback in the test's clients.
func TestDeployBehindCaddy(t *testing.T) {
	needEngine(t)
	caddy, err := exec.LookPath("caddy")
	if err != nil {
		if os.Getenv("SANDLOT_REQUIRE_DOCKER") == "1" {
			t.Fatal("caddy is missing (ops/bootstrap-host installs it)")
		}
		t.Skip("caddy is missing")
	}
	dir := t.TempDir()
	srv := startServer(t, "--data", filepath.Join(dir, "data"), "--trusted-proxies", "127.0.0.1",
		"--secure-cookies", "--lab-domain", "labs.localhost")
	port := freePort(t)
	caddyfile := filepath.Join(dir, "Caddyfile")
	config := fmt.Sprintf(`{
	admin off
	auto_https disable_redirects
	skip_install_trust
	storage file_system %[1]s
	https_port %[2]d
	http_port %[3]d
}
sandlot.localhost:%[2]d, *.labs.localhost:%[2]d {
	tls internal
	header Strict-Transport-Security "max-age=31536000"
	reverse_proxy %[4]s
}
`, filepath.Join(dir, "caddy"), port, freePort(t), strings.TrimPrefix(srv.url, "http://"))
	if err := os.WriteFile(caddyfile, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caddy, "run", "--config", caddyfile, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir, "HOME="+dir)
	log, err := os.Create(filepath.Join(dir, "caddy.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			data, _ := os.ReadFile(log.Name())
			t.Logf("caddy log:\n%s", data)
		}
	})

	// Caddy's CA, once it made it, is what the clients trust; every name is this machine.
	rootCA := filepath.Join(dir, "caddy", "pki", "authorities", "local", "root.crt")
	waitFor(t, 30*time.Second, "caddy's CA", func() bool { _, err := os.Stat(rootCA); return err == nil })
	pem, err := os.ReadFile(rootCA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("caddy's root certificate does not parse")
	}
	loopback := func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, p, _ := net.SplitHostPort(addr)
		return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort("127.0.0.1", p))
	}
	tlsConfig := &tls.Config{RootCAs: pool}
	jar, _ := cookiejar.New(nil)
	base := fmt.Sprintf("https://sandlot.localhost:%d", port)
	c := apiClient{base: base, http: &http.Client{Jar: jar, Timeout: time.Minute,
		Transport: &http.Transport{TLSClientConfig: tlsConfig, DialContext: loopback}}}
	waitFor(t, 30*time.Second, "sandlot through caddy", func() bool {
		resp, err := c.http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	resp, err := c.http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
		t.Errorf("Strict-Transport-Security through caddy = %q", got)
	}

	var sess struct{ ID, Token string }
	status, header := c.call(t, "POST", "/api/v1/sessions", "", `{"template":"1-node"}`, &sess)
	if status != http.StatusCreated {
		t.Fatalf("create session through caddy: %d", status)
	}
	t.Cleanup(func() {
		c.call(t, "DELETE", "/api/v1/sessions/"+sess.ID, sess.Token, "", nil)
		waitFor(t, 30*time.Second, "nothing of session "+sess.ID+" left in Docker", func() bool { return countLabelled(t, sess.ID) == 0 })
	})
	if sc := strings.Join(header.Values("Set-Cookie"), "\n"); !strings.Contains(sc, "sandlot_"+sess.ID+"=") || !strings.Contains(sc, "Secure") {
		t.Errorf("session cookie through caddy: %q", sc)
	}
	if res, err := c.exec(t, sess.ID, sess.Token, "node1", "sh", "-c",
		"mkdir -p /srv/w && echo behind-caddy >/srv/w/index.html && (cd /srv/w && setsid python3 -m http.server 8000 >/dev/null 2>&1 &) && sleep 0.5"); err != nil || res.ExitCode != 0 {
		t.Fatalf("start a web server: %+v %v", res, err)
	}
	var link struct {
		URL string `json:"url"`
	}
	if status, _ := c.call(t, "POST", "/api/v1/sessions/"+sess.ID+"/instances/node1/ports/8000/link", sess.Token, `{}`, &link); status != http.StatusCreated {
		t.Fatalf("lab link: %d", status)
	}
	wantPrefix := fmt.Sprintf("https://node1-8000-%s.labs.localhost:%d/?sandlot_token=", sess.ID, port)
	if !strings.HasPrefix(link.URL, wantPrefix) {
		t.Fatalf("lab link %q, want %s...", link.URL, wantPrefix)
	}
	// The link as a visitor opens it: the token is exchanged for a cookie of the lab host, then the app answers.
	visitorJar, _ := cookiejar.New(nil)
	visitor := &http.Client{Jar: visitorJar, Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tlsConfig, DialContext: loopback}}
	var body string
	waitFor(t, 15*time.Second, "the node's web server through caddy, host-based", func() bool {
		resp, err := visitor.Get(link.URL)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return strings.Contains(body, "behind-caddy")
	})
	labURL, _ := url.Parse(link.URL)
	for _, ck := range visitorJar.Cookies(labURL) {
		if strings.Contains(ck.Value, sess.Token) {
			t.Errorf("the lab host's cookie carries the session token")
		}
	}

	// A terminal over wss through caddy, on the session's Secure cookie.
	dialer := &websocket.Dialer{TLSClientConfig: tlsConfig, Jar: jar, NetDialContext: loopback, HandshakeTimeout: 10 * time.Second}
	wss := fmt.Sprintf("wss://sandlot.localhost:%d/api/v1/sessions/%s/instances/node1/terminal?t=1", port, sess.ID)
	terminalSays(t, dialer, wss, nil, "echo caddy-$((6*7))", regexp.MustCompile(`caddy-42`))
}

// freePort is a loopback TCP port nobody listens on at the moment.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
