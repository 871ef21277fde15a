package e2e

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"
	"github.com/sandlot/sandlot/internal/testcert"
)

// TestDeployTLS: sandlot serve --tls-cert --tls-key serves the API over HTTPS with HSTS, marks the session cookie
// Secure, gives https lab links, and a terminal works over wss with that cookie; plain HTTP on the port is refused.
func TestDeployTLS(t *testing.T) {
	needEngine(t)
	dir := t.TempDir()
	certPath, keyPath, pool := testcert.Write(t, dir, "localhost", "*.localhost", "127.0.0.1")
	srv := startServer(t, "--data", filepath.Join(dir, "data"), "--tls-cert", certPath, "--tls-key", keyPath)
	if !strings.HasPrefix(srv.url, "https://127.0.0.1:") {
		t.Fatalf("server url %s", srv.url)
	}
	jar, _ := cookiejar.New(nil)
	tlsConfig := &tls.Config{RootCAs: pool}
	c := apiClient{base: srv.url, http: &http.Client{Jar: jar, Timeout: time.Minute,
		Transport: &http.Transport{TLSClientConfig: tlsConfig}}}

	resp, err := c.http.Get(srv.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("GET /healthz over TLS: %s, TLS %v", resp.Status, resp.TLS != nil)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
		t.Errorf("Strict-Transport-Security = %q", got)
	}
	// Plain HTTP to the TLS port gets Go's refusal, not the API.
	plain, err := http.Get("http://" + strings.TrimPrefix(srv.url, "https://") + "/api/v1/templates")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(plain.Body)
	plain.Body.Close()
	if plain.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTPS server") {
		t.Errorf("plain HTTP on the TLS port: %s %q", plain.Status, body)
	}

	var sess struct{ ID, Token string }
	status, header := c.call(t, "POST", "/api/v1/sessions", "", `{"template":"1-node"}`, &sess)
	if status != http.StatusCreated {
		t.Fatalf("create session: %d", status)
	}
	t.Cleanup(func() {
		c.call(t, "DELETE", "/api/v1/sessions/"+sess.ID, sess.Token, "", nil)
		waitFor(t, 30*time.Second, "nothing of session "+sess.ID+" left in Docker", func() bool { return countLabelled(t, sess.ID) == 0 })
	})
	var sessionCookie string
	for _, sc := range header.Values("Set-Cookie") {
		if strings.HasPrefix(sc, "sandlot_"+sess.ID+"=") {
			sessionCookie = sc
		}
	}
	if !strings.Contains(sessionCookie, "; Secure") || !strings.Contains(sessionCookie, "HttpOnly") {
		t.Errorf("session cookie without Secure (or HttpOnly) over TLS: %q", sessionCookie)
	}

	if res, err := c.exec(t, sess.ID, sess.Token, "node1", "hostname"); err != nil || res.Stdout != "node1\n" {
		t.Fatalf("exec over https: %+v %v", res, err)
	}
	var link struct {
		URL     string `json:"url"`
		PathURL string `json:"path_url"`
	}
	if status, _ := c.call(t, "POST", "/api/v1/sessions/"+sess.ID+"/instances/node1/ports/8000/link", sess.Token, `{}`, &link); status != http.StatusCreated {
		t.Fatalf("lab link: %d", status)
	}
	if !strings.HasPrefix(link.URL, "https://node1-8000-"+sess.ID+".localhost:") || !strings.HasPrefix(link.PathURL, srv.url+"/lab/") {
		t.Errorf("lab links over TLS: %q, %q", link.URL, link.PathURL)
	}

	// The terminal over wss, authenticated by the Secure cookie alone (as the page does).
	u, _ := url.Parse(srv.url)
	if len(jar.Cookies(u)) == 0 {
		t.Fatal("the jar kept no cookie for the https origin")
	}
	dialer := &websocket.Dialer{TLSClientConfig: tlsConfig, Jar: jar, HandshakeTimeout: 10 * time.Second}
	wss := "wss://" + u.Host + "/api/v1/sessions/" + sess.ID + "/instances/node1/terminal?t=1"
	terminalSays(t, dialer, wss, nil, "echo tls-$((6*7))", regexp.MustCompile(`tls-42`))

	// Without the cookie the terminal is refused, over wss as over ws.
	bare := &websocket.Dialer{TLSClientConfig: tlsConfig, HandshakeTimeout: 10 * time.Second}
	if conn, resp, err := bare.Dial(wss, nil); err == nil {
		conn.Close()
		t.Error("a terminal opened over wss without a token")
	} else if resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("terminal without a token: %v %v", resp, err)
	}
}

// TestBrowserOverTLS: the page over https in chromium (trusting the test's certificate by its key, nothing else):
// a session from the landing page, its node, and a command typed into its terminal, which under an https page can
// only be a wss connection (the browser blocks ws:// from it).
func TestBrowserOverTLS(t *testing.T) {
	needEngine(t)
	dir := t.TempDir()
	certPath, keyPath, pool := testcert.Write(t, dir, "localhost", "*.localhost", "127.0.0.1")
	srv := startServer(t, "--data", filepath.Join(dir, "data"), "--admin-token", admin, "--tls-cert", certPath,
		"--tls-key", keyPath)
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	spki := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	ctx := startChromium(t, chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])))
	p := &page{t: t, ctx: ctx, url: srv.url}
	p.start("1-node")
	id := sessionIDOf(p)
	c := apiClient{base: srv.url, http: &http.Client{Timeout: time.Minute,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
	t.Cleanup(func() {
		c.call(t, "DELETE", "/api/v1/sessions/"+id, admin, "", nil)
		waitFor(t, 30*time.Second, "nothing of session "+id+" left in Docker", func() bool { return countLabelled(t, id) == 0 })
	})
	var protocol string
	p.eval(`location.protocol`, &protocol)
	if protocol != "https:" {
		t.Fatalf("the page is on %q", protocol)
	}
	p.waitNodes(1, 60*time.Second)
	p.pick("node1")
	p.waitPrompt("node1", 1)
	p.typeLine("echo over-$((6*7))-tls")
	p.waitScreen("node1", 1, `over-42-tls`, 15*time.Second)
}
