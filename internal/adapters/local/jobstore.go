package local

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/jobstore"
)

// Buckets of jobs.db.
var (
	jobsBucket     = []byte("jobs")        // id -> job JSON
	tenantBucket   = []byte("by_tenant")   // scoped(tenant) created id -> status
	deadlineBucket = []byte("by_deadline") // deadline id -> "" (awaiting_upload only)
	idemBucket     = []byte("idempotency") // scoped(tenant) key -> idemRecord JSON
)

// JobStore is a jobstore.Store in one bbolt file, dir/jobs.db. bbolt runs
// one write transaction at a time, so every conditional write is atomic.
type JobStore struct {
	db *bolt.DB
}

type idemRecord struct {
	JobID string `json:"job_id"`
	Hash  string `json:"hash"`
}

// OpenJobStore opens (creating) the job store under dir.
func OpenJobStore(dir string) (*JobStore, error) {
	db, err := openDB(dir, "jobs.db", string(jobsBucket), string(tenantBucket), string(deadlineBucket), string(idemBucket))
	if err != nil {
		return nil, fmt.Errorf("job store: %w", err)
	}
	return &JobStore{db: db}, nil
}

// Close releases the database file.
func (s *JobStore) Close() error { return s.db.Close() }

// Create stores j with version 1, or replays an idempotent create.
func (s *JobStore) Create(ctx context.Context, j *job.Job, idempotencyKey, requestHash string) (*job.Job, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch {
	case j.Version != 0:
		return nil, fmt.Errorf("create job %s: version must be 0, got %d", j.ID, j.Version)
	case j.ID == "" || j.Tenant == "":
		return nil, fmt.Errorf("create job: id and tenant are required")
	case len(j.Tenant) > 1024 || len(idempotencyKey) > 1024:
		return nil, fmt.Errorf("create job %s: tenant or idempotency key too long", j.ID)
	}
	stored := *j
	stored.Version = 1
	var existing *job.Job
	err := s.db.Update(func(tx *bolt.Tx) error {
		var idemKey []byte
		if idempotencyKey != "" {
			idemKey = join(scoped(j.Tenant), []byte(idempotencyKey))
			if raw := tx.Bucket(idemBucket).Get(idemKey); raw != nil {
				var rec idemRecord
				if err := json.Unmarshal(raw, &rec); err != nil {
					return fmt.Errorf("decode idempotency record: %w", err)
				}
				if rec.Hash != requestHash {
					return job.ErrIdempotencyMismatch
				}
				prior, err := getJob(tx, rec.JobID)
				if err != nil {
					return fmt.Errorf("job %s of idempotency key: %w", rec.JobID, err)
				}
				existing = prior
				return nil
			}
		}
		if tx.Bucket(jobsBucket).Get([]byte(j.ID)) != nil {
			return fmt.Errorf("id exists: %w", job.ErrConflict)
		}
		if err := putJob(tx, nil, &stored); err != nil {
			return err
		}
		if idemKey != nil {
			rec, err := json.Marshal(idemRecord{JobID: j.ID, Hash: requestHash})
			if err != nil {
				return err
			}
			return tx.Bucket(idemBucket).Put(idemKey, rec)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create job %s: %w", j.ID, err)
	}
	if existing != nil {
		return existing, nil
	}
	j.Version = 1
	return &stored, nil
}

// Get reads a job; a job of another tenant is job.ErrNotFound.
func (s *JobStore) Get(ctx context.Context, tenant, id string) (*job.Job, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var j *job.Job
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		j, err = getJob(tx, id)
		return err
	})
	if err == nil && tenant != "" && j.Tenant != tenant {
		err = job.ErrNotFound // other tenants' jobs do not exist for them
	}
	if err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, err)
	}
	return j, nil
}

