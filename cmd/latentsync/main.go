// Command latentsync runs the LatentSync lip-sync pipeline: `latentsync run`
// processes one video and speech track on this machine.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// Set at build time by the Makefile (-ldflags -X) so the binary finds the
// stand-in bundle and the ONNX Runtime library with no environment set.
var (
	defaultBundle string
	defaultORTLib string
)

func main() {
	if os.Getenv("GOGC") == "" {
		// The pipeline's live heap is small and steady (one chunk, two audio
		// windows); a tighter GC target keeps RSS flat across video lengths
		// instead of doubling whatever the longest input keeps live.
		debug.SetGCPercent(50)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := environment{
		stdout:        os.Stdout,
		stderr:        os.Stderr,
		getenv:        os.Getenv,
		defaultBundle: defaultBundle,
		defaultORTLib: defaultORTLib,
	}
	os.Exit(dispatch(ctx, os.Args[1:], env))
}
