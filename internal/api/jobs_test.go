package api_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/jobstore"
)

func TestGet(t *testing.T) {
	e := newEnv(t, options{})
	pending := e.create(t, keyA, validBody())

	// A succeeded job links its result; the link downloads it.
	done := e.create(t, keyA, validBody())
	result := []byte("lip-synced result bytes")
	outKey := job.OutputKey(tenantA, done.ID)
	if err := e.blobs.Put(t.Context(), outKey, bytes.NewReader(result), int64(len(result)), "video/mp4"); err != nil {
		t.Fatal(err)
	}
	conf := 7.5
	e.clock.Advance(time.Minute)
	j := e.setStatus(t, done.ID, job.Queued, job.Processing)
	if err := j.Apply(job.Succeeded, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	j.OutputKey, j.OutputSize = outKey, int64(len(result))
	offset, ssim, preserved := -1, 0.82, 0.86
	j.Metrics = &job.Metrics{SyncConfidence: &conf, SyncOffset: &offset, SSIM: &ssim, SSIMPreserved: &preserved,
		Frames: 250, DurationS: 10, ProcessingS: 31.5, StageSeconds: map[string]float64{"04|run-pipeline": 30}}
	j.Warnings = []job.Warning{{Code: "LOW_PRESERVATION", Message: "the face outside the mouth changed"}}
	if err := e.jobs.Update(t.Context(), j); err != nil {
		t.Fatal(err)
	}

	failed := e.create(t, keyA, validBody())
	jf, err := e.jobs.Get(t.Context(), "", failed.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := jf.Fail(joberr.NoFaceDetected, "no face in the first 50 frames", e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if err := e.jobs.Update(t.Context(), jf); err != nil {
		t.Fatal(err)
	}

	var v job.View
	x := e.do(t, "GET", "/v1/jobs/"+pending.ID, keyA, nil, nil)
	x.decode(t, &v)
	if x.status != 200 || v.Status != job.AwaitingUpload || !v.CreatedAt.Equal(t0) || v.Output != nil || v.Links["self"] != "/v1/jobs/"+pending.ID {
		t.Errorf("awaiting job: %d %s", x.status, x.body)
	}

	v = job.View{}
	x = e.do(t, "GET", "/v1/jobs/"+done.ID, keyA, nil, nil)
	x.decode(t, &v)
	if x.status != 200 || v.Status != job.Succeeded || v.Progress != 1 || v.Output == nil || v.Metrics == nil || v.Metrics.Frames != 250 {
		t.Fatalf("succeeded job: %d %s", x.status, x.body)
	}
	if m := v.Metrics; m.SSIMPreserved == nil || *m.SSIMPreserved != preserved || m.SyncOffset == nil || *m.SyncOffset != offset ||
		len(v.Warnings) != 1 || v.Warnings[0].Code != "LOW_PRESERVATION" {
		t.Errorf("succeeded job's quality: %s", x.body)
	}
	if v.Output.SizeBytes != int64(len(result)) || !v.Output.ExpiresAt.Equal(e.clock.Now().Add(15*time.Minute)) {
		t.Errorf("output %+v; want %d bytes, URL valid 15 min", v.Output, len(result))
	}
	resp, err := http.Get(v.Output.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, result) {
		t.Errorf("download: %d %q", resp.StatusCode, got)
	}

	v = job.View{}
	x = e.do(t, "GET", "/v1/jobs/"+failed.ID, keyA, nil, nil)
	x.decode(t, &v)
	if v.Status != job.Failed || v.Error == nil || v.Error.Code != joberr.NoFaceDetected || v.Output != nil {
		t.Errorf("failed job: %s", x.body)
	}

	for name, id := range map[string]string{
		"unknown id":   "job_0000000000000000000000000000000",
		"malformed id": "nope",
		"id too long":  "job_" + strings.Repeat("a", 80),
	} {
		t.Run(name, func(t *testing.T) {
			e.do(t, "GET", "/v1/jobs/"+id, keyA, nil, nil).wantError(t, 404, "NOT_FOUND", "job not found")
		})
	}
}

// A failing dependency is a 500 whose message reveals nothing; the cause
// goes to the error log with the request id.
func TestInternalErrorsHideCauses(t *testing.T) {
	e := newEnv(t, options{})
	id := e.create(t, keyA, validBody()).ID
	if err := e.jobs.Close(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ method, path string }{{"GET", "/v1/jobs/" + id}, {"GET", "/v1/jobs"}, {"DELETE", "/v1/jobs/" + id}} {
		x := e.do(t, r.method, r.path, keyA, nil, nil)
		x.wantError(t, 500, "INTERNAL", "internal error; retry later")
		if _, msg := x.errorOf(t); strings.Contains(msg, "database") || strings.Contains(msg, id) {
			t.Errorf("%s %s: message leaks the cause: %q", r.method, r.path, msg)
		}
		rid := x.header.Get("X-Request-Id")
		found := false
		for _, line := range strings.Split(e.logs.String(), "\n") {
			found = found || strings.Contains(line, `"level":"ERROR"`) && strings.Contains(line, rid) && strings.Contains(line, "database not open")
		}
		if !found {
			t.Errorf("%s %s: no error log line with request id %s and the cause:\n%s", r.method, r.path, rid, e.logs.String())
		}
	}
}

// A tenant never learns about another tenant's jobs: 404 as for a job that
// does not exist, and the job stays as it was.
func TestCrossTenant(t *testing.T) {
	e := newEnv(t, options{})
	a := e.create(t, keyA, validBody())
	e.create(t, keyB, validBody())

	unknown := e.do(t, "GET", "/v1/jobs/job_0000000000000000000000000000000", keyB, nil, nil)
	for _, method := range []string{"GET", "DELETE"} {
		x := e.do(t, method, "/v1/jobs/"+a.ID, keyB, nil, nil)
		x.wantError(t, 404, "NOT_FOUND", "")
		if !bytes.Equal(x.body, unknown.body) {
			t.Errorf("%s of another tenant's job says %s; an unknown id says %s", method, x.body, unknown.body)
		}
	}
	var list struct{ Jobs []job.View }
	e.do(t, "GET", "/v1/jobs", keyB, nil, nil).decode(t, &list)
	for _, v := range list.Jobs {
		if v.ID == a.ID {
			t.Errorf("tenant b lists tenant a's job %s", a.ID)
		}
	}
	if len(list.Jobs) != 1 {
		t.Errorf("tenant b lists %d jobs, want its 1", len(list.Jobs))
	}
	if j, err := e.jobs.Get(t.Context(), tenantA, a.ID); err != nil || j.Status != job.AwaitingUpload {
		t.Errorf("after tenant b's cancel, tenant a's job is %v (%v)", j.Status, err)
	}
	if ev := e.events(t); len(ev) != 0 {
		t.Errorf("events published: %v", ev)
	}
}

type page struct {
	Jobs       []job.View
	NextCursor string `json:"next_cursor"`
}

// listAll pages through GET /v1/jobs with query and returns the ids and
// the number of pages.
func (e *env) listAll(t *testing.T, key string, query url.Values) ([]string, int) {
	t.Helper()
	var ids []string
	for pages := 1; ; pages++ {
		x := e.do(t, "GET", "/v1/jobs?"+query.Encode(), key, nil, nil)
		if x.status != 200 {
			t.Fatalf("list %s: %d %s", query.Encode(), x.status, x.body)
		}
		var p page
		x.decode(t, &p)
		for _, v := range p.Jobs {
			ids = append(ids, v.ID)
		}
		if p.NextCursor == "" || pages > 50 {
			return ids, pages
		}
		query.Set("cursor", p.NextCursor)
	}
}

func TestList(t *testing.T) {
	e := newEnv(t, options{})
	var newestFirst []string
	for range 21 {
		newestFirst = slices.Insert(newestFirst, 0, e.create(t, keyA, validBody()).ID)
		e.clock.Advance(time.Second)
	}
	var bIDs []string
	for range 2 {
		bIDs = slices.Insert(bIDs, 0, e.create(t, keyB, validBody()).ID)
		e.clock.Advance(time.Second)
	}
	// Three of tenant a's jobs move on to queued, one is canceled.
	var queued []string
	for _, i := range []int{2, 5, 17} {
		e.setStatus(t, newestFirst[i], job.Queued)
		queued = append(queued, newestFirst[i])
	}
	e.do(t, "DELETE", "/v1/jobs/"+newestFirst[9], keyA, nil, nil)

	tests := []struct {
		name      string
		key       string
		query     url.Values
		wantIDs   []string
		wantPages int
	}{
		{"default limit is 20", keyA, url.Values{}, newestFirst, 2},
		{"limit 7", keyA, url.Values{"limit": {"7"}}, newestFirst, 3},
		{"limit 100", keyA, url.Values{"limit": {"100"}}, newestFirst, 1},
		{"limit 1", keyA, url.Values{"limit": {"1"}}, newestFirst, 21},
		{"queued, 2 per page", keyA, url.Values{"status": {"queued"}, "limit": {"2"}}, queued, 2},
		{"canceled", keyA, url.Values{"status": {"canceled"}}, newestFirst[9:10], 1},
		{"none succeeded", keyA, url.Values{"status": {"succeeded"}}, nil, 1},
		{"the other tenant", keyB, url.Values{}, bIDs, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ids, pages := e.listAll(t, tc.key, tc.query)
			if !slices.Equal(ids, tc.wantIDs) || pages != tc.wantPages {
				t.Errorf("got %d ids in %d pages, want %d in %d\n got %v\nwant %v", len(ids), pages, len(tc.wantIDs), tc.wantPages, ids, tc.wantIDs)
			}
		})
	}

	var first page
	e.do(t, "GET", "/v1/jobs?status=queued&limit=1", keyA, nil, nil).decode(t, &first)
	var firstAll page
	e.do(t, "GET", "/v1/jobs?limit=3", keyA, nil, nil).decode(t, &firstAll)
	rejects := []struct {
		name, query, msg string
		specRejects      bool
	}{
		{"unknown status", "status=done", `status "done" is not a job status`, true},
		{"limit 0", "limit=0", "limit must be an integer from 1 to 100", true},
		{"limit 101", "limit=101", "limit must be an integer from 1 to 100", true},
		{"limit not a number", "limit=ten", "limit must be an integer from 1 to 100", true},
		{"cursor not ours", "cursor=bm90LWEtY3Vyc29y", "cursor is not one this API returned", false},
		{"cursor not base64", "cursor=%25%25", "cursor is not one this API returned", false},
		{"cursor of another filter", "cursor=" + first.NextCursor, `cursor belongs to a listing with status "queued"`, false},
		{"cursor with a changed filter", "status=queued&cursor=" + firstAll.NextCursor, `cursor belongs to a listing with status ""`, false},
		{"unknown parameter", "sort=asc", `unknown query parameter "sort"`, false},
		{"repeated parameter", "limit=2&limit=3", `query parameter "limit" given more than once`, false},
	}
	for _, tc := range rejects {
		t.Run(tc.name, func(t *testing.T) {
			x := e.call(t, "GET", "/v1/jobs?"+tc.query, keyA, nil, nil)
			x.wantError(t, 400, "INVALID_REQUEST", tc.msg)
			if got := x.specErr != nil; got != tc.specRejects {
				t.Errorf("document rejects the request: %v (%v), want %v", got, x.specErr, tc.specRejects)
			}
		})
	}

	// Another tenant's cursor pages through the caller's own jobs only.
	var p page
	e.do(t, "GET", "/v1/jobs?cursor="+firstAll.NextCursor, keyB, nil, nil).decode(t, &p)
	for _, v := range p.Jobs {
		if !slices.Contains(bIDs, v.ID) {
			t.Errorf("tenant b sees %s through tenant a's cursor", v.ID)
		}
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t, options{})
	tests := []struct {
		name   string
		path   []job.Status // how the job got where it is
		status int
	}{
		{"awaiting upload", nil, 200},
		{"queued", []job.Status{job.Queued}, 200},
		{"processing", []job.Status{job.Queued, job.Processing}, 200},
		{"succeeded", []job.Status{job.Queued, job.Processing, job.Succeeded}, 409},
		{"failed", []job.Status{job.Failed}, 409},
		{"expired", []job.Status{job.Expired}, 409},
		{"canceled", []job.Status{job.Canceled}, 409},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := e.create(t, keyA, validBody()).ID
			before := e.setStatus(t, id, tc.path...)
			e.clock.Advance(time.Minute)
			sent := len(e.events(t))

			x := e.do(t, "DELETE", "/v1/jobs/"+id, keyA, nil, nil)
			after, err := e.jobs.Get(t.Context(), tenantA, id)
			if err != nil {
				t.Fatal(err)
			}
			events := e.events(t)[sent:]
			if tc.status == 409 {
				x.wantError(t, 409, "CONFLICT", fmt.Sprintf("already finished (%s)", before.Status))
				if after.Version != before.Version || len(events) != 0 {
					t.Errorf("a refused cancel changed the job (version %d -> %d) or sent %d events", before.Version, after.Version, len(events))
				}
				return
			}
			var v job.View
			x.decode(t, &v)
			if x.status != 200 || v.Status != job.Canceled || v.CompletedAt == nil || !v.CompletedAt.Equal(e.clock.Now()) ||
				v.Error == nil || v.Error.Code != joberr.Canceled {
				t.Errorf("cancel: %d %s", x.status, x.body)
			}
			if after.Status != job.Canceled || !after.CancelRequested {
				t.Errorf("stored status %s, cancel requested %v", after.Status, after.CancelRequested)
			}
			if len(events) != 1 || events[0].Type != job.EventCanceled || events[0].JobID != id ||
				events[0].Tenant != tenantA || events[0].Detail.Status != job.Canceled {
				t.Errorf("events %+v, want one job.canceled for %s", events, id)
			}
		})
	}
}

