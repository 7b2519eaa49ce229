package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
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

	var hooks *hookReceiver
	req := apiclient.CreateRequest{Options: &opts, ClientReference: filepath.Base(*video)}
	if *secret != "" {
		raw, err := webhook.ParseSecret(*secret)
		if err != nil {
			return reportError(env, joberr.Wrap(joberr.InvalidRequest, err, "webhook secret: %v", err))
		}
		if hooks, err = newHookReceiver(raw); err != nil {
			return reportError(env, err)
		}
		defer hooks.Close()
		req.Webhook = &apiclient.Webhook{URL: hooks.URL()}
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
		ev, err := hooks.Wait(ctx)
		if err != nil {
			return reportError(env, err)
		}
		fmt.Fprintf(env.stdout, "webhook %s verified: %s for job %s\n", ev.id, ev.Type, ev.Data.ID)
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

// hookReceiver is a one-shot webhook endpoint on 127.0.0.1 that accepts only
// deliveries whose Standard Webhooks signature verifies.
type hookReceiver struct {
	secret []byte
	srv    *http.Server
	ln     net.Listener
	got    chan hookEvent
}

type hookEvent struct {
	id   string
	Type string   `json:"type"`
	Data job.View `json:"data"`
}

func newHookReceiver(secret []byte) (*hookReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("webhook receiver: %w", err)
	}
	h := &hookReceiver{secret: secret, ln: ln, got: make(chan hookEvent, 1)}
	h.srv = &http.Server{Handler: http.HandlerFunc(h.serve), ReadHeaderTimeout: 5 * time.Second}
	go h.srv.Serve(ln)
	return h, nil
}

func (h *hookReceiver) URL() string { return "http://" + h.ln.Addr().String() + "/webhook" }

func (h *hookReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	if err := webhook.Verify(h.secret, r.Header, body, time.Now()); err != nil {
		http.Error(w, "signature: "+err.Error(), http.StatusUnauthorized)
		return
	}
	var ev hookEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, "body", http.StatusBadRequest)
		return
	}
	ev.id = r.Header.Get(webhook.HeaderID)
	w.WriteHeader(http.StatusNoContent)
	select {
	case h.got <- ev:
	default: // a retry of a delivery already taken
	}
}

// Wait returns the first verified delivery.
func (h *hookReceiver) Wait(ctx context.Context) (hookEvent, error) {
	select {
	case ev := <-h.got:
		return ev, nil
	case <-ctx.Done():
		return hookEvent{}, errors.New("no webhook arrived before the timeout")
	}
}

func (h *hookReceiver) Close() { h.srv.Close() }
