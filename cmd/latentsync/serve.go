package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/latentsync/latentsync-service/gpuworker/worker"
	"github.com/latentsync/latentsync-service/internal/api"
	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/server"
	"github.com/latentsync/latentsync-service/internal/webhook"
)

func serveCommand(ctx context.Context, args []string, env environment) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address (loopback: this is a development stack)")
	data := fs.String("data", "latentsync-data", "directory for jobs, objects, queues, events and mail (kept across restarts)")
	workers := fs.Int("workers", 1, "jobs processed at once (each loads its own model sessions)")
	bundleDir := fs.String("bundle", firstSet(env.getenv("LATENTSYNC_BUNDLE"), env.defaultBundle), "model bundle directory")
	ortLib := fs.String("onnxruntime", firstSet(env.getenv("LATENTSYNC_ORT_LIB"), env.defaultORTLib), "path of libonnxruntime.so")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *workers < 1 || fs.NArg() > 0 {
		fmt.Fprintln(env.stderr, "latentsync serve: --workers must be at least 1 and no arguments are taken")
		return exitUsage
	}
	logger := slog.New(slog.NewJSONHandler(env.stderr, nil))

	keys, secret, err := serveCredentials(env)
	if err != nil {
		return reportError(env, err)
	}
	rt, err := openRuntime(*ortLib, true, logger)
	if err != nil {
		return reportError(env, err)
	}
	defer rt.Close()
	var pipelines []worker.Pipeline
	for range *workers {
		b, p, err := openPipeline(ctx, rt, *bundleDir, logger)
		if err != nil {
			return reportError(env, err)
		}
		defer b.Close()
		pipelines = append(pipelines, p)
	}
	if err := os.MkdirAll(*data, 0o755); err != nil {
		return reportError(env, err)
	}
	srv, err := server.New(server.Config{
		Addr: *addr, DataDir: *data, APIKeys: keys, WebhookSecret: secret,
		Pipelines: pipelines, Logger: logger,
	})
	if err != nil {
		return reportError(env, err)
	}
	fmt.Fprintf(env.stdout, "latentsync serving at %s (data in %s)\n", srv.URL(), *data)
	if err := srv.Run(ctx); err != nil {
		return reportError(env, err)
	}
	return exitOK
}

// serveCredentials reads LATENTSYNC_API_KEYS and LATENTSYNC_WEBHOOK_SECRET;
// with neither set it makes a development key and secret and prints them.
func serveCredentials(env environment) (map[string]string, []byte, error) {
	rawKeys, rawSecret := env.getenv("LATENTSYNC_API_KEYS"), env.getenv("LATENTSYNC_WEBHOOK_SECRET")
	if rawKeys == "" && rawSecret == "" {
		var b [16]byte
		rand.Read(b[:])
		key := "dev_" + hex.EncodeToString(b[:])
		secret, err := webhook.NewSecret()
		if err != nil {
			return nil, nil, err
		}
		fmt.Fprintf(env.stdout, "development API key (tenant dev): %s\nwebhook secret: %s\n", key, secret)
		raw, err := webhook.ParseSecret(secret)
		return map[string]string{key: "dev"}, raw, err
	}
	if rawKeys == "" || rawSecret == "" {
		return nil, nil, joberr.New(joberr.InvalidRequest, "set both LATENTSYNC_API_KEYS and LATENTSYNC_WEBHOOK_SECRET, or neither for development credentials")
	}
	keys, err := api.ParseKeys(rawKeys)
	if err != nil {
		return nil, nil, joberr.Wrap(joberr.InvalidRequest, err, "LATENTSYNC_API_KEYS: %v", err)
	}
	secret, err := webhook.ParseSecret(rawSecret)
	if err != nil {
		return nil, nil, joberr.Wrap(joberr.InvalidRequest, err, "LATENTSYNC_WEBHOOK_SECRET: %v", err)
	}
	return keys, secret, nil
}
