// Package queue is the portable contract of the jobs queue: at-least-once
// delivery with a visibility timeout and redrive to a dead-letter queue after
// MaxReceives. The local adapter (embedded, on disk) and the aws adapter
// (SQS) satisfy Queue; queuetest is the conformance suite.
package queue

import (
	"context"
	"errors"
	"time"
)

// TraceAttribute is the message attribute carrying the X-Ray trace header
// from the API request, so the worker continues the same trace.
const TraceAttribute = "trace_header"

// ErrReceiptInvalid: the receipt handle is stale (the message was deleted or
// its visibility expired and someone else received it).
var ErrReceiptInvalid = errors.New("queue receipt handle no longer valid")

// Message is one delivery of a queued message.
type Message struct {
	ID           string
	Body         []byte
	Attributes   map[string]string // e.g. the X-Ray trace header
	Receipt      string            // handle for Delete / ChangeVisibility of this delivery
	ReceiveCount int               // 1 on first delivery
	SentAt       time.Time
}

// Queue is one queue; its dead-letter queue is another Queue.
type Queue interface {
	Send(ctx context.Context, body []byte, attributes map[string]string) (id string, err error)
	// Receive waits up to wait for at most max messages and hides them for
	// visibility. A message received more than the queue's max receives
	// is moved to the dead-letter queue instead of being delivered.
	Receive(ctx context.Context, max int, wait, visibility time.Duration) ([]Message, error)
	// ChangeVisibility hides the delivery for d from now (0 releases it now).
	ChangeVisibility(ctx context.Context, receipt string, d time.Duration) error
	Delete(ctx context.Context, receipt string) error
}
