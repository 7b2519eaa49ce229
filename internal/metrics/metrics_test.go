package metrics_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/internal/syncbuf"

	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/metrics"
)

// emfLine is one output line decoded the way CloudWatch reads it.
type emfLine struct {
	fields map[string]any
	aws    struct {
		Timestamp         int64
		CloudWatchMetrics []struct {
			Namespace  string
			Dimensions [][]string
			Metrics    []struct{ Name, Unit string }
		}
	}
}

// published is one metric as CloudWatch would store it from a line.
type published struct {
	name, unit string
	dims       []string // the dimension set, in order
	value      float64
}

func parseLines(t *testing.T, out string) []emfLine {
	t.Helper()
	var lines []emfLine
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var l emfLine
		if err := json.Unmarshal(sc.Bytes(), &l.fields); err != nil {
			t.Fatalf("line is not one JSON object: %v: %s", err, sc.Text())
		}
		raw, ok := l.fields["_aws"]
		if !ok {
			t.Fatalf("line has no _aws block: %s", sc.Text())
		}
		b, _ := json.Marshal(raw)
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l.aws); err != nil {
			t.Fatalf("_aws block: %v: %s", err, b)
		}
		lines = append(lines, l)
	}
	return lines
}

// metricsOf checks the line's structure against EMF's rules and the
// package's Definitions, and returns every (metric, dimension set) pair.
func metricsOf(t *testing.T, l emfLine) []published {
	t.Helper()
	defs := map[string]metrics.Definition{}
	for _, d := range metrics.Definitions() {
		defs[d.Name] = d
	}
	var out []published
	for _, d := range l.aws.CloudWatchMetrics {
		if d.Namespace != metrics.DefaultNamespace {
			t.Errorf("namespace %q, want %q", d.Namespace, metrics.DefaultNamespace)
		}
		for _, m := range d.Metrics {
			v, ok := l.fields[m.Name].(float64)
			if !ok {
				t.Errorf("metric %s has no numeric value in the record: %v", m.Name, l.fields[m.Name])
			}
			def, ok := defs[m.Name]
			if !ok {
				t.Errorf("metric %s is not in Definitions()", m.Name)
			}
			if string(def.Unit) != m.Unit {
				t.Errorf("metric %s unit %q, Definitions() says %q", m.Name, m.Unit, def.Unit)
			}
			for _, set := range d.Dimensions {
				for _, dim := range set {
					if s, ok := l.fields[dim].(string); !ok || s == "" {
						t.Errorf("dimension %s of %s has no value in the record", dim, m.Name)
					}
				}
				if !slices.ContainsFunc(def.DimensionSets, func(ds []string) bool { return slices.Equal(ds, set) }) {
					t.Errorf("metric %s published under %v, not one of Definitions()' %v", m.Name, set, def.DimensionSets)
				}
				out = append(out, published{m.Name, m.Unit, set, v})
			}
		}
	}
	return out
}

func find(ps []published, name string, dims ...string) (published, bool) {
	for _, p := range ps {
		if p.name == name && slices.Equal(p.dims, dims) {
			return p, true
		}
	}
	return published{}, false
}

