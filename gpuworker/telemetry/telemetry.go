// Package telemetry turns the worker's run reports into CloudWatch metrics
// (internal/metrics) and X-Ray traces (internal/tracing): it is the
// worker.Observer the ECS task wires in.
package telemetry

import (
	"context"
	"log/slog"
	"time"

	"github.com/latentsync/latentsync-service/gpuworker/worker"
	"github.com/latentsync/latentsync-service/internal/metrics"
	"github.com/latentsync/latentsync-service/internal/tracing"
)

// Observer records each run; a nil Metrics or Tracer is skipped.
type Observer struct {
	Metrics *metrics.Recorder
	Tracer  *tracing.Tracer
	Log     *slog.Logger
}

var _ worker.Observer = (*Observer)(nil)

// RunEnded writes the metrics of a job that finished (succeeded or failed)
// and the trace of every run, retries included.
func (o *Observer) RunEnded(ctx context.Context, r worker.Run) {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	if o.Metrics != nil && (r.Outcome == worker.OutcomeSucceeded || r.Outcome == worker.OutcomeFailed) {
		if err := o.Metrics.JobFinished(&r.Job, r.QueuedAt); err != nil {
			log.Error("write job metrics", "job_id", r.Job.ID, "tenant", r.Job.Tenant, "error", err.Error())
		}
	}
	if o.Tracer != nil {
		o.Tracer.Record(ctx, TraceRun(r))
	}
}

// TraceRun lays the run's measured stages end to end from its start (the
// pipeline reports totals per stage, not when each ran). A run that failed
// gets one more span, for the stage it failed in, up to the run's end.
// Only a failure or a retry flags the trace: a cancel or a release at
// shutdown is no fault of the service.
func TraceRun(r worker.Run) tracing.Run {
	tr := tracing.Run{
		JobID: r.Job.ID, Tenant: r.Job.Tenant, Bundle: r.Job.Bundle, TraceHeader: r.TraceHeader,
		Start: r.Started, End: r.Ended, Outcome: string(r.Outcome),
	}
	at := r.Started
	for _, s := range r.Stages {
		d := time.Duration(s.Seconds * float64(time.Second))
		tr.Spans = append(tr.Spans, tracing.Span{Name: s.Stage, Start: at, Duration: d})
		at = at.Add(d)
	}
	if r.Outcome == worker.OutcomeFailed || r.Outcome == worker.OutcomeRetry {
		tr.Err, tr.ClientError = r.Err, r.Outcome == worker.OutcomeFailed
		if r.Stage != "" && r.Ended.After(at) {
			tr.Spans = append(tr.Spans, tracing.Span{Name: r.Stage, Start: at, Duration: r.Ended.Sub(at), Err: r.Err})
		}
	}
	return tr
}
