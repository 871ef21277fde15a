package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"
)

// certFiles serves the certificate of --tls-cert/--tls-key and rereads the pair when either file changes (a
// renewal by certbot or an ACME client replaces them in place), so a renewal needs no restart. A pair that does
// not load is not taken: the certificate in use stays until a good pair is written.
type certFiles struct {
	certPath, keyPath string

	mu      sync.Mutex
	cert    *tls.Certificate
	certMod time.Time
	keyMod  time.Time
	checked time.Time
	log     *slog.Logger // says when a changed pair does not load; nil: nothing is said
}

// loadTLS loads the pair, or returns nil when neither flag is given. One without the other, or a pair that does
// not load, is an error that names the file.
func loadTLS(certPath, keyPath string) (*certFiles, error) {
	switch {
	case certPath == "" && keyPath == "":
		return nil, nil
	case certPath == "":
		return nil, errors.New("--tls-key needs --tls-cert (the certificate chain, PEM)")
	case keyPath == "":
		return nil, errors.New("--tls-cert needs --tls-key (the certificate's private key, PEM)")
	}
	c := &certFiles{certPath: certPath, keyPath: keyPath}
	if err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// reload reads the pair; it replaces the certificate in use only when the pair loads.
func (c *certFiles) reload() error {
	certInfo, err := os.Stat(c.certPath)
	if err != nil {
		return fmt.Errorf("--tls-cert: %w", err)
	}
	keyInfo, err := os.Stat(c.keyPath)
	if err != nil {
		return fmt.Errorf("--tls-key: %w", err)
	}
	pair, err := tls.LoadX509KeyPair(c.certPath, c.keyPath)
	if err != nil {
		return fmt.Errorf("--tls-cert %s, --tls-key %s: %w", c.certPath, c.keyPath, err)
	}
	c.cert, c.certMod, c.keyMod = &pair, certInfo.ModTime(), keyInfo.ModTime()
	return nil
}

// certificate is the pair to serve now: reread when a file's modification time changed (looked at once a second
// at most).
func (c *certFiles) certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.checked) >= time.Second {
		c.checked = now
		certInfo, err1 := os.Stat(c.certPath)
		keyInfo, err2 := os.Stat(c.keyPath)
		if err1 == nil && err2 == nil && (!certInfo.ModTime().Equal(c.certMod) || !keyInfo.ModTime().Equal(c.keyMod)) {
			if err := c.reload(); err != nil && c.log != nil {
				c.log.Error("the changed TLS certificate does not load; serving the previous one", "err", err)
			}
		}
	}
	return c.cert, nil
}

// config is the server's TLS configuration: TLS 1.2 at least, the certificate from the files, HTTP/2 and
// HTTP/1.1 (terminals' WebSockets upgrade over HTTP/1.1).
func (c *certFiles) config() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.certificate}
}

// hstsMaxAge is a year: browsers that once reached Sandlot over HTTPS never try plain HTTP for it again. Not
// includeSubDomains: the server's name may be a parent of other services' names that Sandlot does not speak for.
const hstsMaxAge = "max-age=31536000"

// strictTransport marks every answer over TLS with Strict-Transport-Security.
func strictTransport(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header().Set("Strict-Transport-Security", hstsMaxAge)
		}
		next.ServeHTTP(w, r)
	})
}