func newRecorder(t *testing.T, buf *bytes.Buffer) *metrics.Recorder {
	t.Helper()
	r, err := metrics.NewRecorder(metrics.NewWriter(buf, ""))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func finishedJob(status job.Status) *job.Job {
	started, completed := t0.Add(40*time.Second), t0.Add(100*time.Second)
	j := &job.Job{
		ID: "job_1", Tenant: "tenant-1", Status: status, CreatedAt: t0, StartedAt: &started, CompletedAt: &completed,
		Bundle: "v1.5.0", TraceHeader: "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
	}
	if status == job.Succeeded {
		j.Metrics = &job.Metrics{Frames: 250, DurationS: 10, ProcessingS: 50, StageSeconds: map[string]float64{
			"00|download-inputs": 1.5, "08|denoise-unet": 30, "12|upload-output": 0.5,
		}}
	}
	return j
}

func TestSucceededJob(t *testing.T) {
	t.Parallel()
	conf := 7.25
	for _, tc := range []struct {
		name string
		sync *float64
	}{{"with SyncNet", &conf}, {"without SyncNet", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			j := finishedJob(job.Succeeded)
			j.Metrics.SyncConfidence = tc.sync
			queued := t0.Add(25 * time.Second)
			if err := newRecorder(t, &buf).JobFinished(j, queued); err != nil {
				t.Fatal(err)
			}
			lines := parseLines(t, buf.String())
			if len(lines) != 1+len(j.Metrics.StageSeconds) {
				t.Fatalf("%d lines, want 1 job line and %d stage lines:\n%s", len(lines), len(j.Metrics.StageSeconds), buf.String())
			}
			for i, l := range lines {
				if l.aws.Timestamp != j.CompletedAt.UnixMilli() {
					t.Errorf("line %d: Timestamp %d, want completion %d", i, l.aws.Timestamp, j.CompletedAt.UnixMilli())
				}
				for k, want := range map[string]any{"job_id": "job_1", "tenant": "tenant-1",
					"bundle": "v1.5.0", "trace_id": "1-5759e988-bd862e3fe1be46a994272793"} {
					if l.fields[k] != want {
						t.Errorf("line %d: %s = %v, want %v", i, k, l.fields[k], want)
					}
				}
				if _, ok := l.fields["ErrorCode"]; ok {
					t.Errorf("line %d: a succeeded job carries an ErrorCode", i)
				}
			}

			job := metricsOf(t, lines[0])
			want := map[string]float64{
				metrics.JobsSucceeded:     1,
				metrics.EndToEndSeconds:   100, // created -> completed
				metrics.QueueWaitSeconds:  15,  // queued -> started
				metrics.ProcessingSeconds: 50,
				metrics.FramesPerSecond:   5, // 250 frames / 50 s
			}
			if tc.sync != nil {
				want[metrics.SyncConfidence] = conf
			}
			if len(job) != len(want) {
				t.Errorf("job line publishes %d metrics, want %d: %+v", len(job), len(want), job)
			}
			for name, v := range want {
				p, ok := find(job, name)
				if !ok {
					t.Errorf("%s not published without dimensions", name)
					continue
				}
				if math.Abs(p.value-v) > 1e-9 {
					t.Errorf("%s = %v, want %v", name, p.value, v)
				}
			}
			if _, ok := lines[0].fields[metrics.SyncConfidence]; ok != (tc.sync != nil) {
				t.Errorf("SyncConfidence field present = %v, want %v (no value without a SyncNet)", ok, tc.sync != nil)
			}

			stages := map[string]float64{}
			for _, l := range lines[1:] {
				ps := metricsOf(t, l)
				if len(ps) != 1 {
					t.Fatalf("stage line publishes %+v, want one StageSeconds", ps)
				}
				p, ok := find(ps, metrics.StageSeconds, metrics.DimStage)
				if !ok {
					t.Fatalf("stage line publishes %+v, want StageSeconds under [Stage]", ps)
				}
				stages[l.fields["Stage"].(string)] = p.value
			}
			if !mapsEqual(stages, j.Metrics.StageSeconds) {
				t.Errorf("stage seconds %v, want the job's %v", stages, j.Metrics.StageSeconds)
			}
		})
	}
}

