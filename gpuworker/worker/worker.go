// Package worker is the GPU worker's queue consumer: it receives job
// messages, claims the job with a conditional write, keeps the message hidden
// while the pipeline runs, stores the result and finishes the job exactly
// once, whatever the queue redelivers. The ECS task and `latentsync serve`
// run the same Worker.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/latentsync/latentsync-service/gpuworker/pipeline"
	"github.com/latentsync/latentsync-service/internal/blob"
	"github.com/latentsync/latentsync-service/internal/eventbus"
	"github.com/latentsync/latentsync-service/internal/jobstore"
	"github.com/latentsync/latentsync-service/internal/queue"
)

// Pipeline runs one lip-sync job; *pipeline.Pipeline satisfies it.
type Pipeline interface {
	Run(ctx context.Context, req pipeline.Request) (*pipeline.Result, error)
}

// Config wires a Worker. Zero durations take the defaults in brackets.
type Config struct {
	Queue  queue.Queue
	Jobs   jobstore.Store
	Inputs blob.Store // the uploads bucket
	// Outputs is the outputs bucket (may be the same store as Inputs).
	Outputs blob.Store
	Events  eventbus.Publisher
	// Pipeline runs up to Concurrency jobs at once; a *pipeline.Pipeline runs
	// one at a time, so give Pool(p1, p2, ...) when Concurrency > 1.
	Pipeline Pipeline
	Logger   *slog.Logger

	Concurrency int // jobs run at once [1]

	Wait       time.Duration // long-poll wait of one Receive [20 s]
	Visibility time.Duration // how long a received message stays hidden [5 min]
	// Heartbeat is how often a running job's message is hidden again for
	// Visibility and its record touched [Visibility/4].
	Heartbeat time.Duration
	// StaleAfter: a processing job untouched this long has lost its worker
	// and is taken over by the next delivery of its message [Visibility/2].
	// It must lie between Heartbeat and Visibility-Heartbeat, so a live
	// worker never looks dead and a dead one always does once its message
	// reappears.
	StaleAfter time.Duration
	// RetryDelay is the first backoff after an infrastructure failure; it
	// doubles with every receive of the message, up to Visibility [10 s].
	RetryDelay time.Duration
	// ProgressEvery throttles progress writes to the job record [2 s].
	ProgressEvery time.Duration
	// CancelCheckEvery throttles re-reading the job for cancellation [2 s].
	CancelCheckEvery time.Duration
	// ShutdownGrace is how long a running job may go on after Run's context
	// ends before it is released to another worker [0: release at once].
	// Keep it under the task's stop timeout (ECS: at most 120 s).
	ShutdownGrace time.Duration
	// OutputURLTTL, when positive, puts a presigned download URL valid this
	// long in the job.succeeded event.
	OutputURLTTL time.Duration

	// Busy, when set, is told true when the worker takes a message while it
	// had none in hand and false when it has none left: the ECS wiring turns
	// it into task scale-in protection. An error is logged; work goes on.
	Busy func(ctx context.Context, busy bool) error
	// Polled, when set, is told the time of every receive from the jobs
	// queue that did not fail, empty or not: the health check's sign that
	// the worker still polls.
	Polled func(time.Time)
	// Running, when set, is told when this worker starts running a job it
	// claimed (true) and when it is done with it (false).
	Running func(jobID string, running bool)

	// WorkDir holds the per-job temporary directories ("" = os.TempDir()).
	WorkDir string
	// BundleVersion is recorded on the job as the model bundle that ran it
	// (when empty, the message's bundle is kept).
	BundleVersion string

	// Observer, when set, is told how every run of a claimed job ended
	// (see Run): the ECS wiring turns it into metrics and a trace.
	Observer Observer

	Now func() time.Time // [time.Now]
}

// Worker consumes the jobs queue; see Run and RunDeadLetters.
type Worker struct {
	cfg Config
	log *slog.Logger

	busyMu sync.Mutex
	inHand int // messages being handled, for Busy
}

