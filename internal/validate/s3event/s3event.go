// Package s3event adapts the S3 notifications the validate Lambda receives,
// directly or through an SQS queue, and GuardDuty's malware scan results to
// validate.Upload.
package s3event

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/latentsync/latentsync-service/internal/validate"
)

// Handler handles one upload (*validate.Validator).
type Handler interface {
	Handle(ctx context.Context, u validate.Upload) error
}

// Uploads returns the object-created records of e as uploads, keys decoded
// (S3 URL-encodes keys in notifications, a space as "+"). Other records
// (removals, restores) are left out.
func Uploads(e events.S3Event) []validate.Upload {
	var ups []validate.Upload
	for _, r := range e.Records {
		if !strings.HasPrefix(r.EventName, "ObjectCreated:") {
			continue
		}
		key, err := url.QueryUnescape(r.S3.Object.Key)
		if err != nil {
			// Not an encoding S3 produces, so not one of our keys:
			// validation ignores it with a log line.
			key = r.S3.Object.Key
		}
		ups = append(ups, validate.Upload{Bucket: r.S3.Bucket.Name, Key: key, Size: r.S3.Object.Size})
	}
	return ups
}

// HandleS3 handles an S3 notification delivered to the Lambda directly. An
// error makes Lambda retry the whole event; the records already handled
// find their work done.
func HandleS3(ctx context.Context, h Handler, e events.S3Event) error {
	var errs []error
	for _, u := range Uploads(e) {
		if err := h.Handle(ctx, u); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// HandleSQS handles S3 notifications delivered through an SQS queue and
// reports the messages to deliver again (partial batch response; the event
// source mapping needs ReportBatchItemFailures). The s3:TestEvent S3 sends
// when notifications are configured carries no records and is consumed.
func HandleSQS(ctx context.Context, log *slog.Logger, h Handler, e events.SQSEvent) events.SQSEventResponse {
	var resp events.SQSEventResponse
	for _, m := range e.Records {
		if err := handleMessage(ctx, h, m); err != nil {
			log.ErrorContext(ctx, "S3 notification not handled; it will be delivered again",
				"message_id", m.MessageId, "error", err.Error())
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
		}
	}
	return resp
}

func handleMessage(ctx context.Context, h Handler, m events.SQSMessage) error {
	var e events.S3Event
	if err := json.Unmarshal([]byte(m.Body), &e); err != nil {
		// Redelivery cannot fix it; after the queue's max receives it
		// lands in the dead-letter queue, whose alarm calls an engineer.
		return fmt.Errorf("message %s is not an S3 notification: %w", m.MessageId, err)
	}
	return HandleS3(ctx, h, e)
}
