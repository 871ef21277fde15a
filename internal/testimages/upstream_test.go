package testimages

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// pullThrough is ref ("library/web:1") as the upstream's proxy serves it; its blobs are fetched when read.
func pullThrough(t *testing.T, u *Upstream, ref string) v1.Image {
	t.Helper()
	src := strings.TrimPrefix(u.URL(), "http://") + "/" + ref
	img, err := crane.Pull(src, crane.Insecure, crane.WithTransport(transport(t)))
	if err != nil {
		t.Fatalf("pull %s: %v", src, err)
	}
	return img
}

// One pull of a two-layer image is one manifest GET and three blob GETs (the configuration and the two layers),
// with the blobs' bytes; pushing is not counted, and Reset starts again.
func TestCounts(t *testing.T) {
	u := NewUpstream(t)
	img := must(Web("counted"))(t)
	u.Push("library/web:1", img)
	if c := u.Counts(); c != (Counts{}) {
		t.Fatalf("after a push, counts are %+v", c)
	}

	got := pullThrough(t, u, "library/web:1") // asks for /v2/ and the manifest
	config := must(got.RawConfigFile())(t)
	want := Counts{Requests: 2, ManifestGets: 1, BlobGets: 1, BlobBytes: int64(len(config))}
	for _, l := range must(got.Layers())(t) {
		if sha(t, must(l.Compressed())(t)) != must(l.Digest())(t) {
			t.Fatalf("layer %s has other content", must(l.Digest())(t))
		}
		want.BlobGets++
		want.BlobBytes += must(l.Size())(t)
	}
	want.Requests += want.BlobGets
	if c := u.Counts(); c != want {
		t.Errorf("counts %+v, want %+v", c, want)
	}
	u.Reset()
	if c := u.Counts(); c != (Counts{}) {
		t.Errorf("after Reset, counts are %+v", c)
	}
}

func TestModes(t *testing.T) {
	u := NewUpstream(t)
	client := &http.Client{Transport: transport(t), Timeout: 300 * time.Millisecond}
	get := func() (*http.Response, error) {
		resp, err := client.Get(u.URL() + "/v2/")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	ok := func(when string) {
		t.Helper()
		resp, err := get()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %v, %v", when, resp, err)
		}
	}
	ok("serving")

	u.SetMode(Down)
	if _, err := get(); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("down: %v, want the connection refused", err)
	}
	u.SetMode(Serving)
	ok("serving again, on the same port")

	u.SetMode(Hanging)
	var netErr net.Error
	if _, err := get(); !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Errorf("hanging: %v, want a timeout", err)
	}
	released := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Transport: transport(t), Timeout: 10 * time.Second}).Get(u.URL() + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = errors.New(resp.Status)
			}
		}
		released <- err
	}()
	waitRequests(t, u, 4) // ok, ok again, the one that timed out, this one
	u.SetMode(Serving)
	if err := <-released; err != nil {
		t.Errorf("a request made while hanging, once serving: %v", err)
	}

	u.SetMode(Failing)
	resp, err := client.Get(u.URL() + "/v2/library/web/manifests/1")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Errors []struct{ Code, Message string }
	}
	err = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || err != nil || len(body.Errors) != 1 {
		t.Errorf("failing: %s, %+v, %v", resp.Status, body, err)
	}
	if c := u.Counts(); c.ManifestGets != 0 {
		t.Errorf("a failed GET counted as a manifest served: %+v", c)
	}
}

// An upstream leaves no goroutine behind, even with a request hanging when the test ends.
func TestUpstreamStops(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("upstream", func(t *testing.T) {
		u := NewUpstream(t)
		u.Push("library/web:1", must(Web("stops"))(t))
		pullThrough(t, u, "library/web:1")
		u.SetMode(Hanging)
		client := &http.Client{Transport: transport(t)}
		go func() { // ends with an error when the upstream stops
			if resp, err := client.Get(u.URL() + "/v2/"); err == nil {
				resp.Body.Close()
			}
		}()
		waitRequests(t, u, 3) // the pull's /v2/ and manifest, the hanging one
	})
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

// waitRequests waits (at most 10 s) until n requests have reached u.
func waitRequests(t *testing.T, u *Upstream, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for u.Counts().Requests < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests reached the upstream in 10 s, want %d", u.Counts().Requests, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