// New validates cfg and fills its defaults.
func New(cfg Config) (*Worker, error) {
	switch {
	case cfg.Queue == nil, cfg.Jobs == nil, cfg.Inputs == nil, cfg.Outputs == nil, cfg.Events == nil, cfg.Pipeline == nil:
		return nil, errors.New("worker: Queue, Jobs, Inputs, Outputs, Events and Pipeline are required")
	case cfg.Concurrency < 0:
		return nil, fmt.Errorf("worker: concurrency %d", cfg.Concurrency)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.Wait, 20*time.Second)
	def(&cfg.Visibility, 5*time.Minute)
	def(&cfg.Heartbeat, cfg.Visibility/4)
	def(&cfg.StaleAfter, cfg.Visibility/2)
	def(&cfg.RetryDelay, 10*time.Second)
	def(&cfg.ProgressEvery, 2*time.Second)
	def(&cfg.CancelCheckEvery, 2*time.Second)
	if cfg.Heartbeat <= 0 || cfg.StaleAfter <= cfg.Heartbeat || cfg.StaleAfter >= cfg.Visibility-cfg.Heartbeat {
		return nil, fmt.Errorf("worker: need 0 < heartbeat (%v) < stale after (%v) < visibility (%v) - heartbeat",
			cfg.Heartbeat, cfg.StaleAfter, cfg.Visibility)
	}
	if cfg.Wait < 0 || cfg.RetryDelay < 0 || cfg.ShutdownGrace < 0 {
		return nil, errors.New("worker: negative duration")
	}
	return &Worker{cfg: cfg, log: cfg.Logger}, nil
}

// errShutdown is the cause of a job context ended by Run's shutdown.
var errShutdown = errors.New("worker shutting down")

// Run receives and processes messages with Concurrency slots until ctx ends.
// Then it stops receiving; a job still running gets ShutdownGrace to finish
// and is otherwise released (job back to queued, message visible at once),
// so another worker picks it up without waiting for the visibility timeout.
// Run returns when every slot is idle.
func (w *Worker) Run(ctx context.Context) error {
	// Jobs outlive ctx by the grace period: hard ends them.
	hard, stop := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stop(nil)
	go func() {
		<-ctx.Done()
		if w.cfg.ShutdownGrace > 0 {
			t := time.NewTimer(w.cfg.ShutdownGrace)
			defer t.Stop()
			select {
			case <-t.C:
			case <-hard.Done():
				return
			}
		}
		stop(errShutdown)
	}()

	var wg sync.WaitGroup
	for slot := range w.cfg.Concurrency {
		wg.Go(func() { w.consume(ctx, hard, slot) })
	}
	wg.Wait()
	return nil
}

// consume is one slot: receive one message, handle it, repeat.
func (w *Worker) consume(ctx, hard context.Context, slot int) {
	log := w.log.With("slot", slot)
	failures := 0
	for ctx.Err() == nil {
		msgs, err := w.cfg.Queue.Receive(ctx, 1, w.cfg.Wait, w.cfg.Visibility)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			log.Error("receive failed", "error", err.Error(), "failures", failures)
			sleep(ctx, min(time.Duration(failures)*time.Second, 30*time.Second))
			continue
		}
		failures = 0
		if w.cfg.Polled != nil {
			w.cfg.Polled(w.cfg.Now())
		}
		for _, m := range msgs {
			w.setBusy(hard, +1)
			w.handle(ctx, hard, m)
			w.setBusy(hard, -1)
		}
	}
}

// setBusy counts messages in hand and tells Busy when the count leaves or
// reaches zero. Calls are serialised so the last word is the current state.
func (w *Worker) setBusy(ctx context.Context, delta int) {
	w.busyMu.Lock()
	defer w.busyMu.Unlock()
	before := w.inHand
	w.inHand += delta
	if w.cfg.Busy == nil || (before == 0) == (w.inHand == 0) {
		return
	}
	ctx, cancel := detached(ctx)
	defer cancel()
	if err := w.cfg.Busy(ctx, w.inHand > 0); err != nil {
		w.log.Error("set busy state", "busy", w.inHand > 0, "error", err.Error())
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// backoff is how long a message stays hidden after the receiveCount-th
// delivery failed for a reason that may pass (an outage): RetryDelay doubled
// per receive, at most Visibility.
func (w *Worker) backoff(receiveCount int) time.Duration {
	d := w.cfg.RetryDelay
	for i := 1; i < receiveCount && d < w.cfg.Visibility; i++ {
		d *= 2
	}
	return min(d, w.cfg.Visibility)
}

// ceilSecond rounds up to whole seconds: SQS counts visibility in seconds
// and would truncate, showing a message earlier than meant.
func ceilSecond(d time.Duration) time.Duration {
	return (d + time.Second - 1).Truncate(time.Second)
}
