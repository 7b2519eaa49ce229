package worker

import (
	"context"
	"time"

	"github.com/latentsync/latentsync-service/gpuworker/pipeline"
	"github.com/latentsync/latentsync-service/internal/job"
)

// Observer learns how each run of a claimed job ended, once the job and
// its message are settled. It is called on the job's own goroutine: keep
// it short (writing a log line, sending a UDP packet).
type Observer interface {
	RunEnded(ctx context.Context, r Run)
}

// ObserverFunc lets a function be an Observer.
type ObserverFunc func(ctx context.Context, r Run)

func (f ObserverFunc) RunEnded(ctx context.Context, r Run) { f(ctx, r) }

// Outcome is how a run ended.
type Outcome string

const (
	// OutcomeSucceeded: the job succeeded; Run.Job is terminal.
	OutcomeSucceeded Outcome = "succeeded"
	// OutcomeFailed: a final failure caused by the job's inputs or options
	// was recorded; Run.Job is terminal with its error code.
	OutcomeFailed Outcome = "failed"
	// OutcomeRetry: the attempt failed for a reason that may pass (or its
	// result could not be recorded); the message comes back after a backoff.
	OutcomeRetry Outcome = "retry"
	// OutcomeReleased: the worker shut down and handed the job back.
	OutcomeReleased Outcome = "released"
	// OutcomeCanceled: the client canceled the job while it ran.
	OutcomeCanceled Outcome = "canceled"
	// OutcomeLost: another worker finished or took over the job.
	OutcomeLost Outcome = "lost"
)

// Run is one run of a claimed job, as it ended.
type Run struct {
	// Job is the job as this worker last wrote or read it.
	Job     job.Job
	Outcome Outcome
	// Err is why the run did not succeed (nil when it did).
	Err error
	// TraceHeader is the X-Ray trace header of the job (queue message
	// attribute, else the job record's); may be empty.
	TraceHeader string
	// QueuedAt is when the message was first sent (zero if the queue does
	// not say).
	QueuedAt time.Time
	// Started is when this worker claimed the job, Ended when it was done.
	Started, Ended time.Time
	// Stages are the measured stage times, the worker's and the
	// pipeline's, in order, as far as the run got.
	Stages []pipeline.StageTiming
	// Stage is the last stage the run reported (where a failure happened).
	Stage string
	// Result is the pipeline's, nil unless the pipeline completed.
	Result *pipeline.Result
}
