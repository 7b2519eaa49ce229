// Package infertest gives tests an infer.Runtime on the ONNX Runtime library
// the Makefile installs, and opens models for the length of one test.
package infertest

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/latentsync/latentsync-service/gpuworker/infer"
	"github.com/latentsync/latentsync-service/internal/modroot"
)

// EnvLibrary names the variable that overrides the library path.
const EnvLibrary = "LATENTSYNC_ORT_LIB"

// defaultLibrary is where the Makefile installs ONNX Runtime, relative to the
// module root.
const defaultLibrary = ".deps/onnxruntime-1.24.1/libonnxruntime.so.1.24.1"

// LibraryPath returns $LATENTSYNC_ORT_LIB if set, else the Makefile's install
// path if that file exists, else "".
func LibraryPath() string {
	if p := os.Getenv(EnvLibrary); p != "" {
		return p
	}
	root, err := modroot.Find()
	if err != nil {
		return ""
	}
	p := filepath.Join(root, defaultLibrary)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// ONNX Runtime allows one environment per process, so the test binary shares
// one Runtime. It is never closed: sessions from parallel or later tests may
// still use it, and the process exit releases it.
var (
	once    sync.Once
	shared  *infer.Runtime
	initErr error
)

// Runtime returns the test binary's shared Runtime. It skips t when no
// library is configured or installed and fails t when the library does not
// initialise; a $LATENTSYNC_ORT_LIB that names a missing file fails too, so a
// broken setup is not mistaken for an absent one.
func Runtime(t testing.TB) *infer.Runtime {
	t.Helper()
	lib := LibraryPath()
	if lib == "" {
		t.Skipf("ONNX Runtime not available: set %s or run make deps", EnvLibrary)
	}
	// Initialise outside t's control flow: a t.Fatal inside Do would mark the
	// Once done and leave later tests with a nil runtime and no error.
	once.Do(func() {
		if _, err := os.Stat(lib); err != nil {
			initErr = fmt.Errorf("%s: %w", EnvLibrary, err)
			return
		}
		shared, initErr = infer.NewRuntime(infer.RuntimeOptions{LibraryPath: lib})
	})
	if initErr != nil {
		t.Fatalf("initialise ONNX Runtime from %s: %v", lib, initErr)
	}
	return shared
}

// Open loads an encoded model through a file in t's temporary directory; the
// session is closed when t ends.
func Open(t testing.TB, model []byte) *infer.Session {
	t.Helper()
	Runtime(t) // skip before writing anything when there is no library
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(path, model, 0o600); err != nil {
		t.Fatalf("write model: %v", err)
	}
	return OpenFile(t, path)
}

// OpenFile loads the model at path; the session is closed when t ends.
func OpenFile(t testing.TB, path string) *infer.Session {
	t.Helper()
	s, err := Runtime(t).Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}
