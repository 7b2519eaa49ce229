package validate

import (
	"context"
	"errors"
	"fmt"

	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/joberr"
)

// sweepPage is how many overdue jobs one ListExpired call returns.
const sweepPage = 100

// SweepResult counts what one Sweep did.
type SweepResult struct {
	Expired  int // moved to expired, job.failed published
	Enqueued int // both inputs were valid but the message was never sent
}

// Sweep expires the jobs still awaiting upload after their deadline and
// publishes their job.failed event (expired notifies as failed). A job whose
// two inputs are valid is not abandoned but was left unqueued by a crashed
// enqueue whose retries ran out: Sweep sends its message instead. Run it
// periodically (a scheduled Lambda; a ticker in `latentsync serve`).
func (v *Validator) Sweep(ctx context.Context) (SweepResult, error) {
	var res SweepResult
	var errs []error
	for {
		now := v.cfg.Now()
		jobs, err := v.jobs.ListExpired(ctx, now, sweepPage)
		if err != nil {
			return res, errors.Join(append(errs, fmt.Errorf("list expired jobs: %w", err))...)
		}
		progress := 0
		for _, j := range jobs {
			log := v.log.With("job_id", j.ID, "tenant", j.Tenant, "trace_id", j.TraceHeader)
			if j.VideoValidated && j.AudioValidated {
				if now.Sub(j.UpdatedAt) < v.cfg.EnqueueGrace {
					continue // its enqueue is in flight
				}
				log.WarnContext(ctx, "overdue job has both uploads valid; sending its message")
				if err := v.enqueue(ctx, log, j); err != nil {
					errs = append(errs, err)
					continue
				}
				res.Enqueued++
				progress++
				continue
			}
			done, err := v.expire(ctx, j)
			if err != nil {
				errs = append(errs, err)
			}
			if done {
				res.Expired++
				progress++
			}
		}
		// Jobs left over changed meanwhile or failed to write; the next
		// sweep sees them again. Stop rather than spin on them.
		if len(jobs) < sweepPage || progress == 0 {
			return res, errors.Join(errs...)
		}
	}
}

// expire moves one overdue job to expired; false when it changed meanwhile
// (an upload arrived, a cancel): the conditional write lets the other win.
func (v *Validator) expire(ctx context.Context, j *job.Job) (bool, error) {
	deadline := j.UploadDeadline
	if err := j.Apply(job.Expired, v.cfg.Now()); err != nil {
		return false, nil // no longer awaiting upload
	}
	// There is no code for "never uploaded"; TIMEOUT says the client ran
	// out of time, and the message says for what.
	j.Error = &job.Error{Code: joberr.Timeout,
		Message: fmt.Sprintf("the uploads were not completed before their deadline (%s)", deadline.UTC().Format("2006-01-02T15:04:05Z"))}
	err := v.jobs.Update(ctx, j)
	switch {
	case errors.Is(err, job.ErrConflict), errors.Is(err, job.ErrNotFound):
		v.log.InfoContext(ctx, "overdue job changed meanwhile; not expired", "job_id", j.ID)
		return false, nil
	case err != nil:
		return false, fmt.Errorf("expire job %s: %w", j.ID, err)
	}
	v.log.InfoContext(ctx, "job expired", "job_id", j.ID, "tenant", j.Tenant, "trace_id", j.TraceHeader)
	return true, v.publish(ctx, j)
}
