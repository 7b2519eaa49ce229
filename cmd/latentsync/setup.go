package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/latentsync/latentsync-service/gpuworker/bundle"
	"github.com/latentsync/latentsync-service/gpuworker/infer"
	"github.com/latentsync/latentsync-service/gpuworker/pipeline"
	"github.com/latentsync/latentsync-service/internal/joberr"
)

// commandLogger discards logs unless LATENTSYNC_LOG is set: a CLI's stderr
// is for the one-line error, the same as `run`.
func commandLogger(env environment) *slog.Logger {
	if env.getenv("LATENTSYNC_LOG") != "" {
		return slog.New(slog.NewJSONHandler(env.stderr, nil))
	}
	return slog.New(slog.NewJSONHandler(io.Discard, nil))
}

// openRuntime loads ONNX Runtime the way `run` does; failures are
// MODEL_UNAVAILABLE (exit 4).
func openRuntime(ortLib string, cuda bool, logger *slog.Logger) (*infer.Runtime, error) {
	if ortLib == "" {
		return nil, joberr.New(joberr.ModelUnavailable, "no ONNX Runtime library: pass --onnxruntime or set LATENTSYNC_ORT_LIB")
	}
	rt, err := infer.NewRuntime(infer.RuntimeOptions{LibraryPath: ortLib, UseCUDA: cuda, Logger: logger})
	if err != nil {
		return nil, joberr.Wrap(joberr.ModelUnavailable, err, "cannot load ONNX Runtime from %s", ortLib)
	}
	return rt, nil
}

// openPipeline loads and verifies the model bundle at dir and prepares a
// pipeline on it, as `run` does; the caller closes the bundle.
func openPipeline(ctx context.Context, rt *infer.Runtime, dir string, logger *slog.Logger) (*bundle.Bundle, *pipeline.Pipeline, error) {
	b, err := bundle.Load(ctx, rt, dir)
	if err != nil {
		return nil, nil, err
	}
	p, err := pipeline.New(b, logger)
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	return b, p, nil
}

// besideDefaultBundle names a directory next to the build's default bundle
// (testdata/evalbundle, testdata/sample for a binary built by the Makefile),
// or "" when the build has none.
func besideDefaultBundle(env environment, name string) string {
	if env.defaultBundle == "" {
		return ""
	}
	return filepath.Join(filepath.Dir(env.defaultBundle), name)
}
