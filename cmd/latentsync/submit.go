package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/latentsync/latentsync-service/internal/apiclient"
	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/webhook"
)

// submitCommand acts exactly as an API client: create a job, PUT the files
// to the presigned URLs, wait for the signed webhook (verifying it) or poll,
// download the result.
func submitCommand(ctx context.Context, args []string, env environment) int {
	fs := flag.NewFlagSet("submit", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	apiURL := fs.String("api", firstSet(env.getenv("LATENTSYNC_API_URL"), "http://127.0.0.1:8080"), "API base URL")
	key := fs.String("key", env.getenv("LATENTSYNC_API_KEY"), "API key (or LATENTSYNC_API_KEY)")
	secret := fs.String("webhook-secret", env.getenv("LATENTSYNC_WEBHOOK_SECRET"), "receive and verify the job's webhook on 127.0.0.1 with this secret (or LATENTSYNC_WEBHOOK_SECRET); empty: poll")
	video := fs.String("video", "", "talking-head video (required)")
	audio := fs.String("audio", "", "speech track (required)")
	out := fs.String("out", "", "where to save the result (required)")
	opts := job.Options{}
	fs.IntVar(&opts.InferenceSteps, "steps", 0, "denoising steps (default 20)")
	fs.Float64Var(&opts.GuidanceScale, "guidance", 0, "guidance scale (default 1.5)")
	fs.Int64Var(&opts.Seed, "seed", 0, "noise seed")
	fs.StringVar(&opts.SyncMode, "sync-mode", "", "cut_off, loop or bounce")
	timeout := fs.Duration("timeout", 15*time.Minute, "give up waiting after this long")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *video == "" || *audio == "" || *out == "" || *key == "" {
		fmt.Fprintln(env.stderr, "latentsync submit: --video, --audio, --out and --key are required")
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	c := &apiclient.Client{BaseURL: *apiURL, APIKey: *key}

	var hooks *webhook.Receiver
	req := apiclient.CreateRequest{Options: &opts, ClientReference: filepath.Base(*video)}
	if *secret != "" {
		raw, err := webhook.ParseSecret(*secret)
		if err != nil {
			return reportError(env, joberr.Wrap(joberr.InvalidRequest, err, "webhook secret: %v", err))
		}
		hooks = webhook.NewReceiver(webhook.ReceiverConfig{Key: raw})
		ep, err := hooks.Listen()
		if err != nil {
			return reportError(env, err)
		}
		defer ep.Close()
		req.Webhook = &apiclient.Webhook{URL: ep.URL}
	}
	for _, in := range []struct {
		path string
		m    *job.Media
	}{{*video, &req.Video}, {*audio, &req.Audio}} {
		st, err := os.Stat(in.path)
		if err != nil {
			return reportError(env, joberr.Wrap(joberr.InvalidRequest, err, "%s: %v", in.path, err))
		}
		*in.m = job.Media{ContentType: apiclient.ContentType(in.path), SizeBytes: st.Size()}
	}
	created, err := c.Create(ctx, req, "")
	if err != nil {
		return reportError(env, err)
	}
	fmt.Fprintf(env.stdout, "job %s created\n", created.ID)
	for in, path := range map[job.Input]string{job.VideoInput: *video, job.AudioInput: *audio} {
		if err := apiclient.Upload(ctx, nil, created.Uploads[in], path); err != nil {
			return reportError(env, err)
		}
	}
	fmt.Fprintln(env.stdout, "uploaded video and audio")

	var view *job.View
	if hooks != nil {
		hook, err := hooks.Next(ctx)
		if err != nil {
			return reportError(env, errors.New("no webhook arrived before the timeout"))
		}
		var data job.View
		if err := json.Unmarshal(hook.Data, &data); err != nil {
			return reportError(env, fmt.Errorf("webhook %s data: %w", hook.ID, err))
		}
		fmt.Fprintf(env.stdout, "webhook %s verified: %s for job %s\n", hook.ID, hook.Type, data.ID)
		view, err = c.Get(ctx, created.ID)
		if err != nil {
			return reportError(env, err)
		}
	} else if view, err = c.Wait(ctx, created.ID, time.Second); err != nil {
		return reportError(env, err)
	}
	metrics, _ := json.Marshal(view.Metrics)
	fmt.Fprintf(env.stdout, "job %s %s\nmetrics %s\n", view.ID, view.Status, metrics)
	if view.Status != job.Succeeded {
		if view.Error != nil {
			return reportError(env, joberr.New(view.Error.Code, "%s", view.Error.Message))
		}
		return reportError(env, fmt.Errorf("job ended %s", view.Status))
	}
	n, err := apiclient.Download(ctx, nil, view.Output.URL, *out)
	if err != nil {
		return reportError(env, err)
	}
	fmt.Fprintf(env.stdout, "output %s (%d bytes)\n", *out, n)
	return exitOK
}
