package testengine

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Holder builds cmd/sandlot-holder (static, as make build does) into t's temporary directory and returns its path.
func Holder(t testing.TB) string {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	out := filepath.Join(t.TempDir(), "sandlot-holder")
	cmd := exec.Command("go", "build", "-ldflags=-s -w", "-o", out, "./cmd/sandlot-holder")
	cmd.Dir = filepath.Join(filepath.Dir(here), "..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build sandlot-holder: %v\n%s", err, b)
	}
	return out
}
