package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/sandlot/sandlot/images"
	"github.com/sandlot/sandlot/session"
)

// ImageCache is the image cache as the API uses it (images.Cache).
type ImageCache interface {
	List() []images.Image
	Preload(ctx context.Context, refs []string, progress func(images.Progress)) error
	Import(ctx context.Context, archive io.Reader) ([]string, error)
}

// DefaultMaxImport is the largest `docker save` archive an import takes.
const DefaultMaxImport = 16 << 30

var errNoImageCache = &session.Denied{Status: http.StatusNotFound, Code: "no_image_cache",
	Message: "this server runs no image cache of its own (it was started with --registry)"}

// listImages answers what the cache holds. Anyone may ask (the page shows it); the answer is at most a second old,
// so that asking often costs the storage nothing.
func (a *api) listImages() http.Handler {
	var mu sync.Mutex
	var last []images.Image
	var at time.Time
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.Images == nil {
			fail(w, a.log, errNoImageCache)
			return
		}
		mu.Lock()
		if time.Since(at) > time.Second {
			last, at = a.cfg.Images.List(), time.Now()
		}
		list := last
		mu.Unlock()
		if list == nil {
			list = []images.Image{}
		}
		respond(w, http.StatusOK, map[string]any{"images": list})
	})
}

type preloadRequest struct {
	Images []string `json:"images"`
}

// preloadImages puts images into the cache, answering as it goes with one JSON object a line (images.Progress, at
// most two a second for each image, and always its last), then {"finished":true} or {"finished":true,"error":...}.
func (a *api) preloadImages() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.Images == nil {
			fail(w, a.log, errNoImageCache)
			return
		}
		var req preloadRequest
		if err := decode(w, r, &req); err != nil {
			fail(w, a.log, err)
			return
		}
		if len(req.Images) == 0 || len(req.Images) > 100 {
			fail(w, a.log, fmt.Errorf("%w: images: give 1 to 100 image names", session.ErrInvalid))
			return
		}
		for _, ref := range req.Images {
			if err := images.CheckRef(ref); err != nil {
				fail(w, a.log, fmt.Errorf("%w: %v", session.ErrInvalid, err))
				return
			}
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		enc := json.NewEncoder(w)
		var said time.Time
		err := a.cfg.Images.Preload(r.Context(), req.Images, func(p images.Progress) {
			final := p.Digest != "" || p.Error != ""
			if !final && time.Since(said) < 500*time.Millisecond {
				return
			}
			said = time.Now()
			_ = enc.Encode(p)
			_ = rc.Flush()
		})
		end := map[string]any{"finished": true}
		if err != nil {
			a.log.Warn("image cache: preload", "err", err)
			end["error"] = err.Error()
		}
		_ = enc.Encode(end)
	})
}

// importImages takes a `docker save` archive as the body.
func (a *api) importImages() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.Images == nil {
			fail(w, a.log, errNoImageCache)
			return
		}
		limit := a.cfg.MaxImport
		if limit == 0 {
			limit = DefaultMaxImport
		}
		names, err := a.cfg.Images.Import(r.Context(), http.MaxBytesReader(w, r.Body, limit))
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			failWith(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the archive is over %d bytes", limit))
		case errors.Is(err, images.ErrNotAnArchive):
			failWith(w, http.StatusBadRequest, "not_an_archive", err.Error())
		case err != nil:
			fail(w, a.log, err)
		default:
			respond(w, http.StatusOK, map[string]any{"images": names})
		}
	})
}
