package validate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/queue"
)

// maxAttempts bounds the retries of one conditional write; each conflict
// means someone else wrote the job, and there are only a few writers.
const maxAttempts = 10

// accept records the input as valid. The invocation whose write completes
// the pair (its conditional write saw the other input already valid) is the
// only one that enqueues: the store serialises the two writes.
func (v *Validator) accept(ctx context.Context, log *slog.Logger, j *job.Job, in job.Input) error {
	for attempt := 1; ; attempt++ {
		if validated(j, in) { // a concurrent repeat of this event got there first
			return v.resume(ctx, log, j)
		}
		setValidated(j, in)
		j.UpdatedAt = v.cfg.Now()
		err := v.jobs.Update(ctx, j)
		if err == nil {
			if j.VideoValidated && j.AudioValidated {
				return v.enqueue(ctx, log, j)
			}
			log.InfoContext(ctx, "waiting for the other upload")
			return nil
		}
		if !errors.Is(err, job.ErrConflict) || attempt == maxAttempts {
			return fmt.Errorf("record %s of job %s as valid: %w", in, j.ID, err)
		}
		if j, err = v.reload(ctx, j); err != nil || j == nil {
			return err
		}
		if j.Status != job.AwaitingUpload {
			log.InfoContext(ctx, "job moved on while validating; nothing to record", "status", string(j.Status))
			return nil
		}
	}
}

// resume handles a repeated event for an input already valid. With both
// inputs valid and the job still awaiting_upload, either the invocation that
// completed the pair is between its send and its status write, or it died
// there. Within EnqueueGrace it is presumed alive: the event is retried
// later (a concurrent duplicate sends nothing). After it, this invocation
// sends again: a retry of a crashed invocation must not lose the message.
func (v *Validator) resume(ctx context.Context, log *slog.Logger, j *job.Job) error {
	if !j.VideoValidated || !j.AudioValidated {
		return nil
	}
	if age := v.cfg.Now().Sub(j.UpdatedAt); age < v.cfg.EnqueueGrace {
		return fmt.Errorf("job %s (validated %s ago): %w", j.ID, age.Round(time.Millisecond), ErrEnqueueInFlight)
	}
	log.WarnContext(ctx, "both uploads valid but the job was never queued; sending its message again")
	return v.enqueue(ctx, log, j)
}

// enqueue sends the job's message, then moves it to queued. The order is
// what keeps the message from being lost: until the status write succeeds
// the job shows both inputs valid and still awaiting_upload, which a retried
// event (resume) or Sweep recognises and sends again. A duplicate message
// can only come from that recovery (or from SQS itself, which delivers at
// least once); the worker's conditional queued -> processing write runs the
// job once. A message that arrives before the queued write (the job still
// awaiting_upload with both inputs valid) is hidden briefly by the worker and
// received again, not dropped; other non-runnable jobs' messages are deleted.
func (v *Validator) enqueue(ctx context.Context, log *slog.Logger, j *job.Job) error {
	body, err := json.Marshal(job.NewMessage(j, v.cfg.Bundle))
	if err != nil {
		return fmt.Errorf("encode queue message of job %s: %w", j.ID, err)
	}
	attrs := map[string]string{}
	if j.TraceHeader != "" {
		attrs[queue.TraceAttribute] = j.TraceHeader
	}
	msgID, err := v.queue.Send(ctx, body, attrs)
	if err != nil {
		return fmt.Errorf("queue job %s: %w", j.ID, err)
	}
	log = log.With("message_id", msgID)
	for attempt := 1; ; attempt++ {
		if err := j.Apply(job.Queued, v.cfg.Now()); err != nil {
			log.WarnContext(ctx, "message sent for a job that cannot be queued; the worker drops it", "status", string(j.Status))
			return nil
		}
		err := v.jobs.Update(ctx, j)
		if err == nil {
			log.InfoContext(ctx, "job queued")
			return nil
		}
		if !errors.Is(err, job.ErrConflict) || attempt == maxAttempts {
			// The message is out; the retry of this event sends another
			// and writes the status.
			return fmt.Errorf("mark job %s queued after sending message %s: %w", j.ID, msgID, err)
		}
		if j, err = v.reload(ctx, j); err != nil || j == nil {
			return err
		}
		if j.Status != job.AwaitingUpload {
			log.WarnContext(ctx, "job changed after its message was sent; the worker handles the duplicate", "status", string(j.Status))
			return nil
		}
	}
}

// fail fails the job with the upload's verdict and publishes job.failed.
// Only the invocation whose conditional write moves the job to failed
// publishes, so two bad inputs or a repeated event report one error: the
// first verdict stored.
func (v *Validator) fail(ctx context.Context, log *slog.Logger, j *job.Job, verdict *joberr.Error) error {
	for attempt := 1; ; attempt++ {
		if err := j.Fail(verdict.Code, verdict.Message, v.cfg.Now()); err != nil {
			log.InfoContext(ctx, "job already finished; verdict not recorded", "status", string(j.Status))
			return nil
		}
		err := v.jobs.Update(ctx, j)
		if err == nil {
			log.InfoContext(ctx, "job failed", "code", string(verdict.Code))
			return v.publish(ctx, j)
		}
		if !errors.Is(err, job.ErrConflict) || attempt == maxAttempts {
			return fmt.Errorf("fail job %s with %s: %w", j.ID, verdict.Code, err)
		}
		if j, err = v.reload(ctx, j); err != nil || j == nil {
			return err
		}
		if j.Status != job.AwaitingUpload {
			log.InfoContext(ctx, "job finished meanwhile; its first error stands", "status", string(j.Status))
			return nil
		}
	}
}

// publish sends the terminal event of j, which this invocation just wrote.
func (v *Validator) publish(ctx context.Context, j *job.Job) error {
	e, ok := job.EventFor(j, j.View(nil), v.cfg.Now())
	if !ok {
		return nil
	}
	if err := v.events.Publish(ctx, e); err != nil {
		return fmt.Errorf("publish %s of job %s: %w", e.Type, j.ID, err)
	}
	return nil
}

// reload reads the job again after a conflict; nil when it is gone.
func (v *Validator) reload(ctx context.Context, j *job.Job) (*job.Job, error) {
	fresh, err := v.jobs.Get(ctx, j.Tenant, j.ID)
	if errors.Is(err, job.ErrNotFound) {
		v.log.WarnContext(ctx, "job deleted while validating", "job_id", j.ID)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reload job %s: %w", j.ID, err)
	}
	return fresh, nil
}
