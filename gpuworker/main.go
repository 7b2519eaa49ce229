// Command gpuworker is the ECS GPU worker: it brings the configured model
// bundle from S3 into a local cache, loads and warms it up, reports ready on
// a loopback health endpoint, then consumes the jobs queue, protecting the
// task from scale-in while a job runs. SIGTERM (scale-in, deployment, Spot
// interruption) stops polling and lets running jobs finish within
// SHUTDOWN_GRACE before they are released to another worker.
//
// Exit codes: 0 after a clean stop, 78 when the model bundle is missing,
// corrupt or does not run (the task never becomes healthy), 1 otherwise.
// `gpuworker healthcheck` probes a running worker for the container health
// check (exit 0 healthy, 1 not).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	os.Exit(code)
}
