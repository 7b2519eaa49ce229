package metrics

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/traceheader"
)

// Recorder turns finished jobs, worker starts and GPU samples into EMF records.
type Recorder struct {
	w   *Writer
	now func() time.Time
}

// NewRecorder records to w.
func NewRecorder(w *Writer) (*Recorder, error) {
	if w == nil {
		return nil, errors.New("metrics: a writer is required")
	}
	return &Recorder{w: w, now: time.Now}, nil
}

// noDims is the dimension set of the alarms' metrics: none.
var noDims = [][]string{{}}

// WorkerStarted records that this worker became ready (WorkerStarts).
func (r *Recorder) WorkerStarted() error {
	return r.w.Write(Record{Time: r.now(), Directives: []Directive{{DimensionSets: noDims, Metrics: []Metric{{WorkerStarts, Count, 1}}}}})
}

// JobFinished writes the records of a job that reached succeeded or failed;
// other statuses (canceled, a run handed back for retry) record nothing.
// queuedAt is when its queue message was sent; zero falls back to the job's
// creation (which then includes the client's upload time).
//
// A succeeded job gives one record with JobsSucceeded, EndToEndSeconds,
// QueueWaitSeconds, ProcessingSeconds, FramesPerSecond and SyncConfidence
// (when measured), plus one StageSeconds record per stage. A failed job
// gives one record with JobsFailed (in total and per ErrorCode) and
// QueueWaitSeconds when it had started.
func (r *Recorder) JobFinished(j *job.Job, queuedAt time.Time) error {
	if j == nil || (j.Status != job.Succeeded && j.Status != job.Failed) {
		return nil
	}
	at := r.now()
	if j.CompletedAt != nil {
		at = *j.CompletedAt
	}
	if queuedAt.IsZero() {
		queuedAt = j.CreatedAt
	}
	props := map[string]any{PropJobID: j.ID, PropTenant: j.Tenant}
	if j.Bundle != "" {
		props[PropBundle] = j.Bundle
	}
	if id := traceheader.TraceID(j.TraceHeader); id != "" {
		props[PropTraceID] = id
	}
	var head []Metric
	if j.StartedAt != nil && !queuedAt.IsZero() && !j.StartedAt.Before(queuedAt) {
		head = append(head, Metric{QueueWaitSeconds, Seconds, j.StartedAt.Sub(queuedAt).Seconds()})
	}

	if j.Status == job.Failed {
		code := "UNKNOWN"
		if j.Error != nil && j.Error.Code != "" {
			code = string(j.Error.Code)
		}
		return r.w.Write(Record{
			Time:       at,
			Dimensions: map[string]string{DimErrorCode: code},
			Directives: []Directive{
				{DimensionSets: [][]string{{}, {DimErrorCode}}, Metrics: []Metric{{JobsFailed, Count, 1}}},
				{DimensionSets: noDims, Metrics: head},
			},
			Properties: props,
		})
	}

	ms := append(head, Metric{JobsSucceeded, Count, 1})
	if j.CompletedAt != nil && !j.CompletedAt.Before(j.CreatedAt) {
		ms = append(ms, Metric{EndToEndSeconds, Seconds, j.CompletedAt.Sub(j.CreatedAt).Seconds()})
	}
	m := j.Metrics
	if m != nil && m.ProcessingS > 0 {
		ms = append(ms, Metric{ProcessingSeconds, Seconds, m.ProcessingS})
	}
	if m != nil && m.Frames > 0 && m.ProcessingS > 0 {
		ms = append(ms, Metric{FramesPerSecond, CountPerSecond, float64(m.Frames) / m.ProcessingS})
	}
	if m != nil && m.SyncConfidence != nil {
		ms = append(ms, Metric{SyncConfidence, None, *m.SyncConfidence})
	}
	if err := r.w.Write(Record{Time: at, Directives: []Directive{{DimensionSets: noDims, Metrics: ms}}, Properties: props}); err != nil {
		return err
	}
	if m == nil {
		return nil
	}
	// One record per stage: a record carries one value per dimension.
	stages := make([]string, 0, len(m.StageSeconds))
	for s := range m.StageSeconds {
		stages = append(stages, s)
	}
	sort.Strings(stages) // labels are numbered, so this is pipeline order
	var errs []error
	for _, s := range stages {
		err := r.w.Write(Record{
			Time:       at,
			Dimensions: map[string]string{DimStage: s},
			Directives: []Directive{{DimensionSets: [][]string{{DimStage}}, Metrics: []Metric{{StageSeconds, Seconds, m.StageSeconds[s]}}}},
			Properties: props,
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("stage %s: %w", s, err))
		}
	}
	return errors.Join(errs...)
}
