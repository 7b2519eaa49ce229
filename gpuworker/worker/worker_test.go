package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/gpuworker/pipeline"
	"github.com/latentsync/latentsync-service/gpuworker/worker"
	"github.com/latentsync/latentsync-service/internal/adapters/local"
	"github.com/latentsync/latentsync-service/internal/blob"
	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/jobstore"
	"github.com/latentsync/latentsync-service/internal/media/mediatest"
	"github.com/latentsync/latentsync-service/internal/queue"
)

// Timings of the tests: whole-second visibility like SQS, everything else
// short so a test takes a few seconds.
const (
	visibility = 2 * time.Second
	chunkDelay = 50 * time.Millisecond
)

// fakePipeline stands in for the lip-sync pipeline (tested on its own): it
// walks through chunks, checking cancellation and reporting progress
// between them like the real one, and copies the video to the output.
type fakePipeline struct {
	chunks int
	// fail returns this error instead of an output, after the first chunk.
	fail error
	// crash panics there instead.
	crash bool
	// hold, when set, is closed by the test to let runs past the first chunk.
	hold chan struct{}
	// warnings are the result's warning codes.
	warnings []string

	started   chan string // job id of every run, as it starts
	runs      atomic.Int32
	completed atomic.Int32
	stopped   chan error // how runs that did not complete ended
}

func newFakePipeline(chunks int) *fakePipeline {
	return &fakePipeline{chunks: chunks, started: make(chan string, 16), stopped: make(chan error, 16)}
}

const fakeFrames = 50

var fakeStages = []pipeline.StageTiming{{Stage: pipeline.StageDetectFaces, Seconds: 0.25}, {Stage: pipeline.StageDenoise, Seconds: 1.5}}

func (f *fakePipeline) Run(ctx context.Context, req pipeline.Request) (*pipeline.Result, error) {
	f.runs.Add(1)
	f.started <- req.JobID
	res, err := f.run(ctx, req)
	if err != nil {
		f.stopped <- err
		return nil, err
	}
	f.completed.Add(1)
	return res, nil
}

