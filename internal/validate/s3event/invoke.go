package s3event

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/aws/aws-lambda-go/events"

	"github.com/latentsync/latentsync-service/internal/validate"
)

// Sweeper expires abandoned jobs and re-sends lost queue messages
// (*validate.Validator).
type Sweeper interface {
	Sweep(ctx context.Context) (validate.SweepResult, error)
}

// ScheduledDetailType is what an EventBridge schedule sends.
const ScheduledDetailType = "Scheduled Event"

// Invoke is the validate Lambda's handler: S3 notifications are validated,
// the EventBridge schedule runs the expiry sweep, anything else is refused
// (it would otherwise be retried into the dead-letter queue unnoticed).
func Invoke(ctx context.Context, log *slog.Logger, v interface {
	Handler
	Sweeper
}, raw json.RawMessage) error {
	var shape struct {
		Records    []json.RawMessage `json:"Records"`
		DetailType string            `json:"detail-type"`
	}
	if err := json.Unmarshal(raw, &shape); err != nil {
		return fmt.Errorf("validate: event is not JSON: %w", err)
	}
	switch {
	case shape.Records != nil:
		var e events.S3Event
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("validate: S3 event: %w", err)
		}
		return HandleS3(ctx, v, e)
	case shape.DetailType == ScheduledDetailType:
		res, err := v.Sweep(ctx)
		if err != nil {
			return fmt.Errorf("validate: sweep: %w", err)
		}
		log.InfoContext(ctx, "sweep", "expired", res.Expired, "enqueued", res.Enqueued)
		return nil
	}
	return fmt.Errorf("validate: unexpected event %.200s", raw)
}
