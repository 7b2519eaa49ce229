package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/jobstore"
)

// API-only error codes: DESIGN.md's list names what can go wrong with a job;
// these name what can go wrong with a request.
const (
	NotFound         joberr.Code = "NOT_FOUND"
	Conflict         joberr.Code = "CONFLICT"
	Unauthorized     joberr.Code = "UNAUTHORIZED"
	Forbidden        joberr.Code = "FORBIDDEN"
	MethodNotAllowed joberr.Code = "METHOD_NOT_ALLOWED"
)

var (
	errRouteNotFound    = errors.New("no such route")
	errMethodNotAllowed = errors.New("method not allowed")
)

// This file is the one place where errors become HTTP responses: errorCodes
// gives the code of a sentinel error (first match in the chain wins, before
// any joberr code), statusOf the HTTP status of every code.
var errorCodes = []struct {
	err     error
	code    joberr.Code
	message string // used when the chain carries no *joberr.Error
}{
	{ErrMissingKey, Unauthorized, "the x-api-key header is missing"},
	{ErrUnknownKey, Forbidden, "the API key is not valid"},
	{job.ErrNotFound, NotFound, "job not found"},
	{jobstore.ErrBadCursor, joberr.InvalidRequest, "cursor is not valid"},
	{errRouteNotFound, NotFound, "no such resource"},
	{errMethodNotAllowed, MethodNotAllowed, "method not allowed on this resource"},
	{job.ErrIdempotencyMismatch, Conflict, "the Idempotency-Key was already used with a different request"},
	{job.ErrTerminal, Conflict, "the job has already finished"},
	{job.ErrBadTransition, Conflict, "the job cannot make that change in its current status"},
	{job.ErrConflict, Conflict, "the job changed concurrently; retry the request"},
}

var statusOf = map[joberr.Code]int{
	joberr.InvalidRequest:   http.StatusBadRequest,
	joberr.UnsupportedMedia: http.StatusUnsupportedMediaType,
	joberr.MediaTooLarge:    http.StatusRequestEntityTooLarge,
	joberr.Timeout:          http.StatusGatewayTimeout,
	joberr.Internal:         http.StatusInternalServerError,
	NotFound:                http.StatusNotFound,
	Conflict:                http.StatusConflict,
	Unauthorized:            http.StatusUnauthorized,
	Forbidden:               http.StatusForbidden,
	MethodNotAllowed:        http.StatusMethodNotAllowed,
}

// classify returns the status, code and client-facing message for err.
// Anything unrecognised is INTERNAL with a generic message: causes go to the
// log, never to the client.
func classify(err error) (int, joberr.Code, string) {
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			msg := e.message
			var je *joberr.Error
			if errors.As(err, &je) {
				msg = je.Message
			}
			return statusOf[e.code], e.code, msg
		}
	}
	code := joberr.CodeOf(err)
	status, ok := statusOf[code]
	if !ok {
		code, status = joberr.Internal, http.StatusInternalServerError
	}
	if status >= 500 {
		return status, code, "internal error; retry later or contact support with the request id"
	}
	return status, code, joberr.MessageOf(err)
}

type errorBody struct {
	Error struct {
		Code    joberr.Code `json:"code"`
		Message string      `json:"message"`
	} `json:"error"`
}

// fail writes err as a JSON error and records it for the access log.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	info(r.Context()).err = err
	status, code, msg := classify(err)
	var body errorBody
	body.Error.Code, body.Error.Message = code, msg
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only our own response types get here; they always marshal
		http.Error(w, `{"error":{"code":"INTERNAL","message":"response encoding failed"}}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
