package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/gpuworker/pipeline"
	"github.com/latentsync/latentsync-service/gpuworker/telemetry"
	"github.com/latentsync/latentsync-service/gpuworker/worker"
	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/metrics"
	"github.com/latentsync/latentsync-service/internal/tracing"
)

const header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func run(outcome worker.Outcome) worker.Run {
	started, done := t0.Add(30*time.Second), t0.Add(40*time.Second)
	r := worker.Run{
		Job:     job.Job{ID: "job_1", Tenant: "tenant-1", CreatedAt: t0, StartedAt: &started, Bundle: "v1"},
		Outcome: outcome, TraceHeader: header, QueuedAt: t0.Add(20 * time.Second), Started: started, Ended: done,
		Stages: []pipeline.StageTiming{{Stage: worker.StageDownload, Seconds: 1}}, Stage: "lip-sync",
	}
	switch outcome {
	case worker.OutcomeSucceeded:
		r.Job.Status, r.Job.CompletedAt = job.Succeeded, &done
		r.Stages = append(r.Stages, pipeline.StageTiming{Stage: pipeline.StageDenoise, Seconds: 6}, pipeline.StageTiming{Stage: worker.StageUpload, Seconds: 1})
		r.Job.Metrics = &job.Metrics{Frames: 100, ProcessingS: 10, StageSeconds: map[string]float64{worker.StageDownload: 1, pipeline.StageDenoise: 6, worker.StageUpload: 1}}
		r.Result = &pipeline.Result{Frames: 100}
	case worker.OutcomeFailed:
		r.Job.Status, r.Job.CompletedAt = job.Failed, &done
		r.Job.Error = &job.Error{Code: joberr.NoFaceDetected}
		r.Err = joberr.New(joberr.NoFaceDetected, "no face")
	case worker.OutcomeRetry:
		r.Job.Status = job.Queued
		r.Err = errors.New("store down")
	}
	return r
}

func TestRunEnded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		outcome      worker.Outcome
		metricLines  int
		metric       string
		spans        []string
		failedSpan   string
		error, fault bool
	}{
		{worker.OutcomeSucceeded, 4, metrics.JobsSucceeded, []string{worker.StageDownload, pipeline.StageDenoise, worker.StageUpload}, "", false, false},
		{worker.OutcomeFailed, 1, metrics.JobsFailed, []string{worker.StageDownload, "lip-sync"}, "lip-sync", true, false},
		{worker.OutcomeRetry, 0, "", []string{worker.StageDownload, "lip-sync"}, "lip-sync", false, true},
		{worker.OutcomeCanceled, 0, "", []string{worker.StageDownload}, "", false, false},
	}
	for _, tc := range tests {
		t.Run(string(tc.outcome), func(t *testing.T) {
			t.Parallel()
			conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			tr, err := tracing.New(tracing.Config{DaemonAddr: conn.LocalAddr().String()})
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			rec, err := metrics.NewRecorder(metrics.NewWriter(&out, ""))
			if err != nil {
				t.Fatal(err)
			}
			(&telemetry.Observer{Metrics: rec, Tracer: tr}).RunEnded(context.Background(), run(tc.outcome))

			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if out.Len() == 0 {
				lines = nil
			}
			if len(lines) != tc.metricLines {
				t.Fatalf("%d EMF lines, want %d:\n%s", len(lines), tc.metricLines, out.String())
			}
			if tc.metric != "" {
				var first map[string]any
				if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first[tc.metric] != 1.0 || first["job_id"] != "job_1" {
					t.Errorf("first EMF line %v (%v), want %s = 1 for job_1", first, err, tc.metric)
				}
			}

			buf := make([]byte, 64<<10)
			if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
				t.Fatal(err)
			}
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("no segment: %v", err)
			}
			_, body, _ := bytes.Cut(buf[:n], []byte("\n"))
			type doc struct {
				Name         string `json:"name"`
				Error, Fault bool
				StartTime    float64 `json:"start_time"`
				EndTime      float64 `json:"end_time"`
				Subsegments  []json.RawMessage
			}
			var seg doc
			if err := json.Unmarshal(body, &seg); err != nil {
				t.Fatal(err)
			}
			if seg.Error != tc.error || seg.Fault != tc.fault {
				t.Errorf("segment error %v fault %v, want %v %v", seg.Error, seg.Fault, tc.error, tc.fault)
			}
			var names []string
			prevEnd := float64(t0.Add(30 * time.Second).Unix())
			for _, raw := range seg.Subsegments {
				var s doc
				if err := json.Unmarshal(raw, &s); err != nil {
					t.Fatal(err)
				}
				names = append(names, s.Name)
				if s.StartTime < prevEnd-1e-3 || s.StartTime > prevEnd+1e-3 {
					t.Errorf("span %s starts at %v, want end to end from the run's start (%v)", s.Name, s.StartTime, prevEnd)
				}
				prevEnd = s.EndTime
				if (s.Error || s.Fault) != (s.Name == tc.failedSpan) {
					t.Errorf("span %s error %v fault %v; want flagged only on %q", s.Name, s.Error, s.Fault, tc.failedSpan)
				}
			}
			if !slices.Equal(names, tc.spans) {
				t.Errorf("spans %v, want %v", names, tc.spans)
			}
			if tc.failedSpan != "" && prevEnd != float64(t0.Add(40*time.Second).Unix()) {
				t.Errorf("failed span ends at %v, want the run's end", prevEnd)
			}
		})
	}
}