func mapsEqual(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestFailedJobByCode(t *testing.T) {
	t.Parallel()
	for _, code := range []joberr.Code{joberr.NoFaceDetected, joberr.CorruptMedia} {
		t.Run(string(code), func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			j := finishedJob(job.Failed)
			j.Error = &job.Error{Code: code, Message: "x"}
			if err := newRecorder(t, &buf).JobFinished(j, time.Time{}); err != nil {
				t.Fatal(err)
			}
			lines := parseLines(t, buf.String())
			if len(lines) != 1 {
				t.Fatalf("%d lines, want 1:\n%s", len(lines), buf.String())
			}
			l := lines[0]
			if l.fields["ErrorCode"] != string(code) || l.fields["job_id"] != "job_1" {
				t.Errorf("ErrorCode %v job_id %v; want %s, job_1", l.fields["ErrorCode"], l.fields["job_id"], code)
			}
			ps := metricsOf(t, l)
			for _, dims := range [][]string{{}, {metrics.DimErrorCode}} {
				if p, ok := find(ps, metrics.JobsFailed, dims...); !ok || p.value != 1 || p.unit != "Count" {
					t.Errorf("JobsFailed under %v: %+v (found %v), want 1 Count", dims, p, ok)
				}
			}
			// Queued time unknown: the wait counts from creation.
			if p, ok := find(ps, metrics.QueueWaitSeconds); !ok || p.value != 40 {
				t.Errorf("QueueWaitSeconds %+v (found %v), want 40 from creation", p, ok)
			}
			for _, name := range []string{metrics.JobsSucceeded, metrics.EndToEndSeconds, metrics.ProcessingSeconds, metrics.StageSeconds, metrics.SyncConfidence, metrics.FramesPerSecond} {
				if _, ok := l.fields[name]; ok {
					t.Errorf("failed job publishes %s", name)
				}
			}
		})
	}
}

func TestWorkerStarted(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := newRecorder(t, &buf).WorkerStarted(); err != nil {
		t.Fatal(err)
	}
	lines := parseLines(t, buf.String())
	if len(lines) != 1 {
		t.Fatalf("%d lines, want 1", len(lines))
	}
	ps := metricsOf(t, lines[0])
	if p, ok := find(ps, metrics.WorkerStarts); len(ps) != 1 || !ok || p.value != 1 {
		t.Errorf("published %+v, want WorkerStarts = 1 without dimensions", ps)
	}
}

func TestUnfinishedJobsRecordNothing(t *testing.T) {
	t.Parallel()
	for _, s := range []job.Status{job.Canceled, job.Queued, job.Processing} {
		var buf bytes.Buffer
		if err := newRecorder(t, &buf).JobFinished(finishedJob(s), t0); err != nil {
			t.Fatal(err)
		}
		if buf.Len() != 0 {
			t.Errorf("%s job wrote %q", s, buf.String())
		}
	}
}

