package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/latentsync/latentsync-service/internal/joberr"
)

// Exit codes: scripts can tell a bad input from a broken installation.
const (
	exitOK       = 0
	exitFailure  = 1 // processing failed or an internal error
	exitUsage    = 2 // bad flags
	exitBadInput = 3 // the inputs cannot be processed (job error codes)
	exitModel    = 4 // the model bundle or runtime is unusable
	exitCanceled = 130
)

// environment is what a command may touch of the process, so tests can run
// commands in-process.
type environment struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	defaultBundle  string
	defaultORTLib  string
}

const usage = `usage: latentsync <command> [flags]

commands:
  run     lip-sync one video to one speech track on this machine
  serve   run the whole service locally (API, uploads, validation, queue, workers, webhooks)
  submit  submit a job to a running service as an API client, wait for it, download the result
  eval    FID and FVD between input and output videos (--pairs DIR)
  smoke   run a model bundle on evaluation clips and fail when a quality threshold is missed

run 'latentsync <command> -h' for the command's flags
`

func dispatch(ctx context.Context, args []string, env environment) int {
	if len(args) == 0 {
		fmt.Fprint(env.stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return runCommand(ctx, args[1:], env)
	case "serve":
		return serveCommand(ctx, args[1:], env)
	case "submit":
		return submitCommand(ctx, args[1:], env)
	case "eval":
		return evalCommand(ctx, args[1:], env)
	case "smoke":
		return smokeCommand(ctx, args[1:], env)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(env.stdout, usage)
		return exitOK
	}
	fmt.Fprintf(env.stderr, "latentsync: unknown command %q\n%s", args[0], usage)
	return exitUsage
}

// reportError prints one line naming the problem and picks the exit code.
func reportError(env environment, err error) int {
	code := joberr.CodeOf(err)
	fmt.Fprintf(env.stderr, "latentsync: %s: %s\n", code, oneLine(joberr.MessageOf(err)))
	switch code {
	case joberr.ModelUnavailable:
		return exitModel
	case joberr.Canceled:
		return exitCanceled
	case joberr.InvalidRequest, joberr.UnsupportedMedia, joberr.MediaTooLarge, joberr.MediaTooLong,
		joberr.CorruptMedia, joberr.NoVideoStream, joberr.NoAudioStream, joberr.NoFaceDetected:
		return exitBadInput
	}
	var e *joberr.Error
	if !errors.As(err, &e) {
		// An unexpected error: the full chain helps whoever reads the log.
		fmt.Fprintf(env.stderr, "latentsync: detail: %v\n", oneLine(err.Error()))
	}
	return exitFailure
}

func oneLine(s string) string {
	out := []rune{}
	for _, r := range s {
		if r == '\n' || r == '\r' {
			r = ' '
		}
		out = append(out, r)
	}
	return string(out)
}

// printer is a command's result: a table for people, JSON for scripts.
type printer interface{ print(io.Writer) }

// emit writes a command's result to stdout as indented JSON or as its table.
func emit(env environment, asJSON bool, r printer) error {
	if !asJSON {
		r.print(env.stdout)
		return nil
	}
	enc := json.NewEncoder(env.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
