package api

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/joberr"
)

// TestClassify pins the error table: sentinels win over codes, wrapped
// errors are found, client messages come from joberr, causes never leak.
func TestClassify(t *testing.T) {
	const generic = "internal error; retry later or contact support with the request id"
	tests := []struct {
		name   string
		err    error
		status int
		code   joberr.Code
		msg    string
	}{
		{"missing key", fmt.Errorf("auth: %w", ErrMissingKey), 401, Unauthorized, "the x-api-key header is missing"},
		{"unknown key", fmt.Errorf("auth: %w", ErrUnknownKey), 403, Forbidden, "the API key is not valid"},
		{"not found, wrapped twice", fmt.Errorf("a: %w", fmt.Errorf("b: %w", job.ErrNotFound)), 404, NotFound, "job not found"},
		{"idempotency mismatch", fmt.Errorf("create: %w", job.ErrIdempotencyMismatch), 409, Conflict, "the Idempotency-Key was already used with a different request"},
		{"terminal with a message", joberr.Wrap(Conflict, job.ErrTerminal, "job x has already finished"), 409, Conflict, "job x has already finished"},
		{"terminal without one", fmt.Errorf("apply: %w", job.ErrTerminal), 409, Conflict, "the job has already finished"},
		{"lost race", fmt.Errorf("update: %w", job.ErrConflict), 409, Conflict, "the job changed concurrently; retry the request"},
		{"sentinel beats the code around it", joberr.Wrap(joberr.InvalidRequest, job.ErrNotFound, "odd"), 404, NotFound, "odd"},
		{"invalid request", joberr.New(joberr.InvalidRequest, "video is required"), 400, joberr.InvalidRequest, "video is required"},
		{"unsupported media", joberr.New(joberr.UnsupportedMedia, "no avi"), 415, joberr.UnsupportedMedia, "no avi"},
		{"too large", fmt.Errorf("x: %w", joberr.New(joberr.MediaTooLarge, "big")), 413, joberr.MediaTooLarge, "big"},
		{"deadline", fmt.Errorf("list: %w", context.DeadlineExceeded), 504, joberr.Timeout, generic},
		{"internal with a message", joberr.Wrap(joberr.Internal, errors.New("dns"), "secret detail"), 500, joberr.Internal, generic},
		{"job failure code is not an API answer", joberr.New(joberr.NoFaceDetected, "no face"), 500, joberr.Internal, generic},
		{"anything else", errors.New("bolt: database not open"), 500, joberr.Internal, generic},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, code, msg := classify(tc.err)
			if status != tc.status || code != tc.code || msg != tc.msg {
				t.Errorf("classify = %d %s %q, want %d %s %q", status, code, msg, tc.status, tc.code, tc.msg)
			}
		})
	}
}
