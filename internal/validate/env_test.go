package validate_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/internal/adapters/local"
	"github.com/latentsync/latentsync-service/internal/fakeclock"
	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/validate"
)

const tenant = "tenant-a"

// env is a validator over the real local adapters in a temporary directory.
type env struct {
	t     *testing.T
	ctx   context.Context
	clock *fakeclock.Clock // the validator's time (grace periods, deadlines)
	jobs  *local.JobStore
	blobs *local.BlobStore
	queue *local.Queue
	bus   *local.EventBus
	v     *validate.Validator

	mu     sync.Mutex
	events []job.Event // delivered by the bus's dispatcher
}

// wrap lets a test put fault injection or instrumentation around the adapters.
type wrap struct {
	jobs    func(validate.Jobs) validate.Jobs
	objects func(validate.Objects) validate.Objects
	queue   func(validate.Sender) validate.Sender
}

func newEnv(t *testing.T, cfg validate.Config, w wrap) *env {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{t: t, ctx: ctx, clock: fakeclock.New(time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC))}
	var err error
	if e.jobs, err = local.OpenJobStore(dir); err != nil {
		t.Fatal(err)
	}
	if e.blobs, err = local.OpenBlobStore(dir, local.BlobConfig{BaseURL: "http://127.0.0.1:1/blobs/"}); err != nil {
		t.Fatal(err)
	}
	qs, err := local.OpenQueues(dir, local.QueuesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if e.queue, err = qs.Queue("jobs", local.QueueConfig{}); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(t.Output(), nil))
	if e.bus, err = local.OpenEventBus(dir, local.EventBusOptions{Logger: logger}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.bus.Run(ctx, func(_ context.Context, ev job.Event) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.events = append(e.events, ev)
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		e.bus.Close()
		qs.Close()
		e.blobs.Close()
		e.jobs.Close()
	})

	var jobs validate.Jobs = e.jobs
	var objects validate.Objects = e.blobs
	var sender validate.Sender = e.queue
	if w.jobs != nil {
		jobs = w.jobs(jobs)
	}
	if w.objects != nil {
		objects = w.objects(objects)
	}
	if w.queue != nil {
		sender = w.queue(sender)
	}
	cfg.Now = e.clock.Now
	cfg.Logger = logger
	cfg.TempDir = t.TempDir()
	e.v = validate.New(jobs, objects, sender, e.bus, cfg)
	return e
}

// newJob creates a job awaiting uploads whose declared sizes are those of
// the files, and stores the files that are not "" as its uploads.
func (e *env) newJob(video, audio string) *job.Job {
	e.t.Helper()
	now := e.clock.Now()
	j := &job.Job{
		ID: job.NewID(now), Tenant: tenant, Status: job.AwaitingUpload,
		CreatedAt: now, UpdatedAt: now, UploadDeadline: now.Add(24 * time.Hour), ExpireAt: now.Add(30 * 24 * time.Hour),
		Video:       job.Media{ContentType: "video/mp4", SizeBytes: fileSize(e.t, video)},
		Audio:       job.Media{ContentType: "audio/wav", SizeBytes: fileSize(e.t, audio)},
		TraceHeader: "Root=1-663f1a2b-0123456789abcdef01234567",
		WebhookURL:  "https://client.example/hooks",
	}
	if err := j.Options.Normalize(); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.jobs.Create(e.ctx, j, "", ""); err != nil {
		e.t.Fatal(err)
	}
	if video != "" {
		e.put(job.UploadKey(tenant, j.ID, job.VideoInput), video)
	}
	if audio != "" {
		e.put(job.UploadKey(tenant, j.ID, job.AudioInput), audio)
	}
	return j
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	if path == "" {
		return 1000
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func (e *env) put(key, path string) {
	e.t.Helper()
	f, err := os.Open(path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	if err := e.blobs.Put(e.ctx, key, f, fileSize(e.t, path), "application/octet-stream"); err != nil {
		e.t.Fatal(err)
	}
}

// handle delivers the object-created event of one of j's uploads.
func (e *env) handle(j *job.Job, in job.Input) error {
	key := job.UploadKey(j.Tenant, j.ID, in)
	return e.v.Handle(e.ctx, validate.Upload{Bucket: "uploads", Key: key, Size: 1})
}

func (e *env) get(j *job.Job) *job.Job {
	e.t.Helper()
	got, err := e.jobs.Get(e.ctx, j.Tenant, j.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return got
}

// messages takes every message now in the queue, parsed.
func (e *env) messages() []queuedMessage {
	e.t.Helper()
	var out []queuedMessage
	for {
		ms, err := e.queue.Receive(e.ctx, 10, 0, time.Hour)
		if err != nil {
			e.t.Fatal(err)
		}
		if len(ms) == 0 {
			return out
		}
		for _, m := range ms {
			pm, err := job.ParseMessage(m.Body)
			if err != nil {
				e.t.Fatalf("queue message: %v", err)
			}
			out = append(out, queuedMessage{Message: pm, Attributes: m.Attributes})
		}
	}
}

type queuedMessage struct {
	job.Message
	Attributes map[string]string
}

// published waits for the bus to deliver everything published so far and
// returns what it delivered.
func (e *env) published() []job.Event {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := e.bus.Pending()
		if err != nil {
			e.t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d events still pending", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]job.Event(nil), e.events...)
}

// countingObjects counts the bytes validation reads from the store.
type countingObjects struct {
	validate.Objects
	read atomic.Int64
}

func (c *countingObjects) NewRangeReader(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	r, err := c.Objects.NewRangeReader(ctx, key, off, n)
	if err != nil {
		return nil, err
	}
	return countingReader{r, &c.read}, nil
}

type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (r countingReader) Read(p []byte) (int, error) {
	k, err := r.ReadCloser.Read(p)
	r.n.Add(int64(k))
	return k, err
}

// faultySender fails the first fails sends, then sends through.
type faultySender struct {
	validate.Sender
	fails atomic.Int32
}

var errInjected = errors.New("injected outage")

func (s *faultySender) Send(ctx context.Context, body []byte, attrs map[string]string) (string, error) {
	if s.fails.Add(-1) >= 0 {
		return "", errInjected
	}
	return s.Sender.Send(ctx, body, attrs)
}

// faultyJobs fails the first fails writes that move a job to queued, as a
// crash right after the queue message was sent would.
type faultyJobs struct {
	validate.Jobs
	fails atomic.Int32
}

func (s *faultyJobs) Update(ctx context.Context, j *job.Job) error {
	if j.Status == job.Queued && s.fails.Add(-1) >= 0 {
		return errInjected
	}
	return s.Jobs.Update(ctx, j)
}
