package server_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/gpuworker/bundle"
	"github.com/latentsync/latentsync-service/gpuworker/infer/infertest"
	"github.com/latentsync/latentsync-service/gpuworker/pipeline"
	"github.com/latentsync/latentsync-service/gpuworker/worker"
	"github.com/latentsync/latentsync-service/internal/apiclient"
	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/media"
	"github.com/latentsync/latentsync-service/internal/media/mediatest"
	"github.com/latentsync/latentsync-service/internal/server"
	"github.com/latentsync/latentsync-service/internal/webhook/webhooktest"
)

const (
	sampleVideo = "../../testdata/sample/face.mp4"
	sampleAudio = "../../testdata/sample/speech.wav"
	apiKey      = "test-key"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func realPipeline(t *testing.T) worker.Pipeline {
	t.Helper()
	b, err := bundle.Load(context.Background(), infertest.Runtime(t), "../../testdata/bundle")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	p, err := pipeline.New(b, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// start runs a stack on a free port until the returned stop is called.
func start(t *testing.T, dataDir string, p worker.Pipeline) (*server.Server, func()) {
	t.Helper()
	srv, err := server.New(server.Config{
		Addr: "127.0.0.1:0", DataDir: dataDir, APIKeys: map[string]string{apiKey: "acme"},
		WebhookSecret: secret, Pipelines: []worker.Pipeline{p}, Visibility: 20 * time.Second,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("server: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return srv, stop
}

func submit(t *testing.T, c *apiclient.Client, video, audio, hook string) string {
	t.Helper()
	ctx := context.Background()
	req := apiclient.CreateRequest{Webhook: &apiclient.Webhook{URL: hook}}
	for _, in := range []struct {
		path string
		m    *job.Media
	}{{video, &req.Video}, {audio, &req.Audio}} {
		st, err := os.Stat(in.path)
		if err != nil {
			t.Fatal(err)
		}
		*in.m = job.Media{ContentType: apiclient.ContentType(in.path), SizeBytes: st.Size()}
	}
	created, err := c.Create(ctx, req, "")
	if err != nil {
		t.Fatal(err)
	}
	for in, path := range map[job.Input]string{job.VideoInput: video, job.AudioInput: audio} {
		if err := apiclient.Upload(ctx, nil, created.Uploads[in], path); err != nil {
			t.Fatal(err)
		}
	}
	return created.ID
}

// A client's whole journey: create, PUT both files to the presigned URLs,
// signed webhook, status with metrics, download of a playable result.
func TestClientJourney(t *testing.T) {
	srv, _ := start(t, t.TempDir(), realPipeline(t))
	hooks := webhooktest.Start(t, secret)
	c := &apiclient.Client{BaseURL: srv.URL(), APIKey: apiKey}
	id := submit(t, c, sampleVideo, sampleAudio, hooks.URL)

	ev := hooks.Next(t, 90*time.Second)
	if ev["type"] != job.EventSucceeded || ev["data"].(map[string]any)["id"] != id {
		t.Fatalf("webhook %v", ev)
	}
	v, err := c.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != job.Succeeded || v.Metrics == nil || v.Metrics.Frames != 160 || v.Metrics.StageSeconds["08|denoise-unet"] <= 0 || v.Output == nil {
		t.Fatalf("job %+v", v)
	}
	out := filepath.Join(t.TempDir(), "result.mp4")
	if _, err := apiclient.Download(context.Background(), nil, v.Output.URL, out); err != nil {
		t.Fatal(err)
	}
	info, err := media.Probe(context.Background(), out)
	if err != nil || info.Video == nil || info.Audio == nil || info.Video.Width != 512 {
		t.Fatalf("result %+v, %v", info, err)
	}
}

func TestBadUploadFailsTheJob(t *testing.T) {
	srv, _ := start(t, t.TempDir(), realPipeline(t))
	hooks := webhooktest.Start(t, secret)
	c := &apiclient.Client{BaseURL: srv.URL(), APIKey: apiKey}
	id := submit(t, c, mediatest.VideoOnlyMP4(t), mediatest.VideoOnlyMP4(t), hooks.URL)
	ev := hooks.Next(t, 90*time.Second)
	data := ev["data"].(map[string]any)
	if ev["type"] != job.EventFailed || data["id"] != id || data["error"].(map[string]any)["code"] != string(joberr.NoAudioStream) {
		t.Fatalf("webhook %v", ev)
	}
}

// blocked runs until its context ends, like a job interrupted by a shutdown.
type blocked struct{ started chan struct{} }

func (b blocked) Run(ctx context.Context, _ pipeline.Request) (*pipeline.Result, error) {
	close(b.started)
	<-ctx.Done()
	return nil, ctx.Err()
}

// Data survives a restart, and a job in flight when the stack stopped is
// processed by the next one.
func TestJobSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	b := blocked{started: make(chan struct{})}
	srv, stop := start(t, dir, b)
	hooks := webhooktest.Start(t, secret)
	c := &apiclient.Client{BaseURL: srv.URL(), APIKey: apiKey}
	id := submit(t, c, sampleVideo, sampleAudio, hooks.URL)
	select {
	case <-b.started:
	case <-time.After(60 * time.Second):
		t.Fatal("the job never started")
	}
	stop()

	srv, _ = start(t, dir, realPipeline(t))
	c.BaseURL = srv.URL()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	v, err := c.Wait(ctx, id, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != job.Succeeded {
		t.Fatalf("after restart: %+v", v)
	}
	if ev := hooks.Next(t, 90*time.Second); ev["type"] != job.EventSucceeded {
		t.Fatalf("webhook %v", ev)
	}
	var apiErr *apiclient.Error
	other := &apiclient.Client{BaseURL: srv.URL(), APIKey: "nope"}
	if _, err := other.Get(ctx, id); !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden {
		t.Errorf("unknown key: %v", err)
	}
}
