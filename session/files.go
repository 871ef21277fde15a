package session

import (
	"context"
	"io"

	"github.com/sandlot/sandlot/instance"
)

// Files in a node: uploads, the editor's open and save, downloads and the tree of a directory. Paths are checked
// by instance.CleanPath; the bytes go through the engine's API only.

// WriteFile writes size bytes from r to path in a node of a live session, keeping the mode of a file it replaces.
// r must be quick (memory or a file; see instance.Driver.WriteFile).
func (s *Service) WriteFile(ctx context.Context, id, name, path string, size int64, r io.Reader) error {
	if _, err := s.LiveInstance(ctx, id, name); err != nil {
		return err
	}
	return s.nodes.WriteFile(ctx, id, name, path, 0, size, r)
}

// ReadFile opens a file in a node of a live session. The caller closes the reader.
func (s *Service) ReadFile(ctx context.Context, id, name, path string) (io.ReadCloser, instance.FileInfo, error) {
	if _, err := s.LiveInstance(ctx, id, name); err != nil {
		return nil, instance.FileInfo{}, err
	}
	return s.nodes.ReadFile(ctx, id, name, path)
}

// ListDir lists a directory of a node of a live session, depth levels down, at most instance.DefaultListLimit
// entries.
func (s *Service) ListDir(ctx context.Context, id, name, path string, depth int) ([]instance.FileEntry, bool, error) {
	if _, err := s.LiveInstance(ctx, id, name); err != nil {
		return nil, false, err
	}
	return s.nodes.ListDir(ctx, id, name, path, depth, instance.DefaultListLimit)
}
