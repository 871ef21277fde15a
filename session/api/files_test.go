package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sandlot/sandlot/instance"
	"github.com/sandlot/sandlot/internal/redistest"
)

// Files over HTTP: uploads read back byte for byte, a save replaces a file and keeps its mode, the tree lists what
// was uploaded; bad paths, directories, missing files, uploads over the limit, other sessions' tokens and viewer
// tokens are refused with their codes and change nothing; no spooled upload is left on the server.
func TestFiles(t *testing.T) {
	spoolDir := t.TempDir()
	t.Setenv("TMPDIR", spoolDir)
	rdb := redistest.New(t)
	s := newServer(t, rdb, serverOpts{api: Config{MaxUpload: 1 << 20}})
	a := s.create(nil)
	b := s.create(nil)
	s.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+a.ID+"/instances", a.Token, nil, nil)
	node := "/api/v1/sessions/" + a.ID + "/instances/node1"
	files := func(q ...string) string { return node + "/files?" + query(q...) }
	exec := func(script string) string {
		t.Helper()
		var res execResponse
		s.mustCall(http.StatusOK, "POST", node+"/exec", a.Token, map[string][]string{"cmd": {"sh", "-c", script}}, &res)
		if res.ExitCode != 0 {
			t.Fatalf("%q exited %d: %s", script, res.ExitCode, res.Stderr)
		}
		return strings.TrimSpace(res.Stdout)
	}
	get := func(path string) []byte {
		t.Helper()
		resp, body := s.send("GET", files("path", path), a.Token, "", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		return body
	}
	binary := make([]byte, 300<<10) // over what stays in memory: spooled to a file
	for i := range binary {
		binary[i] = byte(i)
	}
	r := rand.NewChaCha8([32]byte{2})
	_, _ = r.Read(binary[256:])

	t.Run("upload, then download", func(t *testing.T) {
		ct, body := multipartUpload(t, "hello.txt", []byte("hello\n"), "bin.dat", binary)
		var got struct{ Files []fileWritten }
		s.mustSend(http.StatusCreated, "POST", files("dir", "/root/up/new"), a.Token, ct, body, &got)
		want := []fileWritten{{"/root/up/new/hello.txt", 6}, {"/root/up/new/bin.dat", int64(len(binary))}}
		if fmt.Sprint(got.Files) != fmt.Sprint(want) {
			t.Fatalf("uploaded %+v, want %+v", got.Files, want)
		}
		if string(get("/root/up/new/hello.txt")) != "hello\n" || !bytes.Equal(get("/root/up/new/bin.dat"), binary) {
			t.Fatal("the files read back differ from the upload")
		}
		resp, _ := s.send("GET", files("path", "/root/up/new/bin.dat", "download", "1"), a.Token, "", nil)
		h := resp.Header
		if h.Get("Content-Type") != "application/octet-stream" || h.Get("Content-Length") != fmt.Sprint(len(binary)) ||
			h.Get("Content-Disposition") != "attachment; filename=bin.dat" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("download headers %v", h)
		}
		if resp, _ := s.send("GET", files("path", "/root/up/new/hello.txt"), a.Token, "", nil); resp.Header.Get("Content-Disposition") != "" {
			t.Fatalf("a plain GET is an attachment: %v", resp.Header)
		}
		// Without ?dir=, files go to /root.
		ct, body = multipartUpload(t, "default.txt", []byte("d"))
		s.mustSend(http.StatusCreated, "POST", node+"/files", a.Token, ct, body, &got)
		if got.Files[0].Path != "/root/default.txt" || exec("cat /root/default.txt") != "d" {
			t.Fatalf("upload without dir: %+v", got.Files)
		}
	})

	t.Run("save, then open", func(t *testing.T) {
		var saved fileWritten
		s.mustSend(http.StatusOK, "PUT", files("path", "/root/docker-compose.yml"), a.Token, "", []byte("services: {}\n"), &saved)
		if saved != (fileWritten{"/root/docker-compose.yml", 13}) || string(get("/root/docker-compose.yml")) != "services: {}\n" {
			t.Fatalf("saved %+v", saved)
		}
		if got := exec("stat -c %a /root/docker-compose.yml"); got != "644" {
			t.Fatalf("a new file's mode is %s", got)
		}
		exec("printf '#!/bin/sh\\necho one\\n' > /root/run.sh && chmod 750 /root/run.sh")
		// Sent without a length (chunked), as a browser's stream would be.
		resp, body := s.send("PUT", files("path", "/root/run.sh"), a.Token, "", io.MultiReader(strings.NewReader("#!/bin/sh\n"),
			strings.NewReader("echo two\n")))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("chunked save: %d %s", resp.StatusCode, body)
		}
		if got := exec("stat -c %a /root/run.sh && /root/run.sh"); got != "750\ntwo" {
			t.Fatalf("after a save: %q", got)
		}
		// Exactly the limit is allowed.
		s.mustSend(http.StatusOK, "PUT", files("path", "/root/limit.bin"), a.Token, "", bytes.Repeat([]byte{7}, 1<<20), nil)
	})

	t.Run("tree", func(t *testing.T) {
		var tree treeResponse
		s.mustCall(http.StatusOK, "GET", node+"/tree?path=/root/up", a.Token, nil, &tree)
		if tree.Path != "/root/up" || tree.Truncated || len(tree.Entries) != 3 {
			t.Fatalf("tree %+v", tree)
		}
		if e := tree.Entries[1]; e.Path != "/root/up/new/bin.dat" || e.Type != "file" || e.Size != int64(len(binary)) ||
			time.Since(e.ModTime) > 10*time.Minute || tree.Entries[0].Type != "dir" {
			t.Fatalf("entries %+v", tree.Entries)
		}
		s.mustCall(http.StatusOK, "GET", node+"/tree", a.Token, nil, &tree)
		if tree.Path != "/root" || len(tree.Entries) < 5 {
			t.Fatalf("default tree %+v", tree)
		}
		s.mustCall(http.StatusOK, "GET", node+"/tree?depth=1", a.Token, nil, &tree)
		for _, e := range tree.Entries {
			if strings.Count(e.Path, "/") != 2 {
				t.Fatalf("depth 1 lists %s", e.Path)
			}
		}
	})

	t.Run("refusals change nothing", func(t *testing.T) {
		before := exec("find / -xdev -newer /root/limit.bin -not -path '/proc/*' | sort")
		escape := func(name string) ([]byte, string) {
			ct, body := multipartUpload(t, name, []byte("sandlot-escape"))
			return body, ct
		}
		twoFilesCT, twoFiles := multipartUpload(t, "first.bin", make([]byte, 520<<10), "second.bin", make([]byte, 520<<10))
		oneTooBigCT, oneTooBig := multipartUpload(t, "big.bin", make([]byte, 1<<20+1))
		otherField := &bytes.Buffer{}
		mw := multipart.NewWriter(otherField)
		_ = mw.WriteField("note", "x")
		mw.Close()
		tests := []struct {
			name, method, path, ct string
			body                   any
			status                 int
			code                   string
		}{
			{"relative path", "GET", files("path", "etc/passwd"), "", nil, 400, "bad_path"},
			{"climbing path", "GET", files("path", "/root/../etc/passwd"), "", nil, 400, "bad_path"},
			{"climbing relative path", "GET", files("path", "../../etc/passwd"), "", nil, 400, "bad_path"},
			{"no path", "GET", files(), "", nil, 400, "bad_path"},
			{"kernel file", "GET", files("path", "/proc/1/environ"), "", nil, 400, "bad_path"},
			{"NUL in path", "GET", files("path", "/root/a\x00b"), "", nil, 400, "bad_path"},
			{"save climbing", "PUT", files("path", "/root/../etc/sandlot-escape"), "", "x", 400, "bad_path"},
			{"save relative", "PUT", files("path", "sandlot-escape"), "", "x", 400, "bad_path"},
			{"save kernel setting", "PUT", files("path", "/proc/sys/kernel/hostname"), "", "evil", 400, "bad_path"},
			{"upload to climbing dir", "POST", files("dir", "/root/../etc"), "", nil, 400, "bad_path"},
			{"upload to /sys", "POST", files("dir", "/sys/kernel"), "", nil, 400, "bad_path"},
			{"upload to relative dir", "POST", files("dir", "tmp"), "", nil, 400, "bad_path"},
			{"upload named ../x", "POST", files("dir", "/root"), "", nil, 400, "bad_path"},
			{"upload named a/b", "POST", files("dir", "/root"), "", nil, 400, "bad_path"},
			{"upload named ..", "POST", files("dir", "/root"), "", nil, 400, "bad_path"},
			{"tree of /proc", "GET", node + "/tree?path=/proc", "", nil, 400, "bad_path"},
			{"tree depth 0", "GET", node + "/tree?depth=0", "", nil, 400, "invalid_request"},
			{"tree depth 11", "GET", node + "/tree?depth=11", "", nil, 400, "invalid_request"},
			{"upload not multipart", "POST", files(), "text/plain", "x", 415, "unsupported_media_type"},
			{"upload with another field", "POST", files(), mw.FormDataContentType(), otherField.Bytes(), 400, "invalid_request"},
			{"open a directory", "GET", files("path", "/root/up"), "", nil, 409, "is_directory"},
			{"save over a directory", "PUT", files("path", "/root/up"), "", "x", 409, "is_directory"},
			{"tree of a file", "GET", node + "/tree?path=/root/run.sh", "", nil, 409, "not_directory"},
			{"missing file", "GET", files("path", "/root/nope"), "", nil, 404, "not_found"},
			{"missing node", "GET", "/api/v1/sessions/" + a.ID + "/instances/node2/files?path=/root/x", "", nil, 404, "not_found"},
			{"one file over the limit", "POST", files("dir", "/root/toobig"), oneTooBigCT, oneTooBig, 413, "too_large"},
			{"two files over the limit", "POST", files("dir", "/root/toobig"), twoFilesCT, twoFiles, 413, "too_large"},
			{"save over the limit", "PUT", files("path", "/root/toobig/x"), "", make([]byte, 1<<20+1), 413, "too_large"},
			{"chunked save over the limit", "PUT", files("path", "/root/toobig/x"), "",
				io.MultiReader(bytes.NewReader(make([]byte, 1<<20)), strings.NewReader("x")), 413, "too_large"},
		}
		names := map[string]string{"upload named ../x": "../sandlot-escape", "upload named a/b": "a/sandlot-escape",
			"upload named ..": ".."}
		for _, tt := range tests {
			body, ct := tt.body, tt.ct
			if n, ok := names[tt.name]; ok {
				body, ct = escape(n)
			}
			if body == nil && tt.method == "POST" {
				body, ct = escape("sandlot-escape")
			}
			var e apiError
			resp, data := s.send(tt.method, tt.path, a.Token, ct, reader(body))
			if err := json.Unmarshal(data, &e); err != nil || resp.StatusCode != tt.status || e.Error.Code != tt.code {
				t.Errorf("%s: %d %s, want %d %s", tt.name, resp.StatusCode, data, tt.status, tt.code)
				continue
			}
			if tt.code == "bad_path" && !strings.Contains(e.Error.Message, "bad path") {
				t.Errorf("%s: message %q", tt.name, e.Error.Message)
			}
			if tt.code == "too_large" && !strings.Contains(e.Error.Message, "1 MiB") {
				t.Errorf("%s: message %q does not say the limit", tt.name, e.Error.Message)
			}
		}
		after := exec("find / -xdev -newer /root/limit.bin -not -path '/proc/*' | sort")
		if after != before {
			t.Fatalf("the refusals changed the node:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if got := exec("find / -xdev -name '*sandlot-escape*' | wc -l; ls /root/toobig 2>/dev/null | wc -l; hostname"); got != "0\n0\nnode1" {
			t.Fatalf("after the refusals: %q", got)
		}
	})

	t.Run("tokens", func(t *testing.T) {
		var link viewerLink
		s.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+a.ID+"/viewer", a.Token, nil, &link)
		ct, body := multipartUpload(t, "viewer.txt", []byte("x"))
		tests := []struct {
			name, method, path, token, ct string
			body                          []byte
			status                        int
		}{
			{"other session reads", "GET", files("path", "/root/up/new/hello.txt"), b.Token, "", nil, 403},
			{"other session saves", "PUT", files("path", "/root/up/new/hello.txt"), b.Token, "", []byte("x"), 403},
			{"other session uploads", "POST", files(), b.Token, ct, body, 403},
			{"other session lists", "GET", node + "/tree", b.Token, "", nil, 403},
			{"no token", "GET", files("path", "/root/up/new/hello.txt"), "", "", nil, 401},
			{"viewer reads (the ssh key would be among its files)", "GET", files("path", "/root/up/new/hello.txt"), link.Token, "", nil, 403},
			{"viewer lists", "GET", node + "/tree", link.Token, "", nil, 403},
			{"viewer saves", "PUT", files("path", "/root/up/new/hello.txt"), link.Token, "", []byte("x"), 403},
			{"viewer uploads", "POST", files(), link.Token, ct, body, 403},
		}
		for _, tt := range tests {
			if resp, data := s.send(tt.method, tt.path, tt.token, tt.ct, reader(tt.body)); resp.StatusCode != tt.status {
				t.Errorf("%s: %d %s, want %d", tt.name, resp.StatusCode, data, tt.status)
			}
		}
		if got := exec("cat /root/up/new/hello.txt; test ! -e /root/viewer.txt && echo none"); got != "hello\nnone" {
			t.Fatalf("after the refused writes: %q", got)
		}
	})

	left, _ := os.ReadDir(spoolDir)
	if len(left) != 0 {
		t.Fatalf("%d spooled uploads left in %s", len(left), spoolDir)
	}
}

