package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/latentsync/latentsync-service/gpuworker/pipeline"
	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/queue"
)

// outcome is what running a claimed job produced.
type outcome struct {
	res      *pipeline.Result
	stages   []pipeline.StageTiming // the worker's and the pipeline's, in order
	key      string                 // output key once uploaded
	size     int64
	started  time.Time
	uploaded bool
}

// execute runs a claimed job on ctx (which ends only after the shutdown
// grace) and settles the job and the message according to how it ended.
func (w *Worker) execute(ctx context.Context, log *slog.Logger, msg queue.Message, m job.Message, j *job.Job) {
	claimed := w.cfg.Now()
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	l := newLease(w, log, msg, j, cancel)

	hbCtx, stopHB := context.WithCancel(runCtx)
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		l.heartbeat(hbCtx)
	}()
	out, err := w.work(runCtx, l, m)
	stopHB()
	<-hbDone

	// Bookkeeping from here on must happen even when ctx ended (shutdown).
	dctx, dcancel := detached(ctx)
	defer dcancel()
	if l.stage != "" {
		log = log.With("stage", l.stage) // where the run stopped
	}
	var how Outcome
	switch lost := l.lostReason(); {
	case lost != nil:
		how = w.abandon(dctx, log, l, out, lost)
		err = lost // whatever the pipeline said, it stopped because of this
	case err == nil:
		how = w.succeed(dctx, log, l, out)
	case errors.Is(context.Cause(runCtx), errShutdown):
		log.Info("shutting down: releasing the job to another worker", "error", err.Error())
		how = w.release(dctx, log, l, 0, OutcomeReleased)
	case finalCode(joberr.CodeOf(err)):
		how = w.fail(dctx, log, l, err)
	default:
		d := w.backoff(msg.ReceiveCount)
		log.Error("job attempt failed; will retry", "code", string(joberr.CodeOf(err)), "error", err.Error(), "retry_in_s", d.Seconds())
		how = w.release(dctx, log, l, d, OutcomeRetry)
	}
	if w.cfg.Observer != nil {
		th := msg.Attributes[queue.TraceAttribute]
		if th == "" {
			th = j.TraceHeader
		}
		if how == OutcomeSucceeded {
			err = nil
		}
		w.cfg.Observer.RunEnded(dctx, Run{
			Job: l.current(), Outcome: how, Err: err, TraceHeader: th, QueuedAt: msg.SentAt,
			Started: claimed, Ended: w.cfg.Now(), Stages: out.stages, Stage: l.stage, Result: out.res,
		})
	}
}

// finalCode tells the failures no retry can fix: the client's inputs or
// options are at fault. Everything else (outages, crashes, a missing model)
// is retried and, if it persists, ends in the dead-letter queue.
func finalCode(c joberr.Code) bool {
	switch c {
	case joberr.InvalidRequest, joberr.UnsupportedMedia, joberr.MediaTooLarge, joberr.MediaTooLong,
		joberr.CorruptMedia, joberr.NoVideoStream, joberr.NoAudioStream, joberr.NoFaceDetected,
		joberr.MalwareDetected:
		return true
	}
	return false
}

