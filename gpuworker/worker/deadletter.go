package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/queue"
)

// HandleDeadLetter settles a message the jobs queue gave up on: its job is
// failed with PROCESSING_FAILED and job.failed published, so the client
// hears of it while the dead-letter alarm calls an engineer. A nil error
// means the message may be deleted; an error means try again later. A job
// that a live worker still runs (its record is fresh) is left alone.
func (w *Worker) HandleDeadLetter(ctx context.Context, msg queue.Message) error {
	log := w.log.With("message_id", msg.ID, "dead_letter", true)
	m, err := job.ParseMessage(msg.Body)
	if err != nil {
		log.Error("dead letter: invalid queue message; no job to fail", "error", err.Error(), "body", clip(msg.Body, 512))
		return nil
	}
	log = log.With("job_id", m.JobID, "tenant", m.Tenant)
	for range 3 {
		j, err := w.cfg.Jobs.Get(ctx, "", m.JobID)
		switch {
		case errors.Is(err, job.ErrNotFound):
			log.Error("dead letter: job not found")
			return nil
		case err != nil:
			return fmt.Errorf("dead letter of job %s: read job: %w", m.JobID, err)
		case j.Tenant != m.Tenant:
			log.Error("dead letter: message tenant differs from the job's", "job_tenant", j.Tenant)
			return nil
		case j.Status == job.Succeeded || j.Status == job.Failed:
			log.Info("dead letter: job already finished", "status", string(j.Status))
			return w.publishEvent(ctx, j) // the worker that finished it may have died before publishing
		case j.Status.Terminal():
			log.Info("dead letter: job already finished", "status", string(j.Status))
			return nil
		case j.Status == job.Processing && w.cfg.Now().Sub(j.UpdatedAt) <= w.cfg.StaleAfter:
			log.Warn("dead letter: job still running on a live worker; leaving it")
			return nil
		}
		if err := j.Fail(joberr.ProcessingFailed, "the job could not be processed; the operators have been alerted", w.cfg.Now()); err != nil {
			return fmt.Errorf("dead letter of job %s: %w", m.JobID, err)
		}
		j.Stage = ""
		err = w.cfg.Jobs.Update(ctx, j)
		if errors.Is(err, job.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("dead letter of job %s: fail job: %w", m.JobID, err)
		}
		log.Error("dead letter: job failed", "code", string(joberr.ProcessingFailed), "receive_count", msg.ReceiveCount)
		return w.publishEvent(ctx, j)
	}
	return fmt.Errorf("dead letter of job %s: job kept changing", m.JobID)
}

func (w *Worker) publishEvent(ctx context.Context, j *job.Job) error {
	if err := w.publish(ctx, j); err != nil {
		return fmt.Errorf("publish event of job %s: %w", j.ID, err)
	}
	return nil
}

// RunDeadLetters consumes the dead-letter queue until ctx ends, deleting
// each message once HandleDeadLetter settled it (`latentsync serve`; on AWS
// the alarm watches the queue and a consumer does the same).
func (w *Worker) RunDeadLetters(ctx context.Context, dlq queue.Queue) error {
	failures := 0
	for ctx.Err() == nil {
		msgs, err := dlq.Receive(ctx, 10, w.cfg.Wait, w.cfg.Visibility)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			failures++
			w.log.Error("dead letter: receive failed", "error", err.Error(), "failures", failures)
			sleep(ctx, min(w.backoff(failures), w.cfg.Wait))
			continue
		}
		failures = 0
		for _, msg := range msgs {
			if err := w.HandleDeadLetter(ctx, msg); err != nil {
				w.log.Error("dead letter: will retry", "message_id", msg.ID, "error", err.Error())
				continue // visible again after its visibility timeout
			}
			dctx, cancel := detached(ctx) // settled: delete it even when ctx just ended
			err := dlq.Delete(dctx, msg.Receipt)
			cancel()
			if err != nil {
				w.log.Warn("dead letter: delete message", "message_id", msg.ID, "error", err.Error())
			}
		}
	}
	return nil
}

func clip(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
