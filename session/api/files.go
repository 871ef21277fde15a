package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/sandlot/sandlot/instance"
	"github.com/sandlot/sandlot/session"
)

// queryPath is the path in the query parameter key (def when there is none), checked by instance.CleanPath.
func queryPath(r *http.Request, key, def string) (string, error) {
	p := r.URL.Query().Get(key)
	if p == "" {
		p = def
	}
	return instance.CleanPath(p)
}

// maxUploadFiles is the most files one upload request may carry: each is a few calls to the engine.
const maxUploadFiles = 100

// uploadFraming is how much a multipart body may hold beyond its files' bytes (boundaries and part headers).
const uploadFraming = 64 << 10

type fileWritten struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// uploadFiles writes each part named "file" of a multipart/form-data body to dir (?dir=, default /root) under the
// part's file name. Every part is read before any is written, so an upload over the limit writes nothing.
func (a *api) uploadFiles() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, name := r.PathValue("id"), r.PathValue("name")
		dir, release, ok := a.writeTarget(w, r, "dir", "/root", uploadFraming)
		if !ok {
			return
		}
		defer release()
		limit := a.cfg.MaxUpload
		r.Body = http.MaxBytesReader(w, r.Body, limit+uploadFraming)
		mr, err := r.MultipartReader()
		if err != nil {
			fail(w, a.log, fmt.Errorf("%w: the body must be multipart/form-data with parts named \"file\": %v", session.ErrInvalid, err))
			return
		}
		files, err := spoolParts(mr, limit)
		defer func() {
			for _, f := range files {
				f.remove()
			}
		}()
		if err != nil {
			fail(w, a.log, err)
			return
		}
		written := []fileWritten{}
		for _, f := range files {
			p := path.Join(dir, f.name)
			if err := a.svc.WriteFile(r.Context(), id, name, p, f.size, f.reader()); err != nil {
				fail(w, a.log, err)
				return
			}
			written = append(written, fileWritten{Path: p, Size: f.size})
		}
		respond(w, http.StatusCreated, map[string]any{"files": written})
	})
}

// namedContent is an uploaded file: its name and its spooled content.
type namedContent struct {
	*spooled
	name string
}

// spoolParts reads every part of an upload; together their contents may hold at most limit bytes. What it
// returns must be removed even when it fails.
func spoolParts(mr *multipart.Reader, limit int64) ([]namedContent, error) {
	var files []namedContent
	var total int64
	memory := spoolMemory
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return files, readError(err, limit)
		}
		if part.FormName() != "file" {
			return files, fmt.Errorf("%w: unknown form field %q (the files go in parts named \"file\")", session.ErrInvalid, part.FormName())
		}
		if len(files) == maxUploadFiles {
			return files, fmt.Errorf("%w: at most %d files an upload", session.ErrInvalid, maxUploadFiles)
		}
		name, err := partFileName(part)
		if err != nil {
			return files, err
		}
		content, err := spool(part, limit-total, min(memory, spoolPartMemory))
		if err != nil {
			if errors.Is(err, errUploadTooLarge) {
				err = uploadTooLarge(limit) // the limit of the whole request, not what was left of it
			}
			return files, err
		}
		files = append(files, namedContent{spooled: content, name: name})
		total += content.size
		memory -= len(content.mem)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: no part named \"file\" in the upload", session.ErrInvalid)
	}
	return files, nil
}

// partFileName is a part's file name exactly as sent. (multipart.Part.FileName would quietly reduce "../x" to "x":
// a name that tries to climb out of the directory is refused, not repaired.)
func partFileName(part *multipart.Part) (string, error) {
	_, params, err := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
	name := params["filename"]
	switch {
	case err != nil || name == "":
		return "", fmt.Errorf("%w: every part named \"file\" needs a filename", session.ErrInvalid)
	case name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || len(name) > 255:
		return "", &instance.BadPathError{Path: name,
			Rule: "a file name must be a plain name (no '/', not '.' or '..', at most 255 bytes)"}
	}
	return name, nil
}

