// Package jobstore is the portable contract of the job table: the local
// adapter (embedded, on disk) and the aws adapter (DynamoDB) both satisfy
// Store, and jobstoretest runs one conformance suite against each.
package jobstore

import (
	"context"
	"errors"
	"time"

	"github.com/latentsync/latentsync-service/internal/job"
)

// ErrBadCursor: a List cursor the store did not issue (a client error).
var ErrBadCursor = errors.New("invalid list cursor")

// Store persists jobs. Every write is conditional, so concurrent writers
// (two validations, a worker and a cancel) never lose each other's updates.
type Store interface {
	// Create stores a new job (Version must be 0; stored as 1). If
	// idempotencyKey is not empty it is recorded beside the job in the same
	// atomic write, scoped to the tenant: when the key exists already, Create
	// stores nothing and returns the job created with it, or
	// job.ErrIdempotencyMismatch when requestHash differs from the recorded one.
	Create(ctx context.Context, j *job.Job, idempotencyKey, requestHash string) (*job.Job, error)
	// Get returns the job; tenant "" reads any tenant's job (internal
	// callers: validation, workers). A job of another tenant is job.ErrNotFound.
	Get(ctx context.Context, tenant, id string) (*job.Job, error)
	// Update writes j if the stored version is still j.Version, then sets
	// j.Version to the new version; otherwise job.ErrConflict (or
	// job.ErrNotFound when the job is gone).
	Update(ctx context.Context, j *job.Job) error
	// List returns a tenant's jobs newest first (by CreatedAt, then id),
	// optionally only those in status, at most limit (1..100), and a cursor
	// for the next page ("" when there is none).
	List(ctx context.Context, tenant string, status job.Status, limit int, cursor string) ([]*job.Job, string, error)
	// ListExpired returns jobs still awaiting upload whose upload
	// deadline is before t, for the expiry sweep (at most limit).
	ListExpired(ctx context.Context, before time.Time, limit int) ([]*job.Job, error)
}
