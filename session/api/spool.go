package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/sandlot/sandlot/session"
)

// DefaultMaxUpload is how many bytes of files one request may send unless APIConfig says otherwise.
const DefaultMaxUpload = 32 << 20

// Uploads are read whole before they go to a node: the engine locks a node while it takes content in (its execs
// and new terminals wait), so the content must reach it at the speed of memory or disk, never at the client's.
// Small contents stay in memory, up to spoolMemory bytes a request; the rest goes to temporary files in the
// system's temporary directory ($TMPDIR), removed when the request ends.
const spoolMemory = 1 << 20

// spoolPartMemory is the most of one content kept in memory: a bigger one goes to a file, so that a few big
// contents cannot take the memory that many small ones would use better.
const spoolPartMemory = 64 << 10

var errUploadTooLarge = errors.New("upload too large")

// uploadTooLarge says what the limit is.
func uploadTooLarge(limit int64) error {
	size := fmt.Sprintf("%d bytes", limit)
	if limit%(1<<20) == 0 {
		size = fmt.Sprintf("%d MiB", limit>>20)
	}
	return fmt.Errorf("%w: a request may send at most %s of files", errUploadTooLarge, size)
}

// spooled is one content read whole from a request, in memory or in a temporary file.
type spooled struct {
	mem  []byte
	file *os.File
	size int64
}

// reader reads the content from its start.
func (s *spooled) reader() io.Reader {
	if s.file != nil {
		return io.NewSectionReader(s.file, 0, s.size)
	}
	return bytes.NewReader(s.mem)
}

// remove removes the temporary file, if any.
func (s *spooled) remove() {
	if s.file != nil {
		s.file.Close()
		os.Remove(s.file.Name())
	}
}

// spool reads r whole: at most limit bytes (more is errUploadTooLarge), the first inMemory of them in memory and,
// if there are more, all of them in a temporary file.
func spool(r io.Reader, limit int64, inMemory int) (*spooled, error) {
	r = io.LimitReader(r, limit+1)
	head, err := io.ReadAll(io.LimitReader(r, int64(inMemory)+1))
	if err != nil {
		return nil, readError(err, limit)
	}
	if len(head) <= inMemory {
		if int64(len(head)) > limit {
			return nil, uploadTooLarge(limit)
		}
		return &spooled{mem: head, size: int64(len(head))}, nil
	}
	f, err := os.CreateTemp("", "sandlot-upload-*")
	if err != nil {
		return nil, fmt.Errorf("spool an upload: %w", err)
	}
	s := &spooled{file: f}
	n, err := io.Copy(f, io.MultiReader(bytes.NewReader(head), r))
	switch {
	case err != nil:
		s.remove()
		return nil, readError(err, limit)
	case n > limit:
		s.remove()
		return nil, uploadTooLarge(limit)
	}
	s.size = n
	return s, nil
}

// readError is a failure to read a request's body: over http.MaxBytesReader's limit, or the client's doing.
func readError(err error, limit int64) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return uploadTooLarge(limit)
	}
	var pathErr *os.PathError
	if errors.As(err, &pathErr) { // writing the temporary file failed: the server's trouble, not the client's
		return fmt.Errorf("spool an upload: %w", err)
	}
	if errors.Is(err, errSlowBody) {
		return err
	}
	return fmt.Errorf("%w: read the upload: %v", session.ErrInvalid, err)
}