// saveFile writes the body as the new content of the file at ?path= (the editor's save).
func (a *api) saveFile() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, name := r.PathValue("id"), r.PathValue("name")
		p, release, ok := a.writeTarget(w, r, "path", "", 0)
		if !ok {
			return
		}
		defer release()
		limit := a.cfg.MaxUpload
		content, err := spool(http.MaxBytesReader(w, r.Body, limit), limit, spoolPartMemory)
		if err != nil {
			fail(w, a.log, err)
			return
		}
		defer content.remove()
		if err := a.svc.WriteFile(r.Context(), id, name, p, content.size, content.reader()); err != nil {
			fail(w, a.log, err)
			return
		}
		respond(w, http.StatusOK, fileWritten{Path: p, Size: content.size})
	})
}

// readFile sends the file at ?path= as it streams from the node; with ?download=1, as an attachment.
func (a *api) readFile() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		rc, info, err := a.svc.ReadFile(r.Context(), r.PathValue("id"), r.PathValue("name"), q.Get("path"))
		if err != nil {
			fail(w, a.log, err)
			return
		}
		defer rc.Close()
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
		h.Set("Last-Modified", info.ModTime.UTC().Format(http.TimeFormat))
		// The bytes are the learner's, served from Sandlot's origin: never let a browser run them as a page.
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
		if d := q.Get("download"); d == "1" || d == "true" {
			h.Set("Content-Disposition", attachment(path.Base(info.Path)))
		}
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return
		}
		if _, err := io.Copy(w, rc); err != nil {
			// Too late for an error answer: the client sees the body end short of Content-Length.
			a.log.Warn("file download cut short", "session", r.PathValue("id"), "path", info.Path, "err", err)
		}
	})
}

// attachment is a Content-Disposition that saves the file under name (encoded as RFC 2231 where it must be).
func attachment(name string) string {
	if v := mime.FormatMediaType("attachment", map[string]string{"filename": name}); v != "" {
		return v
	}
	return "attachment"
}

type treeResponse struct {
	Path      string               `json:"path"`
	Entries   []instance.FileEntry `json:"entries"`
	Truncated bool                 `json:"truncated"`
}

// maxTreeDepth is the deepest a tree request may go.
const maxTreeDepth = 10

// tree lists the directory at ?path= (default /root), ?depth= levels down (default 3).
func (a *api) tree() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		p, err := queryPath(r, "path", "/root")
		if err != nil {
			fail(w, a.log, err)
			return
		}
		depth := instance.DefaultListDepth
		if d := q.Get("depth"); d != "" {
			if depth, err = strconv.Atoi(d); err != nil || depth < 1 || depth > maxTreeDepth {
				fail(w, a.log, fmt.Errorf("%w: depth %q (1 to %d)", session.ErrInvalid, d, maxTreeDepth))
				return
			}
		}
		entries, truncated, err := a.svc.ListDir(r.Context(), r.PathValue("id"), r.PathValue("name"), p, depth)
		if err != nil {
			fail(w, a.log, err)
			return
		}
		respond(w, http.StatusOK, treeResponse{Path: p, Entries: entries, Truncated: truncated})
	})
}

// writeTarget checks what a write needs before its body is read: the path in query parameter key (def when
// there is none), a live node, an announced size within --max-upload (plus framing), and one of the client's
// concurrent uploads, which release gives back. When ok is false it has answered.
func (a *api) writeTarget(w http.ResponseWriter, r *http.Request, key, def string, framing int64) (p string, release func(), ok bool) {
	p, err := queryPath(r, key, def)
	if err == nil {
		_, err = a.svc.LiveInstance(r.Context(), r.PathValue("id"), r.PathValue("name"))
	}
	if err == nil && r.ContentLength > a.cfg.MaxUpload+framing {
		err = uploadTooLarge(a.cfg.MaxUpload)
	}
	if err != nil {
		fail(w, a.log, err)
		return "", nil, false
	}
	client := a.clientIP(r)
	release, ok = a.uploads.acquire(client)
	if !ok {
		failWith(w, http.StatusTooManyRequests, "too_many_uploads",
			fmt.Sprintf("%s is sending %d uploads at once, the most one client may", client, a.cfg.UploadsPerClient))
	}
	return p, release, ok
}
