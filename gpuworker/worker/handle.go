package worker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/queue"
	"github.com/latentsync/latentsync-service/internal/traceheader"
)

// Worker stages around the pipeline's own (numbered like them, so stage
// timings sort in order).
const (
	StageDownload = "00|download-inputs"
	StageUpload   = "14|upload-output" // after the pipeline's last stage, 13|ssim
)

// handle processes one delivery. Every outcome ends in exactly one of:
// message deleted (job finished, duplicate), message hidden for a while
// (retry later, poison on its way to the dead-letter queue), or message
// left with a worker that still owns it.
func (w *Worker) handle(ctx, hard context.Context, msg queue.Message) {
	log := w.log.With("message_id", msg.ID, "receive_count", msg.ReceiveCount)
	// The trace id (not the whole header) is what X-Ray and the metrics'
	// trace_id property show, so logs, traces and metrics join on it.
	traced := false
	if id := traceheader.TraceID(msg.Attributes[queue.TraceAttribute]); id != "" {
		log, traced = log.With("trace_id", id), true
	}
	m, err := job.ParseMessage(msg.Body)
	if err != nil {
		// Poison: no retry can fix it; hiding it for the backoff only gets
		// it to the dead-letter queue sooner.
		log.Error("invalid queue message", "error", err.Error())
		w.hide(hard, log, msg, w.backoff(msg.ReceiveCount))
		return
	}
	log = log.With("job_id", m.JobID, "tenant", m.Tenant)
	if ctx.Err() != nil {
		w.hide(hard, log, msg, 0) // shutting down before the claim: let another worker have it now
		return
	}
	// From the claim on, the job runs on hard: shutdown ends it only after the grace.
	j, ok := w.claim(hard, log, msg, m)
	if !ok {
		return
	}
	if id := traceheader.TraceID(j.TraceHeader); !traced && id != "" {
		log = log.With("trace_id", id)
	}
	if w.cfg.Running != nil {
		w.cfg.Running(m.JobID, true)
		defer w.cfg.Running(m.JobID, false)
	}
	w.execute(hard, log, msg, m, j)
}

