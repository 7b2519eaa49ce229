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

// GuardDuty Malware Protection for S3 reports each scan on the default
// event bus with this source and detail type.
const (
	GuardDutySource      = "aws.guardduty"
	ScanResultDetailType = "GuardDuty Malware Protection Object Scan Result"
)

// scanResult is the part of a scan-result event's detail validation uses.
type scanResult struct {
	S3ObjectDetails struct {
		BucketName string `json:"bucketName"`
		ObjectKey  string `json:"objectKey"` // as stored: EventBridge events do not URL-encode keys
	} `json:"s3ObjectDetails"`
	ScanResultDetails struct {
		ScanResultStatus string `json:"scanResultStatus"`
	} `json:"scanResultDetails"`
}

// Invoke is the validate Lambda's handler: S3 notifications are validated,
// a GuardDuty scan result validates its object again (the verdict now
// exists, so the upload it held back can be judged), the EventBridge
// schedule runs the expiry sweep, anything else is refused (it would
// otherwise be retried into the dead-letter queue unnoticed).
func Invoke(ctx context.Context, log *slog.Logger, v interface {
	Handler
	Sweeper
}, raw json.RawMessage) error {
	var shape struct {
		Records    []json.RawMessage `json:"Records"`
		DetailType string            `json:"detail-type"`
		Source     string            `json:"source"`
		Detail     json.RawMessage   `json:"detail"`
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
	case shape.Source == GuardDutySource && shape.DetailType == ScanResultDetailType:
		var d scanResult
		if err := json.Unmarshal(shape.Detail, &d); err != nil {
			return fmt.Errorf("validate: scan result: %w", err)
		}
		o := d.S3ObjectDetails
		if o.BucketName == "" || o.ObjectKey == "" {
			return fmt.Errorf("validate: scan result names no object: %.200s", shape.Detail)
		}
		// The verdict is read from the object's tag, not from this event:
		// the tag is what every path (this event, the S3 notification, its
		// retries) judges by, so they cannot disagree.
		log.InfoContext(ctx, "malware scan result", "bucket", o.BucketName, "key", o.ObjectKey,
			"scan_result", d.ScanResultDetails.ScanResultStatus)
		// Size 0: the event does not report one; validation checks the
		// stored size.
		return v.Handle(ctx, validate.Upload{Bucket: o.BucketName, Key: o.ObjectKey})
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
