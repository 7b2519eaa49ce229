package worker_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/gpuworker/pipeline"
	"github.com/latentsync/latentsync-service/gpuworker/worker"
	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/joberr"
)

// lockedBuffer collects the worker's JSON log lines from every goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(l.b.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		out = append(out, m)
	}
	return out
}

func TestObserverSeesEveryRunEnd(t *testing.T) {
	t.Parallel()
	transient := errors.New("GPU fell off the bus")
	tests := []struct {
		name     string
		setup    func(p *fakePipeline)
		act      func(e *env, j *job.Job, p *fakePipeline, stop func())
		outcome  worker.Outcome
		status   job.Status // of Run.Job
		errCode  joberr.Code
		errIs    error
		wantErr  bool
		complete bool // the pipeline's result and stages are in the run
	}{
		{name: "succeeded", outcome: worker.OutcomeSucceeded, status: job.Succeeded, complete: true},
		{name: "final failure", setup: func(p *fakePipeline) { p.fail = joberr.New(joberr.NoFaceDetected, "no face") },
			outcome: worker.OutcomeFailed, status: job.Failed, errCode: joberr.NoFaceDetected, wantErr: true},
		{name: "retry", setup: func(p *fakePipeline) { p.fail = transient },
			outcome: worker.OutcomeRetry, status: job.Queued, errIs: transient, wantErr: true},
		{name: "canceled", setup: func(p *fakePipeline) { p.hold = make(chan struct{}) },
			act: func(e *env, j *job.Job, _ *fakePipeline, _ func()) {
				e.waitStage(j.ID, "lip-sync")
				e.cancel(j.ID)
			},
			outcome: worker.OutcomeCanceled, status: job.Processing, wantErr: true},
		{name: "released at shutdown", setup: func(p *fakePipeline) { p.hold = make(chan struct{}) },
			act: func(e *env, j *job.Job, _ *fakePipeline, stop func()) {
				e.waitStage(j.ID, "lip-sync")
				stop()
			},
			outcome: worker.OutcomeReleased, status: job.Queued, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			p := newFakePipeline(3)
			if tc.setup != nil {
				tc.setup(p)
			}
			runs := make(chan worker.Run, 8)
			var logs lockedBuffer
			cfg := e.config(p)
			cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
			cfg.Observer = worker.ObserverFunc(func(_ context.Context, r worker.Run) { runs <- r })
			stop := e.start(cfg)
			j := e.queueJob()
			sent := time.Now()
			<-p.started
			if tc.act != nil {
				tc.act(e, j, p, stop)
			}

			var r worker.Run
			select {
			case r = <-runs:
			case <-time.After(15 * time.Second):
				t.Fatal("observer not called")
			}
			stop()

			if r.Outcome != tc.outcome || r.Job.ID != j.ID || r.Job.Tenant != tenant || r.Job.Status != tc.status {
				t.Errorf("run %s of job %s (%s, %s); want %s of %s (%s, %s)", r.Outcome, r.Job.ID, r.Job.Tenant, r.Job.Status, tc.outcome, j.ID, tenant, tc.status)
			}
			switch {
			case (r.Err != nil) != tc.wantErr:
				t.Errorf("Err %v, want an error: %v", r.Err, tc.wantErr)
			case tc.errIs != nil && !errors.Is(r.Err, tc.errIs), tc.errCode != "" && joberr.CodeOf(r.Err) != tc.errCode:
				t.Errorf("Err %v, want %v %s", r.Err, tc.errIs, tc.errCode)
			}
			if r.TraceHeader != "Root=1-test" {
				t.Errorf("trace header %q, want the message's", r.TraceHeader)
			}
			if r.QueuedAt.IsZero() || r.QueuedAt.After(sent) || r.Started.Before(r.QueuedAt) || r.Ended.Before(r.Started) {
				t.Errorf("queued %v started %v ended %v: want queued <= started <= ended", r.QueuedAt, r.Started, r.Ended)
			}
			if len(r.Stages) == 0 || r.Stages[0].Stage != worker.StageDownload {
				t.Errorf("stages %+v, want the download first", r.Stages)
			}
			if tc.complete {
				want := append(append([]string{worker.StageDownload}, stageNames(fakeStages)...), worker.StageUpload)
				if got := stageNames(r.Stages); !equal(got, want) {
					t.Errorf("stages %v, want %v", got, want)
				}
				if r.Result == nil || r.Result.Frames != fakeFrames || r.Job.Metrics == nil {
					t.Errorf("result %+v metrics %+v, want the pipeline's", r.Result, r.Job.Metrics)
				} else if c := r.Job.Metrics.SyncConfidence; c == nil || *c != fakeSyncConfidence {
					// The metrics recorder emits SyncConfidence from this job.
					t.Errorf("observed job's sync confidence %v, want the pipeline's %v", c, fakeSyncConfidence)
				}
			} else if r.Result != nil || r.Stage != "lip-sync" {
				t.Errorf("result %+v, last stage %q; want no result, stopped in lip-sync", r.Result, r.Stage)
			}

			// Every line about the job says which job, whose, and which trace.
			n := 0
			for _, l := range logs.lines(t) {
				if l["job_id"] == nil {
					continue
				}
				n++
				if l["job_id"] != j.ID || l["tenant"] != tenant || l["trace_id"] != "1-test" {
					t.Errorf("log line %v: want job_id %s, tenant %s, trace_id 1-test", l, j.ID, tenant)
				}
				if l["msg"] == "job failed" || l["msg"] == "job attempt failed; will retry" {
					if l["stage"] != "lip-sync" {
						t.Errorf("failure line %v: want the stage it failed in", l)
					}
				}
			}
			if n == 0 {
				t.Error("no log line carries the job id")
			}
		})
	}
}

// waitStage waits until the running job reports stage.
func (e *env) waitStage(id, stage string) {
	e.t.Helper()
	var j *job.Job
	eventually(e.t, 5*time.Second, func() bool { j = e.get(id); return j.Stage == stage },
		func() string { return "job " + id + " is in stage " + j.Stage + ", want " + stage })
}

func stageNames(s []pipeline.StageTiming) []string {
	out := make([]string, len(s))
	for i, st := range s {
		out[i] = st.Stage
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
