// Package joberr defines the job error codes of the public contract and a typed
// error that carries one, so every layer can fail with a code the API maps in
// one place.
package joberr

import (
	"context"
	"errors"
	"fmt"
)

// Code is a job or API error code (DESIGN.md section 3).
type Code string

const (
	InvalidRequest   Code = "INVALID_REQUEST"
	UnsupportedMedia Code = "UNSUPPORTED_MEDIA"
	MediaTooLarge    Code = "MEDIA_TOO_LARGE"
	MediaTooLong     Code = "MEDIA_TOO_LONG"
	CorruptMedia     Code = "CORRUPT_MEDIA"
	NoVideoStream    Code = "NO_VIDEO_STREAM"
	NoAudioStream    Code = "NO_AUDIO_STREAM"
	NoFaceDetected   Code = "NO_FACE_DETECTED"
	MalwareDetected  Code = "MALWARE_DETECTED"
	ModelUnavailable Code = "MODEL_UNAVAILABLE"
	ProcessingFailed Code = "PROCESSING_FAILED"
	Timeout          Code = "TIMEOUT"
	Canceled         Code = "CANCELED"
	Internal         Code = "INTERNAL"
)

// Error is a failure with a public code. Message is safe to show to the client;
// Err keeps the underlying cause for logs.
type Error struct {
	Code    Code
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an error with code and a formatted client-facing message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap is New with an underlying cause.
func Wrap(code Code, err error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// CodeOf returns the code of the first *Error in err's chain; context
// cancellation and deadlines map to CANCELED and TIMEOUT, anything else to INTERNAL.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	switch {
	case errors.Is(err, context.Canceled):
		return Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return Timeout
	}
	return Internal
}

// MessageOf returns the client-facing message of err's first *Error, or err's text.
func MessageOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}