// work downloads the inputs, runs the pipeline and uploads the result, all
// inside a temporary directory of the job's own.
func (w *Worker) work(ctx context.Context, l *lease, m job.Message) (outcome, error) {
	out := outcome{started: w.cfg.Now()}
	dir, err := os.MkdirTemp(w.cfg.WorkDir, "job-"+m.JobID+"-*")
	if err != nil {
		return out, fmt.Errorf("create job directory: %w", err)
	}
	defer os.RemoveAll(dir)

	video, audio := filepath.Join(dir, "video"), filepath.Join(dir, "audio")
	t := time.Now()
	for _, in := range []struct{ key, path string }{{m.VideoKey, video}, {m.AudioKey, audio}} {
		if err := w.download(ctx, in.key, in.path); err != nil {
			return out, err
		}
	}
	l.report(ctx, StageDownload, 1, 1)
	out.stages = append(out.stages, pipeline.StageTiming{Stage: StageDownload, Seconds: time.Since(t).Seconds()})

	req := pipeline.Request{
		JobID: m.JobID, VideoPath: video, AudioPath: audio, OutputPath: filepath.Join(dir, "result.mp4"),
		Steps: m.Options.InferenceSteps, Guidance: m.Options.GuidanceScale, Seed: uint64(m.Options.Seed),
		SyncMode: pipeline.SyncMode(m.Options.SyncMode), WorkDir: dir,
		Progress: func(p pipeline.Progress) { l.report(ctx, p.Stage, p.Done, p.Total) },
		Canceled: l.canceled,
	}
	res, err := w.runPipeline(ctx, req)
	if err != nil {
		return out, err
	}
	out.res = res
	out.stages = append(out.stages, res.Stages...)

	if lost := l.lostReason(); lost != nil {
		return out, lost // canceled at the last moment: nothing to upload
	}
	l.report(ctx, StageUpload, 0, 1)
	t = time.Now()
	f, err := os.Open(req.OutputPath)
	if err != nil {
		return out, fmt.Errorf("open result: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return out, fmt.Errorf("stat result: %w", err)
	}
	key := job.OutputKey(m.Tenant, m.JobID)
	if err := w.cfg.Outputs.Put(ctx, key, f, st.Size(), "video/mp4"); err != nil {
		return out, fmt.Errorf("upload result to %s: %w", key, err)
	}
	out.key, out.size, out.uploaded = key, st.Size(), true
	out.stages = append(out.stages, pipeline.StageTiming{Stage: StageUpload, Seconds: time.Since(t).Seconds()})
	return out, nil
}

// runPipeline turns a panic in the pipeline into an error, so one bad job
// is retried (and dead-lettered) instead of taking the worker down with
// every other job it runs.
func (w *Worker) runPipeline(ctx context.Context, req pipeline.Request) (res *pipeline.Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("pipeline panic: %v\n%s", r, debug.Stack())
		}
	}()
	return w.cfg.Pipeline.Run(ctx, req)
}

