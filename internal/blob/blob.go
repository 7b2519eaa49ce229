// Package blob is the portable contract of object storage: uploads go
// straight from clients through presigned URLs, workers read inputs and
// write results. The local adapter (files + HMAC-signed URLs served by the
// local HTTP server) and the aws adapter (S3) satisfy Store; blobtest is the
// conformance suite.
package blob

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound: no object at the key.
var ErrNotFound = errors.New("object not found")

// Presigned is a URL a client uses without credentials, with the headers it
// must send (a PUT is bound to its content type and exact length).
type Presigned struct {
	URL       string            `json:"url"`
	Method    string            `json:"method"`
	Headers   map[string]string `json:"headers"`
	ExpiresAt time.Time         `json:"expires_at"`
}

// Attributes describe a stored object.
type Attributes struct {
	Size        int64
	ContentType string
	ModTime     time.Time
}

// Store is an object store (one bucket).
type Store interface {
	// PresignPut returns a URL that accepts exactly one PUT of size bytes
	// with this content type until ttl passes; any other length or type is
	// refused by the store.
	PresignPut(ctx context.Context, key, contentType string, size int64, ttl time.Duration) (Presigned, error)
	// PresignGet returns a URL to download the object until ttl passes.
	PresignGet(ctx context.Context, key string, ttl time.Duration) (Presigned, error)
	// Attributes returns the object's size and type, or ErrNotFound.
	Attributes(ctx context.Context, key string) (Attributes, error)
	// NewRangeReader reads length bytes from offset (length < 0: to the end),
	// so validation can read headers without downloading whole files.
	NewRangeReader(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	// Put writes an object from r (size bytes) atomically: readers see the
	// old object or the whole new one.
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error
	// Delete removes the object; a missing object is not an error.
	Delete(ctx context.Context, key string) error
}
