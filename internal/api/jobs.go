package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/joberr"
)

const (
	defaultListLimit = 20
	maxListLimit     = 100
	// cancelAttempts bounds the read-modify-write loop; each retry means a
	// worker or validator wrote the job meanwhile.
	cancelAttempts = 5
)

// validID screens ids before they reach the store: anything job.NewID
// cannot produce is simply not found.
func validID(id string) bool {
	if len(id) < 5 || len(id) > 64 || id[:4] != "job_" {
		return false
	}
	for _, c := range id[4:] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request, tenant string) {
	id := r.PathValue("id")
	info(r.Context()).jobID = id
	if !validID(id) {
		h.fail(w, r, fmt.Errorf("get %q: %w", id, job.ErrNotFound))
		return
	}
	j, err := h.cfg.Jobs.Get(r.Context(), tenant, id)
	if err != nil {
		h.fail(w, r, fmt.Errorf("get job: %w", err))
		return
	}
	v, err := h.view(r.Context(), j)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// view is the public view, with a download URL when the job succeeded.
func (h *Handler) view(ctx context.Context, j *job.Job) (job.View, error) {
	if j.Status != job.Succeeded {
		return j.View(nil), nil
	}
	key := j.OutputKey
	if key == "" {
		key = job.OutputKey(j.Tenant, j.ID)
	}
	p, err := h.cfg.Outputs.PresignGet(ctx, key, h.lim.OutputURLTTL)
	if err != nil {
		return job.View{}, fmt.Errorf("presign output of job %s: %w", j.ID, err)
	}
	return j.View(&job.OutputView{URL: p.URL, ExpiresAt: p.ExpiresAt, SizeBytes: j.OutputSize}), nil
}

type listResponse struct {
	Jobs       []job.View `json:"jobs"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// listCursor wraps the store's cursor with the filter it belongs to, so a
// cursor replayed with another status filter is refused instead of
// silently skipping or repeating jobs.
type listCursor struct {
	Status job.Status `json:"s,omitempty"`
	Store  string     `json:"c"`
}

func encodeCursor(status job.Status, store string) string {
	if store == "" {
		return ""
	}
	b, _ := json.Marshal(listCursor{Status: status, Store: store}) // plain strings: cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string, status job.Status) (string, error) {
	if s == "" {
		return "", nil
	}
	errBad := invalid("cursor is not one this API returned; start again without it")
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", errBad
	}
	var c listCursor
	if err := json.Unmarshal(b, &c); err != nil || c.Store == "" {
		return "", errBad
	}
	if c.Status != status {
		return "", invalid("cursor belongs to a listing with status %q; keep the same status filter while paging", c.Status)
	}
	return c.Store, nil
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request, tenant string) {
	q := r.URL.Query()
	for name, vs := range q {
		if name != "status" && name != "limit" && name != "cursor" {
			h.fail(w, r, invalid("unknown query parameter %q; use status, limit and cursor", name))
			return
		}
		if len(vs) > 1 {
			h.fail(w, r, invalid("query parameter %q given more than once", name))
			return
		}
	}
	status := job.Status(q.Get("status"))
	if status != "" && !status.Valid() {
		h.fail(w, r, invalid("status %q is not a job status", status))
		return
	}
	limit := defaultListLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListLimit {
			h.fail(w, r, invalid("limit must be an integer from 1 to %d, got %q", maxListLimit, s))
			return
		}
		limit = n
	}
	cursor, err := decodeCursor(q.Get("cursor"), status)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	jobs, next, err := h.cfg.Jobs.List(r.Context(), tenant, status, limit, cursor)
	if err != nil {
		h.fail(w, r, fmt.Errorf("list jobs: %w", err))
		return
	}
	resp := listResponse{Jobs: make([]job.View, 0, len(jobs)), NextCursor: encodeCursor(status, next)}
	for _, j := range jobs {
		v, err := h.view(r.Context(), j)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		resp.Jobs = append(resp.Jobs, v)
	}
	writeJSON(w, http.StatusOK, resp)
}

func (h *Handler) cancel(w http.ResponseWriter, r *http.Request, tenant string) {
	ctx := r.Context()
	id := r.PathValue("id")
	info(ctx).jobID = id
	if !validID(id) {
		h.fail(w, r, fmt.Errorf("cancel %q: %w", id, job.ErrNotFound))
		return
	}
	j, err := h.cancelJob(ctx, tenant, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := j.View(nil)
	// The cancel is committed; a lost event costs a notification, not the
	// cancel, so the client still gets its 200.
	if e, ok := job.EventFor(j, v, h.now().UTC()); ok {
		if err := h.cfg.Events.Publish(ctx, e); err != nil {
			h.logger(ctx).Error("publish cancel event", "err", err.Error(), "event_id", e.ID)
		}
	}
	h.logger(ctx).Info("job canceled")
	writeJSON(w, http.StatusOK, v)
}

// cancelJob moves a non-terminal job to canceled with a conditional write,
// re-reading when a concurrent writer got there first.
func (h *Handler) cancelJob(ctx context.Context, tenant, id string) (*job.Job, error) {
	for attempt := 1; ; attempt++ {
		j, err := h.cfg.Jobs.Get(ctx, tenant, id)
		if err != nil {
			return nil, fmt.Errorf("cancel: get job: %w", err)
		}
		if j.Status.Terminal() {
			return nil, joberr.Wrap(Conflict, job.ErrTerminal, "job %s has already finished (%s); it cannot be canceled", j.ID, j.Status)
		}
		now := h.now().UTC()
		if err := j.Apply(job.Canceled, now); err != nil {
			return nil, fmt.Errorf("cancel job %s: %w", id, err)
		}
		j.CancelRequested = true
		j.Error = &job.Error{Code: joberr.Canceled, Message: "canceled at the client's request"}
		err = h.cfg.Jobs.Update(ctx, j)
		if err == nil {
			return j, nil
		}
		if !errors.Is(err, job.ErrConflict) || attempt == cancelAttempts {
			return nil, fmt.Errorf("cancel job %s (attempt %d): %w", id, attempt, err)
		}
	}
}
