package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sandlot/sandlot/internal/testcert"
)

// writeCert writes a fresh self-signed certificate for cn into dir as cert.pem and key.pem.
func writeCert(t *testing.T, dir, cn string) (certPath, keyPath string) {
	t.Helper()
	certPath, keyPath, _ = testcert.Write(t, dir, cn)
	return certPath, keyPath
}

func TestServeRefusesBadTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir, "sandlot.test")
	_, otherKey := writeCert(t, t.TempDir(), "other.test")
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", cert}, "--tls-cert needs --tls-key"},
		{[]string{"--tls-key", key}, "--tls-key needs --tls-cert"},
		{[]string{"--tls-cert", filepath.Join(dir, "nope.pem"), "--tls-key", key}, "--tls-cert: stat"},
		{[]string{"--tls-cert", cert, "--tls-key", filepath.Join(dir, "nope.pem")}, "--tls-key: stat"},
		{[]string{"--tls-cert", junk, "--tls-key", key}, "failed to find any PEM data in certificate input"},
		{[]string{"--tls-cert", cert, "--tls-key", otherKey}, "private key does not match public key"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		// No --redis: a server that got past the TLS check would start a redis-server; none may start.
		args := append([]string{"sandlot", "serve", "--data", t.TempDir()}, tt.args...)
		err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: err = %v, want %q", tt.args, err, tt.want)
		}
		if errOut.Len() > 0 {
			t.Errorf("%v: the server logged before refusing: %s", tt.args, errOut.String())
		}
	}
}

// TestTLSCertificateRenewal: a renewed pair written over the files is served from the next handshake after it
// (within a second), and a broken one is not taken.
func TestTLSCertificateRenewal(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := writeCert(t, dir, "first.test")
	certs, err := loadTLS(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	// Served as serve does it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: strictTransport(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})),
		TLSConfig: certs.config()}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer srv.Close()
	addr := ln.Addr().String()
	servedName := func() string {
		t.Helper()
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := servedName(); got != "first.test" {
		t.Fatalf("served %q, want first.test", got)
	}
	writeCert(t, dir, "second.test")
	waitName := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for got := servedName(); got != want; got = servedName() {
			if time.Now().After(deadline) {
				t.Fatalf("still serving %q, want %q", got, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitName("second.test")
	// A broken certificate file: the previous pair stays.
	if err := os.WriteFile(certPath, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	for range 3 {
		if got := servedName(); got != "second.test" {
			t.Fatalf("after a broken renewal, served %q, want second.test", got)
		}
	}

	// HSTS over TLS.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
		t.Errorf("Strict-Transport-Security = %q", got)
	}
}

// TestNoHSTSOverPlainHTTP: a request that did not come over TLS (a proxy in front speaking plain HTTP to Sandlot
// would be one) is not told to use HTTPS by this server.
func TestNoHSTSOverPlainHTTP(t *testing.T) {
	rec := httptest.NewRecorder()
	strictTransport(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(rec,
		httptest.NewRequest("GET", "/", nil))
	if got := rec.Header().Get("Strict-Transport-Security"); got != "" {
		t.Errorf("plain HTTP got Strict-Transport-Security %q", got)
	}
}