// Update writes j if the stored version is still j.Version.
func (s *JobStore) Update(ctx context.Context, j *job.Job) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	next := *j
	next.Version = j.Version + 1
	err := s.db.Update(func(tx *bolt.Tx) error {
		old, err := getJob(tx, j.ID)
		if err != nil {
			return err
		}
		if old.Version != j.Version {
			return fmt.Errorf("stored version %d, have %d: %w", old.Version, j.Version, job.ErrConflict)
		}
		return putJob(tx, old, &next)
	})
	if err != nil {
		return fmt.Errorf("update job %s: %w", j.ID, err)
	}
	j.Version = next.Version
	return nil
}

// List pages through a tenant's jobs newest first. The cursor is the last
// returned job's index position, without the tenant: it means nothing to
// another tenant's listing.
func (s *JobStore) List(ctx context.Context, tenant string, status job.Status, limit int, cursor string) ([]*job.Job, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if limit < 1 || limit > 100 {
		return nil, "", fmt.Errorf("list jobs: limit %d not in 1..100", limit)
	}
	prefix := scoped(tenant)
	start := prefixEnd(prefix)
	if cursor != "" {
		pos, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || len(pos) < 12 {
			return nil, "", fmt.Errorf("list jobs: %w", jobstore.ErrBadCursor)
		}
		start = join(prefix, pos)
	}
	var (
		jobs []*job.Job
		next string
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(tenantBucket).Cursor()
		// Seek lands on the first key >= start; the page begins just below it.
		k, v := c.Seek(start)
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		var last []byte
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
			if status != "" && string(v) != string(status) {
				continue
			}
			if len(jobs) == limit {
				// Another match exists: only now is a cursor worth returning.
				next = base64.RawURLEncoding.EncodeToString(last[len(prefix):])
				return nil
			}
			id := k[len(prefix)+12:]
			j, err := getJob(tx, string(id))
			if err != nil {
				return fmt.Errorf("indexed job %s: %w", id, err)
			}
			jobs = append(jobs, j)
			last = k
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list jobs of %s: %w", tenant, err)
	}
	return jobs, next, nil
}

// ListExpired returns jobs awaiting upload whose deadline is before t,
// earliest deadline first.
func (s *JobStore) ListExpired(ctx context.Context, before time.Time, limit int) ([]*job.Job, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	end := timeKey(before)
	var jobs []*job.Job
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(deadlineBucket).Cursor()
		for k, _ := c.First(); k != nil && len(jobs) < limit && bytes.Compare(k[:12], end) < 0; k, _ = c.Next() {
			j, err := getJob(tx, string(k[12:]))
			if err != nil {
				return fmt.Errorf("indexed job %s: %w", k[12:], err)
			}
			jobs = append(jobs, j)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list expired jobs: %w", err)
	}
	return jobs, nil
}

func getJob(tx *bolt.Tx, id string) (*job.Job, error) {
	raw := tx.Bucket(jobsBucket).Get([]byte(id))
	if raw == nil {
		return nil, job.ErrNotFound
	}
	var j job.Job
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, fmt.Errorf("decode job %s: %w", id, err)
	}
	return &j, nil
}

func tenantKey(j *job.Job) []byte {
	return join(scoped(j.Tenant), timeKey(j.CreatedAt), []byte(j.ID))
}

func deadlineKey(j *job.Job) []byte {
	return join(timeKey(j.UploadDeadline), []byte(j.ID))
}

// putJob writes j and moves its index entries from those of old (nil for a
// new job).
func putJob(tx *bolt.Tx, old, j *job.Job) error {
	raw, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("encode job %s: %w", j.ID, err)
	}
	byTenant, byDeadline := tx.Bucket(tenantBucket), tx.Bucket(deadlineBucket)
	if old != nil {
		if err := byTenant.Delete(tenantKey(old)); err != nil {
			return err
		}
		if err := byDeadline.Delete(deadlineKey(old)); err != nil {
			return err
		}
	}
	if err := tx.Bucket(jobsBucket).Put([]byte(j.ID), raw); err != nil {
		return err
	}
	if err := byTenant.Put(tenantKey(j), []byte(j.Status)); err != nil {
		return err
	}
	if j.Status == job.AwaitingUpload {
		return byDeadline.Put(deadlineKey(j), nil)
	}
	return nil
}