// racingStore is the real store with another writer (a validator or a
// worker) slipping in before the API's conditional writes.
type racingStore struct {
	jobstore.Store
	mu      sync.Mutex
	races   int // how many Updates to precede with the rival write
	rival   []job.Status
	updates atomic.Int32
}

func (s *racingStore) Update(ctx context.Context, j *job.Job) error {
	s.updates.Add(1)
	s.mu.Lock()
	race := s.races > 0
	s.races--
	s.mu.Unlock()
	if race {
		cur, err := s.Store.Get(ctx, "", j.ID)
		if err != nil {
			return err
		}
		for _, st := range s.rival {
			if err := cur.Apply(st, time.Now()); err != nil {
				return err
			}
		}
		cur.Stage = "rival write"
		if err := s.Store.Update(ctx, cur); err != nil {
			return err
		}
	}
	return s.Store.Update(ctx, j)
}

func TestCancelRetriesOnConflict(t *testing.T) {
	tests := []struct {
		name        string
		races       int
		rival       []job.Status
		status      int
		code, msg   string
		wantUpdates int32
		wantStatus  job.Status
	}{
		{"validator queues the job meanwhile", 1, []job.Status{job.Queued}, 200, "", "", 2, job.Canceled},
		{"worker finishes the job meanwhile", 1, []job.Status{job.Queued, job.Processing, job.Succeeded}, 409, "CONFLICT", "already finished (succeeded)", 1, job.Succeeded},
		{"every write loses", 100, nil, 409, "CONFLICT", "changed concurrently", 5, job.AwaitingUpload},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs := &racingStore{}
			e := newEnv(t, options{store: func(s jobstore.Store) jobstore.Store { rs.Store = s; return rs }})
			id := e.create(t, keyA, validBody()).ID
			rs.mu.Lock()
			rs.races, rs.rival = tc.races, tc.rival
			rs.mu.Unlock()

			x := e.do(t, "DELETE", "/v1/jobs/"+id, keyA, nil, nil)
			if tc.status == 200 {
				if x.status != 200 {
					t.Fatalf("status %d %s", x.status, x.body)
				}
			} else {
				x.wantError(t, tc.status, tc.code, tc.msg)
			}
			j, err := e.jobs.Get(t.Context(), tenantA, id)
			if err != nil {
				t.Fatal(err)
			}
			if n := rs.updates.Load(); n != tc.wantUpdates || j.Status != tc.wantStatus {
				t.Errorf("%d conditional writes, job %s; want %d, %s", n, j.Status, tc.wantUpdates, tc.wantStatus)
			}
		})
	}
}