func (f *fakePipeline) run(ctx context.Context, req pipeline.Request) (*pipeline.Result, error) {
	for i := range f.chunks {
		if req.Canceled(ctx) {
			return nil, joberr.New(joberr.Canceled, "job canceled")
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		req.Progress(pipeline.Progress{Stage: "lip-sync", Done: i, Total: f.chunks})
		if i == 1 {
			if f.crash {
				var frames []int
				_ = frames[i] // a bug the input triggers
			}
			if f.fail != nil {
				return nil, f.fail
			}
			if f.hold != nil {
				select {
				case <-f.hold:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
		}
		select {
		case <-time.After(chunkDelay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	req.Progress(pipeline.Progress{Stage: "lip-sync", Done: f.chunks, Total: f.chunks})
	in, err := os.ReadFile(req.VideoPath)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(req.OutputPath, in, 0o600); err != nil {
		return nil, err
	}
	conf, offset := fakeSyncConfidence, fakeSyncOffset
	return &pipeline.Result{
		Frames: fakeFrames, Width: 320, Height: 240, DurationSeconds: 2, Stages: fakeStages,
		SyncConfidence: &conf, SyncOffset: &offset,
		SSIMPreserved: fakeSSIMPreserved, SSIMOverall: fakeSSIMOverall, SSIMFrames: 7,
		Warnings: f.warnings,
	}, nil
}

// The fake's quality metrics.
const (
	fakeSyncConfidence = 7.25
	fakeSyncOffset     = -2
	fakeSSIMPreserved  = 0.875
	fakeSSIMOverall    = 0.75
)

// env is one test's service: the real local adapters in a temp dir.
type env struct {
	t      *testing.T
	jobs   *local.JobStore
	blobs  *local.BlobStore
	q, dlq *local.Queue
	events *local.EventBus
	// delivered is what the event bus's dispatcher handed on (notify's place).
	delivered *recorder
	video     []byte
}

// recorder is the event handler: it keeps what it is given.
type recorder struct {
	mu     sync.Mutex
	events []job.Event
}

func (r *recorder) handle(_ context.Context, e job.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return nil
}

const (
	tenant      = "tenant-1"
	maxReceives = 3
)

func newEnv(t *testing.T) *env {
	t.Helper()
	mediatest.Require(t, "ffmpeg")
	dir := t.TempDir()
	jobs, err := local.OpenJobStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { jobs.Close() })
	blobs, err := local.OpenBlobStore(dir, local.BlobConfig{BaseURL: "http://127.0.0.1:1/blobs/"})
	if err != nil {
		t.Fatal(err)
	}
	qs, err := local.OpenQueues(dir, local.QueuesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { qs.Close() })
	q, err := qs.Queue("jobs", local.QueueConfig{MaxReceives: maxReceives, DeadLetter: "jobs-dlq"})
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := qs.Queue("jobs-dlq", local.QueueConfig{})
	if err != nil {
		t.Fatal(err)
	}
	events, err := local.OpenEventBus(dir, local.EventBusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	dispatched := make(chan struct{})
	go func() {
		defer close(dispatched)
		if err := events.Run(ctx, rec.handle); err != nil {
			t.Errorf("event bus: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-dispatched
		events.Close()
	})
	video, err := os.ReadFile(mediatest.AVMP4(t))
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, jobs: jobs, blobs: blobs, q: q, dlq: dlq, events: events, delivered: rec, video: video}
}

// config is the worker configuration every test starts from.
func (e *env) config(p worker.Pipeline) worker.Config {
	return worker.Config{
		Queue: e.q, Jobs: e.jobs, Inputs: e.blobs, Outputs: e.blobs, Events: e.events, Pipeline: p,
		Logger: slog.New(slog.NewJSONHandler(e.t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
		Wait:   time.Second, Visibility: visibility, RetryDelay: time.Second,
		ProgressEvery: 100 * time.Millisecond, CancelCheckEvery: 100 * time.Millisecond,
		WorkDir: e.t.TempDir(), BundleVersion: "test-bundle",
	}
}

// start runs a worker until the returned stop is called (or the test ends).
func (e *env) start(cfg worker.Config) (stop func()) {
	e.t.Helper()
	w, err := worker.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			e.t.Errorf("Run: %v", err)
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				e.t.Errorf("worker did not stop within 10 s of its context ending")
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

// queueJob stores a queued job with both inputs uploaded and sends its message.
func (e *env) queueJob() *job.Job {
	e.t.Helper()
	j := e.createJob(job.Queued)
	e.sendMessage(j)
	return j
}

func (e *env) createJob(status job.Status) *job.Job {
	e.t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	j := &job.Job{
		ID: job.NewID(now), Tenant: tenant, Status: status, CreatedAt: now, UpdatedAt: now,
		Options:        job.Options{InferenceSteps: 20, GuidanceScale: 1.5, Seed: 7, SyncMode: "cut_off"},
		Video:          job.Media{ContentType: "video/mp4", SizeBytes: int64(len(e.video))},
		Audio:          job.Media{ContentType: "video/mp4", SizeBytes: int64(len(e.video))},
		WebhookURL:     "https://example.com/hook",
		UploadDeadline: now.Add(time.Hour), ExpireAt: now.Add(24 * time.Hour),
	}
	for _, in := range []job.Input{job.VideoInput, job.AudioInput} {
		if err := e.blobs.Put(ctx, job.UploadKey(tenant, j.ID, in), bytes.NewReader(e.video), int64(len(e.video)), "video/mp4"); err != nil {
			e.t.Fatal(err)
		}
	}
	created, err := e.jobs.Create(ctx, j, "", "")
	if err != nil {
		e.t.Fatal(err)
	}
	return created
}

func (e *env) sendMessage(j *job.Job) {
	e.t.Helper()
	body, err := json.Marshal(job.NewMessage(j, "test-bundle"))
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.q.Send(context.Background(), body, map[string]string{"trace_header": "Root=1-test"}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) get(id string) *job.Job {
	e.t.Helper()
	j, err := e.jobs.Get(context.Background(), "", id)
	if err != nil {
		e.t.Fatal(err)
	}
	return j
}

// waitStatus waits until the job reaches status and returns it.
func (e *env) waitStatus(id string, status job.Status, within time.Duration) *job.Job {
	e.t.Helper()
	var j *job.Job
	eventually(e.t, within, func() bool {
		j = e.get(id)
		return j.Status == status
	}, func() string { return "job " + id + " is " + string(j.Status) + ", want " + string(status) })
	return j
}

// cancel does what DELETE /v1/jobs/{id} does to the store.
func (e *env) cancel(id string) {
	e.t.Helper()
	for {
		j := e.get(id)
		if err := j.Apply(job.Canceled, time.Now().UTC()); err != nil {
			e.t.Fatal(err)
		}
		j.CancelRequested = true
		j.Error = &job.Error{Code: joberr.Canceled, Message: "canceled at the client's request"}
		err := e.jobs.Update(context.Background(), j)
		if err == nil {
			return
		}
		if !errors.Is(err, job.ErrConflict) {
			e.t.Fatal(err)
		}
	}
}

// assertDrained checks that q holds no message, hidden or not: anything
// left would be visible again within the visibility timeout.
func assertDrained(t *testing.T, q queue.Queue, name string) {
	t.Helper()
	msgs, err := q.Receive(context.Background(), 10, visibility+500*time.Millisecond, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		t.Errorf("%s still holds message %s (received %d times): %s", name, m.ID, m.ReceiveCount, m.Body)
	}
}

// output reads the stored result of a job, or nil when there is none.
func (e *env) output(j *job.Job) []byte {
	e.t.Helper()
	r, err := e.blobs.NewRangeReader(context.Background(), job.OutputKey(j.Tenant, j.ID), 0, -1)
	if errors.Is(err, blob.ErrNotFound) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// eventsOf returns the distinct events (by ID) published for a job, once
// the outbox has delivered everything.
func (e *env) eventsOf(id string) []job.Event {
	e.t.Helper()
	eventually(e.t, 5*time.Second, func() bool {
		n, err := e.events.Pending()
		return err == nil && n == 0
	}, func() string { return "events not delivered" })
	e.delivered.mu.Lock()
	defer e.delivered.mu.Unlock()
	var out []job.Event
	seen := map[string]bool{}
	for _, ev := range e.delivered.events {
		if ev.JobID == id && !seen[ev.ID] {
			seen[ev.ID] = true
			out = append(out, ev)
		}
	}
	return out
}

func eventually(t *testing.T, within time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, msg())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSuccess(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := newFakePipeline(4)
	p.warnings = []string{pipeline.WarnLowPreservation}
	cfg := e.config(p)
	var mu sync.Mutex
	var busy []bool
	cfg.Busy = func(_ context.Context, b bool) error {
		mu.Lock()
		defer mu.Unlock()
		busy = append(busy, b)
		return nil
	}
	stop := e.start(cfg)
	j := e.queueJob()

	done := e.waitStatus(j.ID, job.Succeeded, 15*time.Second)
	stop()

	if got := e.output(done); !bytes.Equal(got, e.video) {
		t.Errorf("stored output is %d bytes, want the pipeline's %d", len(got), len(e.video))
	}
	if done.OutputKey != job.OutputKey(tenant, j.ID) || done.OutputSize != int64(len(e.video)) {
		t.Errorf("output %q (%d bytes), want %q (%d bytes)", done.OutputKey, done.OutputSize, job.OutputKey(tenant, j.ID), len(e.video))
	}
	m := done.Metrics
	if m == nil {
		t.Fatal("no metrics")
	}
	if m.Frames != fakeFrames || m.DurationS != 2 || m.ProcessingS <= 0 {
		t.Errorf("metrics frames %d duration %v processing %v; want %d, 2, > 0", m.Frames, m.DurationS, m.ProcessingS, fakeFrames)
	}
	for _, s := range fakeStages {
		if m.StageSeconds[s.Stage] != s.Seconds {
			t.Errorf("stage_seconds[%s] = %v, want the pipeline's %v", s.Stage, m.StageSeconds[s.Stage], s.Seconds)
		}
	}
	for _, s := range []string{worker.StageDownload, worker.StageUpload} {
		if _, ok := m.StageSeconds[s]; !ok {
			t.Errorf("stage_seconds lacks the worker's %s: %v", s, m.StageSeconds)
		}
	}
	if done.Progress != 1 || done.Stage != "" || done.StartedAt == nil || done.CompletedAt == nil || done.Bundle != "test-bundle" {
		t.Errorf("finished job: progress %v stage %q started %v completed %v bundle %q", done.Progress, done.Stage, done.StartedAt, done.CompletedAt, done.Bundle)
	}
	evs := e.eventsOf(j.ID)
	if len(evs) != 1 || evs[0].Type != job.EventSucceeded || evs[0].Detail.Status != job.Succeeded || evs[0].Webhook != j.WebhookURL {
		t.Errorf("events %+v, want one job.succeeded with the job's view", evs)
	} else if evs[0].Detail.Metrics == nil || evs[0].Detail.Metrics.Frames != fakeFrames {
		t.Errorf("event detail metrics %+v, want the job's", evs[0].Detail.Metrics)
	}
	// Quality metrics and warnings are stored and in the public view.
	view, err := json.Marshal(done.View(nil))
	if err != nil {
		t.Fatal(err)
	}
	var pub struct {
		Metrics struct {
			SyncConfidence *float64 `json:"sync_confidence"`
			SyncOffset     *int     `json:"sync_offset"`
			SSIM           *float64 `json:"ssim"`
			SSIMPreserved  *float64 `json:"ssim_preserved"`
		} `json:"metrics"`
		Warnings []job.Warning `json:"warnings"`
	}
	if err := json.Unmarshal(view, &pub); err != nil {
		t.Fatal(err)
	}
	pm := pub.Metrics
	if pm.SyncConfidence == nil || *pm.SyncConfidence != fakeSyncConfidence || pm.SyncOffset == nil || *pm.SyncOffset != fakeSyncOffset ||
		pm.SSIM == nil || *pm.SSIM != fakeSSIMOverall || pm.SSIMPreserved == nil || *pm.SSIMPreserved != fakeSSIMPreserved {
		t.Errorf("view metrics %s, want sync %v/%d and SSIM %v/%v", view, fakeSyncConfidence, fakeSyncOffset, fakeSSIMOverall, fakeSSIMPreserved)
	}
	if len(pub.Warnings) != 1 || pub.Warnings[0].Code != pipeline.WarnLowPreservation || !strings.Contains(pub.Warnings[0].Message, "0.875") {
		t.Errorf("view warnings %+v, want one LOW_PRESERVATION naming the SSIM", pub.Warnings)
	}
	if p.runs.Load() != 1 {
		t.Errorf("pipeline ran %d times, want 1", p.runs.Load())
	}
	mu.Lock()
	if !slices.Equal(busy, []bool{true, false}) {
		t.Errorf("busy went %v, want [true false]", busy)
	}
	mu.Unlock()
	assertDrained(t, e.q, "queue")
}

func TestRedeliveredFinishedJobIsNotRunAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := newFakePipeline(2)
	cfg := e.config(p)
	q := &countingQueue{Queue: e.q}
	cfg.Queue = q
	stop := e.start(cfg)
	j := e.queueJob()
	done := e.waitStatus(j.ID, job.Succeeded, 15*time.Second)

	// The same message again, as SQS may deliver it (or validation resend it).
	e.sendMessage(j)
	waitDeletes(t, q, 2)
	stop()
	assertDrained(t, e.q, "queue")

	if p.runs.Load() != 1 {
		t.Errorf("pipeline ran %d times, want 1", p.runs.Load())
	}
	if after := e.get(j.ID); after.Version != done.Version {
		t.Errorf("job written again (version %d -> %d)", done.Version, after.Version)
	}
	if evs := e.eventsOf(j.ID); len(evs) != 1 {
		t.Errorf("%d distinct events, want 1: %+v", len(evs), evs)
	}
}

func TestTwoWorkersSameJobRunOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := newFakePipeline(6)
	q := &countingQueue{Queue: e.q}
	j := e.createJob(job.Queued)
	e.sendMessage(j)
	e.sendMessage(j) // a duplicate: two workers receive the same job at once
	cfg := e.config(p)
	cfg.Queue = q
	stop1, stop2 := e.start(cfg), e.start(cfg)
	e.waitStatus(j.ID, job.Succeeded, 15*time.Second)
	waitDeletes(t, q, 2)
	stop1()
	stop2()
	assertDrained(t, e.q, "queue")

	if p.runs.Load() != 1 || p.completed.Load() != 1 {
		t.Errorf("pipeline started %d and completed %d times, want 1 and 1", p.runs.Load(), p.completed.Load())
	}
	if evs := e.eventsOf(j.ID); len(evs) != 1 || evs[0].Type != job.EventSucceeded {
		t.Errorf("events %+v, want one job.succeeded", evs)
	}
}

// countingQueue counts the deletes that reach the queue, so a test knows
// when a worker has dealt with a message that leaves no other trace.
type countingQueue struct {
	queue.Queue
	deletes atomic.Int32
}

func (q *countingQueue) Delete(ctx context.Context, receipt string) error {
	err := q.Queue.Delete(ctx, receipt)
	if err == nil {
		q.deletes.Add(1)
	}
	return err
}

func waitDeletes(t *testing.T, q *countingQueue, n int32) {
	t.Helper()
	eventually(t, 10*time.Second, func() bool { return q.deletes.Load() >= n },
		func() string { return fmt.Sprintf("%d messages deleted, want %d", q.deletes.Load(), n) })
}

// crashable makes a worker's view of the queue and the store die at once,
// as when its process is killed: nothing it does afterwards lands.
type crashable struct {
	dead atomic.Bool
}

var errKilled = errors.New("process killed")

type deadQueue struct {
	queue.Queue
	c *crashable
}

func (q deadQueue) Receive(ctx context.Context, n int, wait, vis time.Duration) ([]queue.Message, error) {
	if q.c.dead.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return q.Queue.Receive(ctx, n, wait, vis)
}

func (q deadQueue) ChangeVisibility(ctx context.Context, receipt string, d time.Duration) error {
	if q.c.dead.Load() {
		return errKilled
	}
	return q.Queue.ChangeVisibility(ctx, receipt, d)
}

func (q deadQueue) Delete(ctx context.Context, receipt string) error {
	if q.c.dead.Load() {
		return errKilled
	}
	return q.Queue.Delete(ctx, receipt)
}

type deadStore struct {
	jobstore.Store
	c *crashable
}

func (s deadStore) Get(ctx context.Context, tenant, id string) (*job.Job, error) {
	if s.c.dead.Load() {
		return nil, errKilled
	}
	return s.Store.Get(ctx, tenant, id)
}

func (s deadStore) Update(ctx context.Context, j *job.Job) error {
	if s.c.dead.Load() {
		return errKilled
	}
	return s.Store.Update(ctx, j)
}

func TestKilledWorkersJobFinishesOnceAfterRedelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := newFakePipeline(6)
	first.hold = make(chan struct{}) // never released: the first worker dies mid-job
	var crash crashable
	cfg := e.config(first)
	cfg.Queue, cfg.Jobs = deadQueue{e.q, &crash}, deadStore{e.jobs, &crash}
	kill := e.start(cfg)
	j := e.queueJob()
	<-first.started
	e.waitStatus(j.ID, job.Processing, 5*time.Second)
	crash.dead.Store(true)
	kill()

	second := newFakePipeline(3)
	stop := e.start(e.config(second))
	done := e.waitStatus(j.ID, job.Succeeded, 20*time.Second)
	stop()
	assertDrained(t, e.q, "queue")

	if first.completed.Load() != 0 || second.runs.Load() != 1 || second.completed.Load() != 1 {
		t.Errorf("runs: killed worker completed %d, second started %d completed %d; want 0, 1, 1",
			first.completed.Load(), second.runs.Load(), second.completed.Load())
	}
	if !bytes.Equal(e.output(done), e.video) {
		t.Error("output not stored")
	}
	if evs := e.eventsOf(j.ID); len(evs) != 1 || evs[0].Type != job.EventSucceeded {
		t.Errorf("events %+v, want one job.succeeded", evs)
	}
}

func TestDeadLetters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := newFakePipeline(3)
	p.crash = true // every attempt
	cfg := e.config(p)
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dlq := &countingQueue{Queue: e.dlq}
	ctx, cancel := context.WithCancel(context.Background())
	dlqDone := make(chan struct{})
	go func() {
		defer close(dlqDone)
		if err := w.RunDeadLetters(ctx, dlq); err != nil {
			t.Errorf("RunDeadLetters: %v", err)
		}
	}()
	stopDLQ := func() { cancel(); <-dlqDone }
	t.Cleanup(stopDLQ)
	stop := e.start(cfg)

	j := e.queueJob()
	if _, err := e.q.Send(context.Background(), []byte(`{"v":1,"job_id":`), nil); err != nil {
		t.Fatal(err)
	}
	failed := e.waitStatus(j.ID, job.Failed, 30*time.Second)
	waitDeletes(t, dlq, 2) // the crashing job's message and the unparseable one
	stop()
	stopDLQ()

	if failed.Error == nil || failed.Error.Code != joberr.ProcessingFailed {
		t.Errorf("job error %+v, want %s", failed.Error, joberr.ProcessingFailed)
	}
	if got := p.runs.Load(); got != maxReceives {
		t.Errorf("pipeline ran %d times, want one per receive (%d)", got, maxReceives)
	}
	if evs := e.eventsOf(j.ID); len(evs) != 1 || evs[0].Type != job.EventFailed {
		t.Errorf("events %+v, want one job.failed", evs)
	}
	assertDrained(t, e.q, "queue")
	assertDrained(t, e.dlq, "dead-letter queue")
}

func TestFinalFailures(t *testing.T) {
	t.Parallel()
	for _, code := range []joberr.Code{joberr.NoFaceDetected, joberr.CorruptMedia, joberr.NoAudioStream} {
		t.Run(string(code), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			p := newFakePipeline(3)
			p.fail = joberr.New(code, "said the pipeline about %s", code)
			stop := e.start(e.config(p))
			j := e.queueJob()
			failed := e.waitStatus(j.ID, job.Failed, 15*time.Second)
			stop()
			assertDrained(t, e.q, "queue")

			if failed.Error == nil || failed.Error.Code != code || failed.Error.Message != "said the pipeline about "+string(code) {
				t.Errorf("job error %+v, want %s with the pipeline's message", failed.Error, code)
			}
			if p.runs.Load() != 1 {
				t.Errorf("pipeline ran %d times, want 1 (no retry of a bad input)", p.runs.Load())
			}
			evs := e.eventsOf(j.ID)
			if len(evs) != 1 || evs[0].Type != job.EventFailed || evs[0].Detail.Error == nil || evs[0].Detail.Error.Code != code {
				t.Errorf("events %+v, want one job.failed with %s", evs, code)
			}
			if e.output(failed) != nil {
				t.Error("a failed job has an output")
			}
		})
	}
}

func TestCancelBeforeProcessing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := newFakePipeline(3)
	j := e.createJob(job.Queued)
	e.cancel(j.ID)
	canceled := e.get(j.ID)
	e.sendMessage(j)
	cfg := e.config(p)
	q := &countingQueue{Queue: e.q}
	cfg.Queue = q
	stop := e.start(cfg)
	waitDeletes(t, q, 1)
	stop()
	assertDrained(t, e.q, "queue")

	if p.runs.Load() != 0 {
		t.Errorf("pipeline ran %d times for a canceled job", p.runs.Load())
	}
	if after := e.get(j.ID); after.Version != canceled.Version || after.Status != job.Canceled {
		t.Errorf("canceled job changed: %s version %d -> %d", after.Status, canceled.Version, after.Version)
	}
}

func TestCancelDuringProcessing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := newFakePipeline(200) // 10 s unless stopped
	stop := e.start(e.config(p))
	j := e.queueJob()
	<-p.started
	e.waitStatus(j.ID, job.Processing, 5*time.Second)
	e.cancel(j.ID)
	canceled := e.get(j.ID)

	select {
	case err := <-p.stopped:
		if joberr.CodeOf(err) != joberr.Canceled {
			t.Errorf("pipeline stopped with %v, want CANCELED", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("pipeline still running 3 s after the cancel")
	}
	stop()
	assertDrained(t, e.q, "queue")

	after := e.get(j.ID)
	if after.Version != canceled.Version || after.Status != job.Canceled {
		t.Errorf("worker wrote the canceled job: %s version %d -> %d", after.Status, canceled.Version, after.Version)
	}
	if e.output(after) != nil {
		t.Error("output of a canceled job was stored")
	}
	for _, ev := range e.eventsOf(j.ID) {
		t.Errorf("worker published %s for a canceled job", ev.Type)
	}
}

func TestProgressVisibleWhileRunning(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := newFakePipeline(30) // 1.5 s
	e.start(e.config(p))
	j := e.queueJob()

	var seen []float64
	eventually(t, 15*time.Second, func() bool {
		cur := e.get(j.ID)
		if cur.Status == job.Processing && cur.Stage == "lip-sync" {
			if len(seen) == 0 || seen[len(seen)-1] != cur.Progress {
				seen = append(seen, cur.Progress)
			}
		}
		return cur.Status.Terminal()
	}, func() string { return "job did not finish" })

	if len(seen) < 3 {
		t.Fatalf("saw lip-sync progress %v while running, want at least 3 distinct values", seen)
	}
	for i, v := range seen {
		if v <= 0 || v >= 1 || i > 0 && v < seen[i-1] {
			t.Errorf("progress %v: want values in (0,1) that never go down", seen)
			break
		}
	}
	if got := e.get(j.ID); got.Status != job.Succeeded {
		t.Errorf("job %s, want succeeded", got.Status)
	}
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		grace time.Duration
		want  job.Status // after the worker stopped
	}{
		{"released at once", 0, job.Queued},
		{"finishes within the grace", 10 * time.Second, job.Succeeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			p := newFakePipeline(20) // 1 s
			cfg := e.config(p)
			cfg.Visibility = 30 * time.Second // an unreleased message would stay hidden
			cfg.ShutdownGrace = tc.grace
			stop := e.start(cfg)
			j := e.queueJob()
			<-p.started

			began := time.Now()
			stop() // SIGTERM
			took := time.Since(began)
			after := e.get(j.ID)
			if after.Status != tc.want {
				t.Fatalf("after shutdown the job is %s, want %s", after.Status, tc.want)
			}
			if tc.want == job.Succeeded {
				assertDrained(t, e.q, "queue")
				return
			}
			if took > 2*time.Second {
				t.Errorf("shutdown took %v, want prompt", took)
			}
			if after.Stage != "" || after.Progress != 0 {
				t.Errorf("released job shows stage %q progress %v", after.Stage, after.Progress)
			}
			msgs, err := e.q.Receive(context.Background(), 1, 0, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != 1 || msgs[0].ReceiveCount != 2 {
				t.Fatalf("released message not visible at once: %+v", msgs)
			}
			// Back for the next worker.
			if err := e.q.ChangeVisibility(context.Background(), msgs[0].Receipt, 0); err != nil {
				t.Fatal(err)
			}
			next := newFakePipeline(2)
			e.start(e.config(next))
			e.waitStatus(j.ID, job.Succeeded, 15*time.Second)
			if next.completed.Load() != 1 {
				t.Errorf("next worker completed %d runs, want 1", next.completed.Load())
			}
		})
	}
}

func TestMissingInputIsRetriedNotFailed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := newFakePipeline(2)
	j := e.createJob(job.Queued)
	videoKey := job.UploadKey(tenant, j.ID, job.VideoInput)
	if err := e.blobs.Delete(context.Background(), videoKey); err != nil {
		t.Fatal(err)
	}
	e.sendMessage(j)
	e.start(e.config(p))

	// The download fails: the job goes back to queued, not failed.
	eventually(t, 10*time.Second, func() bool {
		cur := e.get(j.ID)
		return cur.Status == job.Queued && cur.StartedAt != nil
	}, func() string { return "job not requeued after a failed download: " + string(e.get(j.ID).Status) })
	if err := e.blobs.Put(context.Background(), videoKey, bytes.NewReader(e.video), int64(len(e.video)), "video/mp4"); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(j.ID, job.Succeeded, 15*time.Second)
	if p.runs.Load() != 1 {
		t.Errorf("pipeline ran %d times, want 1 (only once the input was there)", p.runs.Load())
	}
}

// Validation sends the message before it writes queued; a worker that
// receives it in between must not drop it.
func TestMessageAheadOfQueuedWrite(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := newFakePipeline(2)
	j := e.createJob(job.AwaitingUpload)
	j.VideoValidated, j.AudioValidated = true, true
	if err := e.jobs.Update(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	cfg := e.config(p)
	q := &countingQueue{Queue: e.q}
	cfg.Queue = q
	e.start(cfg)
	e.sendMessage(j)
	time.Sleep(300 * time.Millisecond) // the worker receives it meanwhile

	if err := j.Apply(job.Queued, time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	if err := e.jobs.Update(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(j.ID, job.Succeeded, 15*time.Second)
	if p.runs.Load() != 1 {
		t.Errorf("pipeline ran %d times, want 1", p.runs.Load())
	}
}

func TestHandleDeadLetter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		status  job.Status
		idle    time.Duration // since the job record was last written
		body    string        // instead of the job's message
		want    job.Status
		wantErr joberr.Code
		events  int
	}{
		{name: "queued job fails", status: job.Queued, want: job.Failed, wantErr: joberr.ProcessingFailed, events: 1},
		{name: "abandoned processing job fails", status: job.Processing, idle: time.Hour, want: job.Failed, wantErr: joberr.ProcessingFailed, events: 1},
		{name: "job a live worker runs is left", status: job.Processing, want: job.Processing},
		{name: "succeeded job stays", status: job.Succeeded, want: job.Succeeded, events: 1}, // its event, again
		{name: "canceled job stays", status: job.Canceled, want: job.Canceled},
		{name: "unparseable message", status: job.Queued, body: "not json", want: job.Queued},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			w, err := worker.New(e.config(newFakePipeline(1)))
			if err != nil {
				t.Fatal(err)
			}
			j := e.createJob(tc.status)
			if tc.idle > 0 {
				j.UpdatedAt = time.Now().Add(-tc.idle)
				if err := e.jobs.Update(context.Background(), j); err != nil {
					t.Fatal(err)
				}
			}
			body, err := json.Marshal(job.NewMessage(j, "test-bundle"))
			if err != nil {
				t.Fatal(err)
			}
			if tc.body != "" {
				body = []byte(tc.body)
			}
			msg := queue.Message{ID: "dead-1", Body: body, Receipt: "r", ReceiveCount: 1}
			if err := w.HandleDeadLetter(context.Background(), msg); err != nil {
				t.Fatalf("HandleDeadLetter: %v", err)
			}
			got := e.get(j.ID)
			if got.Status != tc.want {
				t.Errorf("job %s, want %s", got.Status, tc.want)
			}
			if tc.wantErr != "" && (got.Error == nil || got.Error.Code != tc.wantErr) {
				t.Errorf("job error %+v, want %s", got.Error, tc.wantErr)
			}
			evs := e.eventsOf(j.ID)
			if len(evs) != tc.events {
				t.Errorf("%d events %+v, want %d", len(evs), evs, tc.events)
			}
			for _, ev := range evs {
				if ev.Detail.Status != tc.want {
					t.Errorf("event %s shows status %s, want %s", ev.Type, ev.Detail.Status, tc.want)
				}
			}
		})
	}
}

// Concurrency 2 over a pool of two one-at-a-time pipelines runs two jobs at
// once, one on each.
func TestConcurrencyWithPool(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pa, pb := newFakePipeline(3), newFakePipeline(3)
	hold := make(chan struct{})
	pa.hold, pb.hold = hold, hold
	cfg := e.config(worker.Pool(pa, pb))
	cfg.Concurrency = 2
	e.start(cfg)
	j1, j2 := e.queueJob(), e.queueJob()

	started := map[string]bool{}
	for _, p := range []*fakePipeline{pa, pb} {
		select {
		case id := <-p.started:
			started[id] = true
		case <-time.After(10 * time.Second):
			t.Fatal("the two jobs did not run at the same time on the two pipelines")
		}
	}
	if !started[j1.ID] || !started[j2.ID] {
		t.Errorf("started %v, want both jobs", started)
	}
	close(hold)
	e.waitStatus(j1.ID, job.Succeeded, 15*time.Second)
	e.waitStatus(j2.ID, job.Succeeded, 15*time.Second)
}