func TestWriterRejectsWhatCloudWatchDrops(t *testing.T) {
	t.Parallel()
	ok := metrics.Directive{DimensionSets: [][]string{{"Environment"}}, Metrics: []metrics.Metric{{Name: "M", Unit: metrics.Count, Value: 1}}}
	env := map[string]string{"Environment": "test"}
	for _, tc := range []struct {
		name string
		r    metrics.Record
	}{
		{"no metrics", metrics.Record{Dimensions: env}},
		{"dimension without value", metrics.Record{Directives: []metrics.Directive{ok}}},
		{"empty dimension value", metrics.Record{Dimensions: map[string]string{"Environment": ""}, Directives: []metrics.Directive{ok}}},
		{"NaN", metrics.Record{Dimensions: env, Directives: []metrics.Directive{{Metrics: []metrics.Metric{{Name: "M", Value: math.NaN()}}}}}},
		{"metric named like a property", metrics.Record{Dimensions: env, Directives: []metrics.Directive{ok}, Properties: map[string]any{"M": 1}}},
		{"property named like a dimension", metrics.Record{Dimensions: env, Directives: []metrics.Directive{ok}, Properties: map[string]any{"Environment": "x"}}},
	} {
		var buf bytes.Buffer
		if err := metrics.NewWriter(&buf, "").Write(tc.r); err == nil {
			t.Errorf("%s: written: %s", tc.name, buf.String())
		} else if buf.Len() != 0 {
			t.Errorf("%s: error %v but wrote %q", tc.name, err, buf.String())
		}
	}
	var buf bytes.Buffer
	if err := metrics.NewWriter(&buf, "Other").Write(metrics.Record{Dimensions: env, Directives: []metrics.Directive{ok}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"Namespace":"Other"`) {
		t.Errorf("namespace not used: %s", buf.String())
	}
}

// Slots record jobs concurrently into one stdout: every line must stay whole.
func TestConcurrentRecordsStayOneLineEach(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	r := newRecorder(t, &buf)
	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			j := finishedJob(job.Succeeded)
			j.ID = fmt.Sprintf("job_%d", i)
			if err := r.JobFinished(j, t0); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	lines := parseLines(t, buf.String())
	if len(lines) != n*4 {
		t.Fatalf("%d lines, want %d", len(lines), n*4)
	}
	perJob := map[any]int{}
	for _, l := range lines {
		perJob[l.fields["job_id"]]++
	}
	for id, c := range perJob {
		if c != 4 {
			t.Errorf("%v: %d lines, want 4", id, c)
		}
	}
}

// fakeSMI writes an executable standing in for nvidia-smi that checks its
// arguments and prints out (or fails with code).
func fakeSMI(t *testing.T, out string, code int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "nvidia-smi")
	script := fmt.Sprintf(`#!/bin/sh
[ "$1" = "--query-gpu=index,utilization.gpu,memory.used" ] && [ "$2" = "--format=csv,noheader,nounits" ] || { echo "bad args: $*" >&2; exit 2; }
printf '%%s' '%s'
exit %d
`, out, code)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGPUSamples(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		out     string
		code    int
		want    []metrics.GPUSample
		wantErr bool
	}{
		{"two GPUs", "0, 87, 40960\n1, 3, 512\n", 0,
			[]metrics.GPUSample{{0, 87, 40960 << 20}, {1, 3, 512 << 20}}, false},
		{"driver missing", "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n", 9, nil, true},
		{"field not supported", "0, [N/A], 100\n", 0, nil, true},
		{"no GPU", "", 0, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := metrics.NewGPUProbe(fakeSMI(t, tc.out, tc.code)).Sample(ctx)
			if (err != nil) != tc.wantErr || !slices.Equal(got, tc.want) {
				t.Fatalf("Sample = %+v, %v; want %+v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestRunGPU(t *testing.T) {
	t.Parallel()
	t.Run("records every GPU until the context ends", func(t *testing.T) {
		t.Parallel()
		var buf syncbuf.Buffer
		r, err := metrics.NewRecorder(metrics.NewWriter(&buf, ""))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		defer cancel()
		if err := r.RunGPU(ctx, metrics.NewGPUProbe(fakeSMI(t, "0, 42, 1024\n", 0)), 50*time.Millisecond, nil); err != nil {
			t.Fatal(err)
		}
		lines := parseLines(t, buf.String())
		if len(lines) < 2 {
			t.Fatalf("%d records in 250 ms at 50 ms, want several", len(lines))
		}
		for _, l := range lines {
			ps := metricsOf(t, l)
			u, ok1 := find(ps, metrics.GPUUtilization)
			m, ok2 := find(ps, metrics.GPUMemoryUsedBytes)
			if !ok1 || !ok2 || u.value != 42 || m.value != 1024<<20 || l.fields["gpu_index"] != float64(0) {
				t.Errorf("record %v, want GPU 0 at 42 %% and 1 GiB", l.fields)
			}
		}
	})
	t.Run("no usable GPU", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		r := newRecorder(t, &buf)
		if err := r.RunGPU(context.Background(), metrics.NewGPUProbe(fakeSMI(t, "", 9)), time.Second, nil); err == nil {
			t.Error("RunGPU without a driver returned nil")
		}
		if err := r.RunGPU(context.Background(), nil, time.Second, nil); err != nil {
			t.Errorf("RunGPU on a CPU host: %v", err)
		}
		if buf.Len() != 0 {
			t.Errorf("recorded without a GPU: %s", buf.String())
		}
	})
}
