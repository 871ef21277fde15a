package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"

	"github.com/sandlot/sandlot/instance"
	"github.com/sandlot/sandlot/quota"
	"github.com/sandlot/sandlot/session"
	"github.com/sandlot/sandlot/session/workshop"
)

// maxBody is the largest request body the API reads.
const maxBody = 64 << 10

// decode reads one JSON object from the body into v: unknown fields, trailing data and bodies over maxBody are
// errors. An empty body decodes as {}.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, maxBody)
	data, err := io.ReadAll(body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errTooLarge
		}
		if errors.Is(err, errSlowBody) {
			return err
		}
		return fmt.Errorf("%w: read body: %v", session.ErrInvalid, err)
	}
	return decodeBytes(data, v)
}

var errTooLarge = fmt.Errorf("request body over %d bytes", maxBody)

func decodeBytes(data []byte, v any) error {
	if len(data) == 0 {
		data = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: malformed JSON: %v", session.ErrInvalid, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: malformed JSON: data after the object", session.ErrInvalid)
	}
	return nil
}

// respond writes v as JSON with status.
func respond(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// fail writes an error as {"error":{"code","message"}} with the status that fits it.
func fail(w http.ResponseWriter, log *slog.Logger, err error) {
	status, code, msg := classify(err)
	if status == http.StatusInternalServerError {
		log.Error("request failed", "err", err)
	}
	var r *quota.Rejection
	if errors.As(err, &r) && r.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(r.RetryAfter.Seconds()))))
	}
	failWith(w, status, code, msg)
}

func failWith(w http.ResponseWriter, status int, code, msg string) {
	var b errorBody
	b.Error.Code, b.Error.Message = code, msg
	respond(w, status, b)
}

func classify(err error) (status int, code, msg string) {
	var r *quota.Rejection
	var denied *session.Denied
	switch {
	case errors.As(err, &denied):
		return denied.Status, denied.Code, denied.Message
	case errors.As(err, &r):
		if r.Code == quota.CodeOutOfCapacity {
			return http.StatusServiceUnavailable, r.Code, r.Message
		}
		return http.StatusTooManyRequests, r.Code, r.Message
	case errors.Is(err, workshop.ErrLocked):
		return http.StatusForbidden, "workshop_locked", err.Error()
	case errors.Is(err, workshop.ErrOver):
		return http.StatusGone, "workshop_ended", err.Error()
	case errors.Is(err, errTooLarge), errors.Is(err, errUploadTooLarge):
		return http.StatusRequestEntityTooLarge, "too_large", err.Error()
	case errors.Is(err, errUnsupportedType):
		return http.StatusUnsupportedMediaType, "unsupported_media_type", err.Error()
	case errors.Is(err, errSlowBody):
		return http.StatusRequestTimeout, "slow_body", err.Error()
	case errors.Is(err, session.ErrTooManyExecs):
		return http.StatusTooManyRequests, "too_many_execs", err.Error()
	case errors.As(err, new(*instance.BadPathError)):
		return http.StatusBadRequest, "bad_path", err.Error()
	case errors.Is(err, instance.ErrIsDir):
		return http.StatusConflict, "is_directory", err.Error()
	case errors.Is(err, instance.ErrNotDir):
		return http.StatusConflict, "not_directory", err.Error()
	case errors.Is(err, instance.ErrNotRunning):
		return http.StatusConflict, "not_running", err.Error()
	case errors.Is(err, session.ErrInvalid), errors.Is(err, instance.ErrInvalid):
		return http.StatusBadRequest, "invalid_request", err.Error()
	case errors.Is(err, session.ErrNotFound), errors.Is(err, instance.ErrNotFound):
		return http.StatusNotFound, "not_found", err.Error()
	case errors.Is(err, session.ErrEnded):
		return http.StatusGone, "session_ended", err.Error()
	case errors.Is(err, session.ErrConflict), errors.Is(err, instance.ErrExists):
		return http.StatusConflict, "conflict", err.Error()
	case errors.Is(err, instance.ErrKernelFeature):
		return http.StatusUnprocessableEntity, "kernel_feature_missing", err.Error()
	case errors.Is(err, instance.ErrEngineUnreachable):
		return http.StatusServiceUnavailable, "engine_unavailable", "the Docker engine does not answer; try again later"
	}
	return http.StatusInternalServerError, "internal", "internal error; the server log has the details"
}
