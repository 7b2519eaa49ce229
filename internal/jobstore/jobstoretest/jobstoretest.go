// Package jobstoretest is the conformance suite of jobstore.Store: every
// adapter (local, aws) runs it, so their behaviour cannot drift apart.
package jobstoretest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/jobstore"
)

// Run runs the suite; newStore returns an empty store for each sub-test
// (sub-tests run in parallel, so stores must be independent or share
// nothing but their backend: every sub-test uses its own tenants and ids).
func Run(t *testing.T, newStore func(t *testing.T) jobstore.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s jobstore.Store)
	}{
		{"CreateGet", testCreateGet},
		{"CreateRejectsExistingID", testCreateExistingID},
		{"TenantIsolation", testTenantIsolation},
		{"UpdateConditional", testUpdateConditional},
		{"UpdateMissing", testUpdateMissing},
		{"ConcurrentUpdatesOneWins", testConcurrentUpdates},
		{"IdempotentCreate", testIdempotentCreate},
		{"ConcurrentIdempotentCreate", testConcurrentIdempotentCreate},
		{"ListNewestFirstPaginated", testListPaginated},
		{"ListStatusFilter", testListStatusFilter},
		{"ListExpired", testListExpired},
		{"ListRejectsForeignCursor", testListBadCursor},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// unique makes tenants and ids distinct per sub-test, so stores that share
// one backend (an emulator table) do not see each other's jobs.
func unique(t *testing.T, s string) string {
	return fmt.Sprintf("%s-%s-%d", s, strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano())
}

// base is a fixed, millisecond-precise instant: every backend keeps at
// least milliseconds.
var base = time.Date(2025, 3, 14, 9, 26, 53, 589_000_000, time.UTC)

func newJob(tenant, id string, created time.Time) *job.Job {
	return &job.Job{
		ID: id, Tenant: tenant, Status: job.AwaitingUpload,
		CreatedAt: created, UpdatedAt: created,
		UploadDeadline: created.Add(24 * time.Hour),
		Options:        job.Options{InferenceSteps: 20, GuidanceScale: 1.5, Seed: 7, SyncMode: "loop"},
		Video:          job.Media{ContentType: "video/mp4", SizeBytes: 1234},
		Audio:          job.Media{ContentType: "audio/wav", SizeBytes: 567},
		WebhookURL:     "https://example.com/hook", ClientReference: "ref-" + id,
		ExpireAt: created.Add(30 * 24 * time.Hour),
	}
}

func ctx(t *testing.T) context.Context { return t.Context() }

func mustCreate(t *testing.T, s jobstore.Store, j *job.Job) *job.Job {
	t.Helper()
	got, err := s.Create(ctx(t), j, "", "")
	if err != nil {
		t.Fatalf("Create(%s): %v", j.ID, err)
	}
	return got
}

// sameJob compares everything but Version through JSON, the representation
// every adapter round-trips.
func sameJob(t *testing.T, got, want *job.Job) {
	t.Helper()
	g, w := *got, *want
	g.Version, w.Version = 0, 0
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("job differs:\n got  %s\n want %s", gb, wb)
	}
}

func testCreateGet(t *testing.T, s jobstore.Store) {
	tenant := unique(t, "t")
	j := newJob(tenant, unique(t, "job"), base)
	got := mustCreate(t, s, j)
	if got.Version != 1 {
		t.Errorf("created version = %d, want 1", got.Version)
	}
	sameJob(t, got, j)
	for _, asTenant := range []string{tenant, ""} {
		read, err := s.Get(ctx(t), asTenant, j.ID)
		if err != nil {
			t.Fatalf("Get(%q, %s): %v", asTenant, j.ID, err)
		}
		if read.Version != 1 {
			t.Errorf("Get(%q): version = %d, want 1", asTenant, read.Version)
		}
		sameJob(t, read, j)
	}
	if _, err := s.Get(ctx(t), tenant, unique(t, "missing")); !errors.Is(err, job.ErrNotFound) {
		t.Errorf("Get(missing) = %v, want ErrNotFound", err)
	}
	bad := newJob(tenant, unique(t, "versioned"), base)
	bad.Version = 3
	if _, err := s.Create(ctx(t), bad, "", ""); err == nil {
		t.Errorf("Create with version 3 succeeded, want an error")
	}
}

