// Command latentsync runs the LatentSync lip-sync pipeline: `latentsync run`
// processes one video and speech track on this machine.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// Set at build time by the Makefile (-ldflags -X) so the binary finds the
// stand-in bundle and the ONNX Runtime library with no environment set.
var (
	defaultBundle string
	defaultORTLib string
)

func main() {
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
