// Package job is the service's domain: a lip-sync job, its status machine,
// the public view clients see, the queue message and the job events. It
// depends on no AWS type; adapters translate.
package job

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/latentsync/latentsync-service/internal/joberr"
)

// Status is where a job is in its life.
type Status string

const (
	AwaitingUpload Status = "awaiting_upload"
	Queued         Status = "queued"
	Processing     Status = "processing"
	Succeeded      Status = "succeeded"
	Failed         Status = "failed"
	Canceled       Status = "canceled"
	Expired        Status = "expired"
)

// Terminal statuses never change again.
func (s Status) Terminal() bool {
	switch s {
	case Succeeded, Failed, Canceled, Expired:
		return true
	}
	return false
}

// Valid reports a known status.
func (s Status) Valid() bool {
	switch s {
	case AwaitingUpload, Queued, Processing, Succeeded, Failed, Canceled, Expired:
		return true
	}
	return false
}

// transitions is the status machine (DESIGN.md section 3). A processing job
// may go back to queued when its worker releases it (shutdown, lost lease).
var transitions = map[Status][]Status{
	AwaitingUpload: {Queued, Failed, Canceled, Expired},
	Queued:         {Processing, Failed, Canceled},
	Processing:     {Succeeded, Failed, Canceled, Queued},
}

// CanTransition reports whether from -> to is allowed.
func CanTransition(from, to Status) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Errors stores and services return; the API maps them to HTTP statuses in one place.
var (
	ErrNotFound = errors.New("job not found")
	// ErrConflict is a failed conditional write: the job changed meanwhile.
	ErrConflict = errors.New("job changed concurrently")
	// ErrTerminal: the job already reached a terminal status.
	ErrTerminal = errors.New("job already finished")
	// ErrIdempotencyMismatch: an Idempotency-Key reused with a different request.
	ErrIdempotencyMismatch = errors.New("idempotency key reused with a different request")
	// ErrBadTransition: the status machine does not allow the move.
	ErrBadTransition = errors.New("status transition not allowed")
)

// Media is what the client declares about one upload.
type Media struct {
	ContentType string `json:"content_type"`
	SizeBytes   int64  `json:"size_bytes"`
}

// Error is a job failure as clients see it.
type Error struct {
	Code    joberr.Code `json:"code"`
	Message string      `json:"message"`
}

// Metrics are measured by the worker.
type Metrics struct {
	SyncConfidence *float64 `json:"sync_confidence,omitempty"`
	SyncOffset     *int     `json:"sync_offset,omitempty"`
	// SSIM compares input and output frames over the face; SSIMPreserved
	// only outside the mouth region, which must not change.
	SSIM          *float64           `json:"ssim,omitempty"`
	SSIMPreserved *float64           `json:"ssim_preserved,omitempty"`
	Frames        int                `json:"frames"`
	DurationS     float64            `json:"duration_s"`
	ProcessingS   float64            `json:"processing_s"`
	StageSeconds  map[string]float64 `json:"stage_seconds,omitempty"`
}

// Warning is a problem with a succeeded job's output that a client should
// know about (e.g. LOW_PRESERVATION: the face outside the mouth changed).
type Warning struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Input names the two uploads of a job.
type Input string

const (
	VideoInput Input = "video"
	AudioInput Input = "audio"
)

// Job is the stored record. Version increases with every write; stores
// update only when the version they read is still current.
type Job struct {
	ID              string     `json:"id"`
	Tenant          string     `json:"tenant"`
	Status          Status     `json:"status"`
	Stage           string     `json:"stage,omitempty"`
	Progress        float64    `json:"progress"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
	StartedAt       *time.Time `json:"started_at,omitempty"`
	CompletedAt     *time.Time `json:"completed_at,omitempty"`
	UploadDeadline  time.Time  `json:"upload_deadline"`
	Options         Options    `json:"options"`
	Video           Media      `json:"video"`
	Audio           Media      `json:"audio"`
	VideoValidated  bool       `json:"video_validated,omitempty"`
	AudioValidated  bool       `json:"audio_validated,omitempty"`
	WebhookURL      string     `json:"webhook_url,omitempty"`
	NotifyEmail     string     `json:"notify_email,omitempty"`
	ClientReference string     `json:"client_reference,omitempty"`
	Error           *Error     `json:"error,omitempty"`
	Metrics         *Metrics   `json:"metrics,omitempty"`
	Warnings        []Warning  `json:"warnings,omitempty"`
	OutputKey       string     `json:"output_key,omitempty"`
	OutputSize      int64      `json:"output_size,omitempty"`
	Bundle          string     `json:"bundle,omitempty"` // model bundle version that ran it
	TraceHeader     string     `json:"trace_header,omitempty"`
	CancelRequested bool       `json:"cancel_requested,omitempty"`
	Version         int64      `json:"version"`
	// ExpireAt is when the record itself may be deleted (DynamoDB TTL).
	ExpireAt time.Time `json:"expire_at"`
}

// Storage keys (DESIGN.md section 3).
func UploadKey(tenant, id string, in Input) string {
	return fmt.Sprintf("uploads/%s/%s/%s", tenant, id, in)
}
func OutputKey(tenant, id string) string { return fmt.Sprintf("outputs/%s/%s/result.mp4", tenant, id) }

// NewID returns a random, URL-safe job id with a sortable time prefix, so
// listings by id are roughly newest-last without a second index.
func NewID(now time.Time) string {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // the kernel's RNG does not fail
	}
	return fmt.Sprintf("job_%011x%s", now.UnixMilli(), hex.EncodeToString(b[:]))
}

// Apply moves j to status to at now, enforcing the status machine; the caller
// persists it with a conditional write on the version it read.
func (j *Job) Apply(to Status, now time.Time) error {
	if j.Status.Terminal() {
		return fmt.Errorf("job %s is %s: %w", j.ID, j.Status, ErrTerminal)
	}
	if j.Status == to {
		return nil
	}
	if !CanTransition(j.Status, to) {
		return fmt.Errorf("job %s: %s -> %s: %w", j.ID, j.Status, to, ErrBadTransition)
	}
	j.Status = to
	j.UpdatedAt = now
	switch {
	case to == Processing && j.StartedAt == nil:
		t := now
		j.StartedAt = &t
	case to.Terminal():
		t := now
		j.CompletedAt = &t
		j.Stage = ""
		if to == Succeeded {
			j.Progress = 1
		}
	}
	return nil
}

// Fail moves j to failed with a code and message.
func (j *Job) Fail(code joberr.Code, message string, now time.Time) error {
	if err := j.Apply(Failed, now); err != nil {
		return err
	}
	j.Error = &Error{Code: code, Message: message}
	return nil
}