func testCreateExistingID(t *testing.T, s jobstore.Store) {
	tenant := unique(t, "t")
	first := newJob(tenant, unique(t, "job"), base)
	mustCreate(t, s, first)
	second := newJob(tenant, first.ID, base.Add(time.Minute))
	second.ClientReference = "overwrite"
	if _, err := s.Create(ctx(t), second, "", ""); !errors.Is(err, job.ErrConflict) {
		t.Fatalf("Create(existing id) = %v, want ErrConflict", err)
	}
	read, err := s.Get(ctx(t), tenant, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameJob(t, read, first)
}

func testTenantIsolation(t *testing.T, s jobstore.Store) {
	a, b := unique(t, "a"), unique(t, "b")
	ja := mustCreate(t, s, newJob(a, unique(t, "ja"), base))
	mustCreate(t, s, newJob(b, unique(t, "jb"), base))
	if _, err := s.Get(ctx(t), b, ja.ID); !errors.Is(err, job.ErrNotFound) {
		t.Errorf("Get(other tenant's job) = %v, want ErrNotFound", err)
	}
	got, _, err := s.List(ctx(t), b, "", 100, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range got {
		if j.Tenant != b {
			t.Errorf("List(%s) returned %s of tenant %s", b, j.ID, j.Tenant)
		}
	}
	if len(got) != 1 {
		t.Errorf("List(%s) returned %d jobs, want 1", b, len(got))
	}
}

func testUpdateConditional(t *testing.T, s jobstore.Store) {
	tenant := unique(t, "t")
	j := mustCreate(t, s, newJob(tenant, unique(t, "job"), base))
	stale := *j
	if err := j.Apply(job.Queued, base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	j.VideoValidated, j.AudioValidated = true, true
	if err := s.Update(ctx(t), j); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if j.Version != 2 {
		t.Errorf("version after update = %d, want 2", j.Version)
	}
	read, err := s.Get(ctx(t), tenant, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if read.Version != 2 {
		t.Errorf("stored version = %d, want 2", read.Version)
	}
	sameJob(t, read, j)

	// A writer still holding version 1 must not overwrite version 2.
	stale.Stage = "stale"
	if err := s.Update(ctx(t), &stale); !errors.Is(err, job.ErrConflict) {
		t.Errorf("Update(stale) = %v, want ErrConflict", err)
	}
	read, err = s.Get(ctx(t), tenant, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameJob(t, read, j)

	// The next write from the fresh copy succeeds again.
	j.Progress = 0.5
	if err := s.Update(ctx(t), j); err != nil {
		t.Fatalf("second Update: %v", err)
	}
	if j.Version != 3 {
		t.Errorf("version after second update = %d, want 3", j.Version)
	}
}

func testUpdateMissing(t *testing.T, s jobstore.Store) {
	j := newJob(unique(t, "t"), unique(t, "never-created"), base)
	j.Version = 1
	err := s.Update(ctx(t), j)
	if !errors.Is(err, job.ErrNotFound) {
		t.Errorf("Update(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx(t), "", j.ID); !errors.Is(err, job.ErrNotFound) {
		t.Errorf("Update(missing) created the job: Get = %v", err)
	}
}

func testConcurrentUpdates(t *testing.T, s jobstore.Store) {
	tenant := unique(t, "t")
	created := mustCreate(t, s, newJob(tenant, unique(t, "job"), base))
	const writers = 8
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		c := *created
		c.Stage = fmt.Sprintf("writer-%d", i)
		wg.Go(func() { errs[i] = s.Update(context.Background(), &c) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("writers %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, job.ErrConflict):
			t.Errorf("writer %d: %v, want nil or ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer won")
	}
	read, err := s.Get(ctx(t), tenant, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("writer-%d", winner); read.Stage != want || read.Version != 2 {
		t.Errorf("stored stage %q version %d, want %q version 2", read.Stage, read.Version, want)
	}
}

func testIdempotentCreate(t *testing.T, s jobstore.Store) {
	tenant, other := unique(t, "t"), unique(t, "other")
	const key = "idem-key-1"
	first, err := s.Create(ctx(t), newJob(tenant, unique(t, "first"), base), key, "hash-a")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		tenant  string
		hash    string
		wantErr error
		wantID  func(created *job.Job) string // the job Create must return
	}{
		{"same key same hash returns the first job", tenant, "hash-a", nil, func(*job.Job) string { return first.ID }},
		{"same key other hash", tenant, "hash-b", job.ErrIdempotencyMismatch, nil},
		{"same key other tenant creates", other, "hash-b", nil, func(c *job.Job) string { return c.ID }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			candidate := newJob(tc.tenant, unique(t, "again"), base.Add(time.Minute))
			got, err := s.Create(ctx(t), candidate, key, tc.hash)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Create = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				if _, err := s.Get(ctx(t), "", candidate.ID); !errors.Is(err, job.ErrNotFound) {
					t.Errorf("refused Create stored the job: Get = %v", err)
				}
				return
			}
			if want := tc.wantID(candidate); got.ID != want {
				t.Errorf("Create returned %s, want %s", got.ID, want)
			}
			if got.Tenant != tc.tenant {
				t.Errorf("Create returned tenant %s, want %s", got.Tenant, tc.tenant)
			}
			if got.ID != candidate.ID {
				if _, err := s.Get(ctx(t), "", candidate.ID); !errors.Is(err, job.ErrNotFound) {
					t.Errorf("replayed Create stored a second job: Get = %v", err)
				}
			}
		})
	}
	jobs, _, err := s.List(ctx(t), tenant, "", 100, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 {
		t.Errorf("tenant has %d jobs after replays, want 1", len(jobs))
	}
}

func testConcurrentIdempotentCreate(t *testing.T, s jobstore.Store) {
	tenant := unique(t, "t")
	const n = 8
	var wg sync.WaitGroup
	ids := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		j := newJob(tenant, unique(t, fmt.Sprintf("c%d", i)), base)
		wg.Go(func() {
			got, err := s.Create(context.Background(), j, "same-key", "same-hash")
			errs[i] = err
			if err == nil {
				ids[i] = got.ID
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("creator %d: %v", i, err)
		}
	}
	for i := range ids {
		if ids[i] != ids[0] {
			t.Errorf("creators got different jobs: %s and %s", ids[0], ids[i])
		}
	}
	jobs, _, err := s.List(ctx(t), tenant, "", 100, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 {
		t.Errorf("concurrent duplicate creates stored %d jobs, want 1", len(jobs))
	}
}

// listAll pages through List and fails on oversized pages or a cursor loop.
func listAll(t *testing.T, s jobstore.Store, tenant string, status job.Status, limit int) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for page := 0; ; page++ {
		if page > 100 {
			t.Fatal("List never returned an empty cursor")
		}
		jobs, next, err := s.List(ctx(t), tenant, status, limit, cursor)
		if err != nil {
			t.Fatalf("List(page %d): %v", page, err)
		}
		if len(jobs) > limit {
			t.Fatalf("List(limit %d) returned %d jobs", limit, len(jobs))
		}
		for _, j := range jobs {
			if j.Tenant != tenant {
				t.Errorf("List(%s) returned a job of %s", tenant, j.Tenant)
			}
			if status != "" && j.Status != status {
				t.Errorf("List(status %s) returned %s in %s", status, j.ID, j.Status)
			}
			ids = append(ids, j.ID)
		}
		if next == "" {
			return ids
		}
		if next == cursor {
			t.Fatalf("List returned the same cursor twice: %q", next)
		}
		cursor = next
	}
}

// seedListing creates jobs with distinct and tied creation times, plus
// another tenant's jobs interleaved, and returns the tenant and its jobs.
func seedListing(t *testing.T, s jobstore.Store) (string, []*job.Job) {
	tenant, other := unique(t, "t"), unique(t, "other")
	offsets := []time.Duration{5, 1, 3, 3, 3, 0, 7, 2, 6, 4, 3}
	var mine []*job.Job
	for i, off := range offsets {
		created := base.Add(off * time.Second)
		j := mustCreate(t, s, newJob(tenant, fmt.Sprintf("%s-%02d", unique(t, "job"), i), created))
		mine = append(mine, j)
		mustCreate(t, s, newJob(other, fmt.Sprintf("%s-%02d", unique(t, "ojob"), i), created))
	}
	return tenant, mine
}

// newestFirst is the documented order: CreatedAt descending, then id descending.
func newestFirst(jobs []*job.Job) []string {
	sorted := slices.Clone(jobs)
	slices.SortFunc(sorted, func(a, b *job.Job) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	ids := make([]string, len(sorted))
	for i, j := range sorted {
		ids[i] = j.ID
	}
	return ids
}

func testListPaginated(t *testing.T, s jobstore.Store) {
	tenant, mine := seedListing(t, s)
	want := newestFirst(mine)
	for _, limit := range []int{1, 3, 4, len(mine), 100} {
		t.Run(fmt.Sprintf("limit=%d", limit), func(t *testing.T) {
			got := listAll(t, s, tenant, "", limit)
			if !slices.Equal(got, want) {
				t.Errorf("pages joined:\n got  %v\n want %v", got, want)
			}
		})
	}
	first, next, err := s.List(ctx(t), tenant, "", 2, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 || next == "" {
		t.Errorf("first page of 2 = %d jobs, cursor %q; want 2 jobs and a cursor", len(first), next)
	}
	empty, next, err := s.List(ctx(t), unique(t, "nobody"), "", 10, "")
	if err != nil || len(empty) != 0 || next != "" {
		t.Errorf("List(unknown tenant) = %d jobs, %q, %v; want none", len(empty), next, err)
	}
}

func testListStatusFilter(t *testing.T, s jobstore.Store) {
	tenant, mine := seedListing(t, s)
	var queued, waiting []*job.Job
	for i, j := range mine {
		if i%3 != 0 {
			waiting = append(waiting, j)
			continue
		}
		if err := j.Apply(job.Queued, j.CreatedAt.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.Update(ctx(t), j); err != nil {
			t.Fatal(err)
		}
		queued = append(queued, j)
	}
	tests := []struct {
		status job.Status
		want   []*job.Job
	}{
		{job.Queued, queued},
		{job.AwaitingUpload, waiting},
		{job.Succeeded, nil},
	}
	for _, tc := range tests {
		for _, limit := range []int{2, 100} {
			t.Run(fmt.Sprintf("%s/limit=%d", tc.status, limit), func(t *testing.T) {
				got := listAll(t, s, tenant, tc.status, limit)
				if want := newestFirst(tc.want); !slices.Equal(got, want) {
					t.Errorf("got %v, want %v", got, want)
				}
			})
		}
	}
}

func testListExpired(t *testing.T, s jobstore.Store) {
	// Deadlines far in the past keep other sub-tests' jobs (deadline base+24h)
	// out of the window when stores share a backend.
	past := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	tenants := []string{unique(t, "a"), unique(t, "b")}
	var want []string
	for i := range 6 {
		j := newJob(tenants[i%2], fmt.Sprintf("%s-%d", unique(t, "job"), i), past)
		j.UploadDeadline = past.Add(time.Duration(i) * time.Hour)
		mustCreate(t, s, j)
		switch {
		case i == 1: // queued: its uploads arrived
			if err := j.Apply(job.Queued, past); err != nil {
				t.Fatal(err)
			}
			if err := s.Update(ctx(t), j); err != nil {
				t.Fatal(err)
			}
		case i < 4: // deadlines at +0h, +2h, +3h are before +3h30
			want = append(want, j.ID)
		}
	}
	cut := past.Add(3*time.Hour + 30*time.Minute)
	got, err := s.ListExpired(ctx(t), cut, 100)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range got {
		if j.Status != job.AwaitingUpload || !j.UploadDeadline.Before(cut) {
			t.Errorf("ListExpired returned %s (%s, deadline %s)", j.ID, j.Status, j.UploadDeadline)
		}
		if slices.Contains(tenants, j.Tenant) {
			ids = append(ids, j.ID)
		}
	}
	slices.Sort(ids)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("ListExpired = %v, want %v", ids, want)
	}
	limited, err := s.ListExpired(ctx(t), cut, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(limited) != 2 {
		t.Errorf("ListExpired(limit 2) returned %d jobs, want 2", len(limited))
	}
}

// testListBadCursor: a cursor the store never issued is the client's error.
func testListBadCursor(t *testing.T, s jobstore.Store) {
	for _, cursor := range []string{"not a cursor!", "AAAA", "%%%"} {
		if _, _, err := s.List(context.Background(), "tenant-x", "", 10, cursor); !errors.Is(err, jobstore.ErrBadCursor) {
			t.Errorf("cursor %q: %v, want ErrBadCursor", cursor, err)
		}
	}
}
