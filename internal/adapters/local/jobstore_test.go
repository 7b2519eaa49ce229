package local

import (
	"errors"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/jobstore"
	"github.com/latentsync/latentsync-service/internal/jobstore/jobstoretest"
)

func openJobStore(t *testing.T, dir string) *JobStore {
	t.Helper()
	s, err := OpenJobStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestJobStoreConformance(t *testing.T) {
	jobstoretest.Run(t, func(t *testing.T) jobstore.Store { return openJobStore(t, t.TempDir()) })
}

func TestJobStoreSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	first := openJobStore(t, dir)
	j := &job.Job{ID: "job_1", Tenant: "t1", Status: job.AwaitingUpload, CreatedAt: now, UploadDeadline: now.Add(time.Hour)}
	if _, err := first.Create(ctx, j, "key", "hash"); err != nil {
		t.Fatal(err)
	}
	if err := j.Apply(job.Queued, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := first.Update(ctx, j); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	s := openJobStore(t, dir)
	got, err := s.Get(ctx, "t1", "job_1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != job.Queued || got.Version != 2 {
		t.Errorf("after restart: %s version %d, want queued version 2", got.Status, got.Version)
	}
	listed, _, err := s.List(ctx, "t1", job.Queued, 10, "")
	if err != nil || len(listed) != 1 {
		t.Errorf("List(queued) after restart = %d jobs, %v; want 1", len(listed), err)
	}
	if _, err := s.Create(ctx, &job.Job{ID: "job_2", Tenant: "t1", CreatedAt: now}, "key", "other"); !errors.Is(err, job.ErrIdempotencyMismatch) {
		t.Errorf("idempotency key after restart: %v, want ErrIdempotencyMismatch", err)
	}
	// The expiry index moved with the status: a queued job never expires.
	if exp, err := s.ListExpired(ctx, now.Add(48*time.Hour), 10); err != nil || len(exp) != 0 {
		t.Errorf("ListExpired = %d jobs, %v; want none", len(exp), err)
	}
}

func TestJobStoreListRejects(t *testing.T) {
	s := openJobStore(t, t.TempDir())
	tests := []struct {
		name   string
		limit  int
		cursor string
	}{
		{"zero limit", 0, ""},
		{"limit over 100", 101, ""},
		{"cursor not base64", 10, "%%%"},
		{"cursor too short", 10, "AAAA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := s.List(t.Context(), "t", "", tc.limit, tc.cursor); err == nil {
				t.Error("List succeeded, want an error")
			}
		})
	}
}

func TestJobStoreSecondProcessRefused(t *testing.T) {
	dir := t.TempDir()
	openJobStore(t, dir)
	// bbolt locks the file: a second opener must fail, not hang or corrupt.
	if s, err := OpenJobStore(dir); err == nil {
		s.Close()
		t.Fatal("second OpenJobStore on a locked directory succeeded")
	}
}