// The refusals of path rules come from instance.CleanPath, with the path and the rule in the message.
func TestBadPathMessage(t *testing.T) {
	_, err := instance.CleanPath("/root/../etc/passwd")
	status, code, msg := classify(err)
	if status != http.StatusBadRequest || code != "bad_path" || msg != `bad path "/root/../etc/passwd": must not contain a ".." element` {
		t.Fatalf("%d %s %q", status, code, msg)
	}
}

// query builds a query string from name, value pairs.
func query(pairs ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(pairs); i += 2 {
		q.Set(pairs[i], pairs[i+1])
	}
	return q.Encode()
}

// multipartBody is a multipart/form-data body with one part named "file" for each name, content pair.
func multipartUpload(t *testing.T, namesAndContents ...any) (contentType string, body []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for i := 0; i+1 < len(namesAndContents); i += 2 {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, namesAndContents[i]))
		h.Set("Content-Type", "application/octet-stream")
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(namesAndContents[i+1].([]byte))
	}
	mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

func reader(body any) io.Reader {
	switch b := body.(type) {
	case nil:
		return nil
	case string:
		return strings.NewReader(b)
	case []byte:
		return bytes.NewReader(b)
	case io.Reader:
		return b
	}
	panic(fmt.Sprintf("body of type %T", body))
}

// send makes a request with a raw body (a reader that is not a *bytes.Reader or *strings.Reader goes chunked) and
// returns the response with its whole body.
func (s *server) send(method, path, token, contentType string, body io.Reader) (*http.Response, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.URL+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, data
}

// mustSend is send that fails the test unless the status is want, and decodes a JSON answer into out if not nil.
func (s *server) mustSend(want int, method, path, token, contentType string, body []byte, out any) {
	s.t.Helper()
	resp, data := s.send(method, path, token, contentType, bytes.NewReader(body))
	if resp.StatusCode != want {
		s.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
}
