package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/latentsync/latentsync-service/gpuworker/pipeline"
	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/queue"
)

// Why a worker stopped owning a job it had claimed.
var (
	errCanceled  = errors.New("job canceled")
	errFinished  = errors.New("job finished elsewhere")
	errTakenOver = errors.New("job taken over by another worker")
)

// lease is this worker's hold on a claimed job. All its writes of the job
// go through update, so the pipeline's progress writes and the heartbeat
// never race each other, and a conflicting write means someone else changed
// the job: canceled it, failed it, or took it over. The job is then lost
// and the run stops.
type lease struct {
	w      *Worker
	log    *slog.Logger
	msg    queue.Message
	id     string
	cancel context.CancelCauseFunc // ends the run once the job is lost

	mu   sync.Mutex
	j    *job.Job // as last written or read by this worker
	lost error    // one of the errors above once the job is no longer ours

	// Used by the goroutine running the job only (sequentially).
	stage        string
	progress     float64
	lastProgress time.Time
	lastCheck    time.Time
}

func newLease(w *Worker, log *slog.Logger, msg queue.Message, j *job.Job, cancel context.CancelCauseFunc) *lease {
	now := w.cfg.Now()
	return &lease{w: w, log: log, msg: msg, id: j.ID, j: j, cancel: cancel, stage: j.Stage, lastProgress: now, lastCheck: now}
}

// current returns a copy of the job as this worker knows it.
func (l *lease) current() job.Job {
	l.mu.Lock()
	defer l.mu.Unlock()
	return *l.j
}

// lostReason is nil while the job is ours; otherwise why not.
func (l *lease) lostReason() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// update applies mutate to a copy of the job and writes it conditionally.
// It returns the lost reason when the job turns out not to be ours, and
// other errors (store outages) as they are.
func (l *lease) update(ctx context.Context, mutate func(*job.Job) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		return l.lost
	}
	next := *l.j
	if err := mutate(&next); err != nil {
		return err
	}
	err := l.w.cfg.Jobs.Update(ctx, &next)
	if err == nil {
		l.j = &next
		return nil
	}
	if !errors.Is(err, job.ErrConflict) && !errors.Is(err, job.ErrNotFound) {
		return fmt.Errorf("write job: %w", err)
	}
	cur, gerr := l.w.cfg.Jobs.Get(ctx, "", l.id)
	if gerr != nil {
		if errors.Is(gerr, job.ErrNotFound) {
			l.loseLocked(errFinished)
			return l.lost
		}
		return fmt.Errorf("write job: %w; read it again: %w", err, gerr)
	}
	l.loseLocked(lossOf(cur))
	return l.lost
}

// lossOf says why cur, a version this worker did not write, ends its hold.
func lossOf(cur *job.Job) error {
	switch {
	case cur.Status == job.Canceled:
		return errCanceled
	case cur.Status.Terminal():
		return errFinished
	}
	return errTakenOver
}

func (l *lease) loseLocked(reason error) {
	l.lost = reason
	l.log.Warn("job no longer held by this worker; stopping", "reason", reason.Error())
	l.cancel(reason)
}

// canceled is the pipeline's cancellation check between chunks: it re-reads
// the job at most every CancelCheckEvery. A failed read is not a
// cancellation; the next check tries again.
func (l *lease) canceled(ctx context.Context) bool {
	if l.lostReason() != nil {
		return true
	}
	now := l.w.cfg.Now()
	if now.Sub(l.lastCheck) < l.w.cfg.CancelCheckEvery {
		return false
	}
	l.lastCheck = now
	cur, err := l.w.cfg.Jobs.Get(ctx, "", l.id)
	if err != nil {
		if ctx.Err() == nil {
			l.log.Warn("cancellation check: read job", "error", err.Error())
		}
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost == nil && (cur.Status != job.Processing || cur.Version > l.j.Version) {
		l.loseLocked(lossOf(cur))
	}
	return l.lost != nil
}

// Overall progress of a run: each stage fills its share of 0..1, so clients
// see one number that only grows. Stages not listed keep the last value.
var stageShare = map[string][2]float64{
	StageDownload:             {0, 0.02},
	pipeline.StageDetectFaces: {0.02, 0.15},
	stageLipSync:              {0.15, 0.95},
	StageUpload:               {0.95, 0.99},
}

// stageLipSync is the pipeline's label for its chunked diffusion pass.
const stageLipSync = "lip-sync"

// report records stage progress (done of total), writing it to the job when
// the stage changed or ProgressEvery has passed since the last write.
func (l *lease) report(ctx context.Context, stage string, done, total int) {
	if share, ok := stageShare[stage]; ok {
		f := 0.0
		if total > 0 {
			f = min(max(float64(done)/float64(total), 0), 1)
		}
		l.progress = max(l.progress, share[0]+f*(share[1]-share[0]))
	}
	now := l.w.cfg.Now()
	if stage == l.stage && now.Sub(l.lastProgress) < l.w.cfg.ProgressEvery {
		return
	}
	l.stage, l.lastProgress = stage, now
	p := l.progress
	err := l.update(ctx, func(j *job.Job) error {
		j.Stage, j.Progress, j.UpdatedAt = stage, p, now
		return nil
	})
	if err != nil && !isLoss(err) && ctx.Err() == nil {
		l.log.Warn("progress write failed", "stage", stage, "error", err.Error())
	}
}

func isLoss(err error) bool {
	return errors.Is(err, errCanceled) || errors.Is(err, errFinished) || errors.Is(err, errTakenOver)
}

// heartbeat keeps the message hidden and the job record fresh until ctx
// ends. A refused visibility change is only logged: the job record, not the
// message, decides who owns the job.
func (l *lease) heartbeat(ctx context.Context) {
	t := time.NewTicker(l.w.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := l.w.cfg.Queue.ChangeVisibility(ctx, l.msg.Receipt, l.w.cfg.Visibility); err != nil && ctx.Err() == nil {
			l.log.Warn("heartbeat: extend message visibility", "error", err.Error())
		}
		now := l.w.cfg.Now()
		err := l.update(ctx, func(j *job.Job) error {
			j.UpdatedAt = now
			return nil
		})
		if err != nil && !isLoss(err) && ctx.Err() == nil {
			l.log.Warn("heartbeat: touch job", "error", err.Error())
		}
	}
}
