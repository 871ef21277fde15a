package instance

import "errors"

// Errors a caller may test for with errors.Is. The wrapped message says what and how to fix it.
var (
	ErrEngineUnreachable = errors.New("docker engine unreachable")
	ErrImageMissing      = errors.New("node image missing")
	ErrKernelFeature     = errors.New("kernel feature missing")
	ErrIsolation         = errors.New("node isolation unavailable")
	ErrInvalid           = errors.New("invalid argument")
	ErrNotFound          = errors.New("not found")
	ErrExists            = errors.New("already exists")
	ErrNoSubnet          = errors.New("no free session subnet")
	ErrNotReady          = errors.New("node did not become ready")
	ErrNotRunning        = errors.New("node not running")
	ErrIsDir             = errors.New("is a directory")
	ErrNotDir            = errors.New("not a directory")
)