// claim decides what the delivery means for its job and, when this worker
// is to run it, takes the job with a conditional write. It returns the
// claimed job, or false when the delivery has been dealt with.
func (w *Worker) claim(ctx context.Context, log *slog.Logger, msg queue.Message, m job.Message) (*job.Job, bool) {
	// A conflict means someone wrote the job between our read and write:
	// read again and decide afresh (it is rarely more than once).
	for range 3 {
		j, err := w.cfg.Jobs.Get(ctx, "", m.JobID)
		if err != nil {
			// Not found included: the message may be ahead of a store that
			// is not yet consistent; if it stays so, the dead-letter queue
			// gets the message and an engineer a look.
			log.Error("read job", "error", err.Error())
			w.hide(ctx, log, msg, w.backoff(msg.ReceiveCount))
			return nil, false
		}
		if j.Tenant != m.Tenant {
			log.Error("queue message tenant differs from the job's", "job_tenant", j.Tenant)
			w.hide(ctx, log, msg, w.backoff(msg.ReceiveCount))
			return nil, false
		}
		now := w.cfg.Now()
		switch {
		case j.Status == job.Succeeded || j.Status == job.Failed:
			// The worker that finished it may have died between its write
			// and its event: publish again (same event ID; consumers dedupe).
			log.Info("job already finished; deleting the message", "status", string(j.Status))
			if err := w.publish(ctx, j); err != nil {
				log.Error("publish job event", "error", err.Error())
				w.hide(ctx, log, msg, w.backoff(msg.ReceiveCount))
				return nil, false
			}
			w.delete(ctx, log, msg)
			return nil, false
		case j.Status == job.AwaitingUpload && j.VideoValidated && j.AudioValidated:
			// Validation sends the message before it writes queued: this
			// delivery overtook that write. Look again shortly.
			log.Info("job not queued yet; checking again later")
			w.hide(ctx, log, msg, w.backoff(msg.ReceiveCount))
			return nil, false
		case j.Status != job.Queued && j.Status != job.Processing:
			log.Info("job not runnable; deleting the message", "status", string(j.Status))
			w.delete(ctx, log, msg)
			return nil, false
		case j.Status == job.Processing && now.Sub(j.UpdatedAt) <= w.cfg.StaleAfter:
			// A live worker holds the job (it touches the record every
			// heartbeat). At the first delivery this message is a duplicate
			// (the owner came through another one): drop it. A redelivery is
			// the owner's own message after it lost hold of it, or one that
			// was released while the store was down: look again once the job
			// would be stale, and take it over then if nobody touched it.
			if msg.ReceiveCount <= 1 {
				log.Info("job is running on another worker; deleting the duplicate message")
				w.delete(ctx, log, msg)
				return nil, false
			}
			wait := ceilSecond(w.cfg.StaleAfter - now.Sub(j.UpdatedAt) + time.Second)
			log.Info("job is running on another worker; checking again later", "after_s", wait.Seconds())
			w.hide(ctx, log, msg, wait)
			return nil, false
		}

		taking := j.Status == job.Processing
		if taking {
			log.Warn("taking over a job whose worker stopped", "idle_s", now.Sub(j.UpdatedAt).Seconds())
		}
		if err := j.Apply(job.Processing, now); err != nil {
			log.Error("claim job", "error", err.Error()) // unreachable: queued/processing -> processing
			return nil, false
		}
		j.UpdatedAt = now
		j.Stage, j.Progress = StageDownload, 0
		if w.cfg.BundleVersion != "" {
			j.Bundle = w.cfg.BundleVersion
		} else if m.Bundle != "" {
			j.Bundle = m.Bundle
		}
		err = w.cfg.Jobs.Update(ctx, j)
		switch {
		case err == nil:
			log.Info("job claimed", "took_over", taking)
			return j, true
		case errors.Is(err, job.ErrConflict):
			log.Info("job changed while claiming it; reading it again")
			continue
		default:
			log.Error("claim job", "error", err.Error())
			w.hide(ctx, log, msg, w.backoff(msg.ReceiveCount))
			return nil, false
		}
	}
	// Still contended: leave the message hidden; its next delivery decides.
	log.Warn("job kept changing while claiming it; leaving the message")
	return nil, false
}

// hide makes the delivery visible again after d (0: now). The queue may
// refuse a stale receipt: then another delivery is under way and decides.
func (w *Worker) hide(ctx context.Context, log *slog.Logger, msg queue.Message, d time.Duration) {
	ctx, cancel := detached(ctx)
	defer cancel()
	if err := w.cfg.Queue.ChangeVisibility(ctx, msg.Receipt, d); err != nil {
		log.Warn("change message visibility", "error", err.Error(), "visibility_s", d.Seconds())
	}
}

func (w *Worker) delete(ctx context.Context, log *slog.Logger, msg queue.Message) {
	ctx, cancel := detached(ctx)
	defer cancel()
	if err := w.cfg.Queue.Delete(ctx, msg.Receipt); err != nil {
		// A stale receipt: the message was received again meanwhile; that
		// delivery finds the job finished and deletes it.
		log.Warn("delete message", "error", err.Error())
	}
}

// detached gives bookkeeping that must happen even when ctx has ended (a
// release at shutdown) a context of its own, bounded in time.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
}

// publish sends j's terminal event.
func (w *Worker) publish(ctx context.Context, j *job.Job) error {
	var out *job.OutputView
	if j.Status == job.Succeeded && w.cfg.OutputURLTTL > 0 && j.OutputKey != "" {
		p, err := w.cfg.Outputs.PresignGet(ctx, j.OutputKey, w.cfg.OutputURLTTL)
		if err != nil {
			return err
		}
		out = &job.OutputView{URL: p.URL, ExpiresAt: p.ExpiresAt, SizeBytes: j.OutputSize}
	}
	e, ok := job.EventFor(j, j.View(out), w.cfg.Now())
	if !ok {
		return nil
	}
	return w.cfg.Events.Publish(ctx, e)
}