// download copies one input to path.
func (w *Worker) download(ctx context.Context, key, path string) error {
	r, err := w.cfg.Inputs.NewRangeReader(ctx, key, 0, -1)
	if err != nil {
		return fmt.Errorf("download input %s: %w", key, err)
	}
	defer r.Close()
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("download input %s: %w", key, err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("download input %s: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("download input %s: %w", key, err)
	}
	return nil
}

// succeed records the result and metrics, publishes job.succeeded and
// deletes the message.
func (w *Worker) succeed(ctx context.Context, log *slog.Logger, l *lease, out outcome) Outcome {
	now := w.cfg.Now()
	metrics := &job.Metrics{
		Frames: out.res.Frames, DurationS: out.res.DurationSeconds,
		ProcessingS: now.Sub(out.started).Seconds(), StageSeconds: map[string]float64{},
	}
	for _, s := range out.stages {
		metrics.StageSeconds[s.Stage] += s.Seconds
	}
	metrics.SyncConfidence, metrics.SyncOffset = out.res.SyncConfidence, out.res.SyncOffset
	if out.res.SSIMFrames > 0 {
		overall, preserved := out.res.SSIMOverall, out.res.SSIMPreserved
		metrics.SSIM, metrics.SSIMPreserved = &overall, &preserved
	}
	warnings := jobWarnings(out.res)
	err := l.update(ctx, func(j *job.Job) error {
		if err := j.Apply(job.Succeeded, now); err != nil {
			return err
		}
		j.Metrics, j.OutputKey, j.OutputSize, j.Error = metrics, out.key, out.size, nil
		j.Warnings = warnings
		return nil
	})
	if err != nil {
		if lost := l.lostReason(); lost != nil {
			return w.abandon(ctx, log, l, out, lost)
		}
		log.Error("record success; will retry the job", "error", err.Error())
		return w.release(ctx, log, l, w.backoff(l.msg.ReceiveCount), OutcomeRetry)
	}
	j := l.current()
	attrs := []any{"frames", metrics.Frames, "duration_s", metrics.DurationS,
		"processing_s", metrics.ProcessingS, "output_bytes", out.size}
	if metrics.SyncConfidence != nil {
		attrs = append(attrs, "sync_confidence", *metrics.SyncConfidence, "sync_offset", *metrics.SyncOffset)
	}
	if metrics.SSIMPreserved != nil {
		attrs = append(attrs, "ssim", *metrics.SSIM, "ssim_preserved", *metrics.SSIMPreserved)
	}
	if len(out.res.Warnings) > 0 {
		attrs = append(attrs, "warnings", out.res.Warnings)
	}
	log.Info("job succeeded", attrs...)
	w.settle(ctx, log, l.msg, &j)
	return OutcomeSucceeded
}

// fail records a final failure, publishes job.failed and deletes the message.
func (w *Worker) fail(ctx context.Context, log *slog.Logger, l *lease, cause error) Outcome {
	code, message := joberr.CodeOf(cause), joberr.MessageOf(cause)
	err := l.update(ctx, func(j *job.Job) error { return j.Fail(code, message, w.cfg.Now()) })
	if err != nil {
		if lost := l.lostReason(); lost != nil {
			return w.abandon(ctx, log, l, outcome{}, lost)
		}
		log.Error("record failure; will retry the job", "error", err.Error())
		return w.release(ctx, log, l, w.backoff(l.msg.ReceiveCount), OutcomeRetry)
	}
	j := l.current()
	log.Warn("job failed", "code", string(code), "error", cause.Error())
	w.settle(ctx, log, l.msg, &j)
	return OutcomeFailed
}

// settle publishes a finished job's event and deletes its message. When
// the event cannot be published the message comes back after the backoff
// and its next delivery publishes again (see claim).
func (w *Worker) settle(ctx context.Context, log *slog.Logger, msg queue.Message, j *job.Job) {
	if err := w.publish(ctx, j); err != nil {
		log.Error("publish job event", "error", err.Error())
		w.hide(ctx, log, msg, w.backoff(msg.ReceiveCount))
		return
	}
	w.delete(ctx, log, msg)
}

// release hands the job back: queued again, message visible after d. If
// the store cannot be written the job stays processing, and the message's
// next delivery takes it over once it is stale. It returns how (unless the
// job turns out to be lost meanwhile).
func (w *Worker) release(ctx context.Context, log *slog.Logger, l *lease, d time.Duration, how Outcome) Outcome {
	err := l.update(ctx, func(j *job.Job) error {
		if err := j.Apply(job.Queued, w.cfg.Now()); err != nil {
			return err
		}
		j.Stage, j.Progress = "", 0
		return nil
	})
	if err != nil {
		if lost := l.lostReason(); lost != nil {
			return w.abandon(ctx, log, l, outcome{}, lost)
		}
		log.Error("requeue job", "error", err.Error())
	}
	w.hide(ctx, log, l.msg, d)
	return how
}

// abandon ends a run whose job is no longer this worker's.
func (w *Worker) abandon(ctx context.Context, log *slog.Logger, l *lease, out outcome, lost error) Outcome {
	switch {
	case errors.Is(lost, errCanceled):
		// The canceling side wrote the status and published job.canceled.
		if out.uploaded {
			if err := w.cfg.Outputs.Delete(ctx, out.key); err != nil {
				log.Warn("discard output of canceled job", "error", err.Error())
			}
		}
		log.Info("job canceled; output discarded")
		w.delete(ctx, log, l.msg)
		return OutcomeCanceled
	case errors.Is(lost, errFinished):
		w.delete(ctx, log, l.msg)
	default:
		// Another worker runs it now, most likely on this very message:
		// touch neither.
		log.Warn("job taken over by another worker; leaving it")
	}
	return OutcomeLost
}

// jobWarnings explains the pipeline's warning codes to the client.
func jobWarnings(res *pipeline.Result) []job.Warning {
	var out []job.Warning
	for _, code := range res.Warnings {
		msg := code
		switch code {
		case pipeline.WarnLowPreservation:
			msg = fmt.Sprintf("the face outside the mouth changed more than expected (SSIM %.3f): "+
				"the generated mouth may be pasted back in the wrong place", res.SSIMPreserved)
		}
		out = append(out, job.Warning{Code: code, Message: msg})
	}
	return out
}
