package aws

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/latentsync/latentsync-service/internal/job"
)

// EventSource is the source of every job event on the bus; rules match on
// it and on the detail-type (the event type, e.g. "job.succeeded").
const EventSource = "latentsync"

// Publisher is eventbus.Publisher on an EventBridge bus.
type Publisher struct {
	client *eventbridge.Client
	bus    string
}

// NewPublisher returns a publisher to bus (a name or ARN).
func NewPublisher(client *eventbridge.Client, bus string) *Publisher {
	return &Publisher{client: client, bus: bus}
}

// Publish implements eventbus.Publisher: one PutEvents entry whose detail
// is the event's JSON. PutEvents answers 200 even when it dropped the
// entry, so the per-entry result is checked.
func (p *Publisher) Publish(ctx context.Context, e job.Event) error {
	detail, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding event %s: %w", e.ID, err)
	}
	entry := types.PutEventsRequestEntry{
		EventBusName: aws.String(p.bus),
		Source:       aws.String(EventSource),
		DetailType:   aws.String(e.Type),
		Detail:       aws.String(string(detail)),
	}
	if !e.Time.IsZero() {
		entry.Time = aws.Time(e.Time)
	}
	out, err := p.client.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{entry}})
	if err != nil {
		return fmt.Errorf("publish event %s for job %s: %w", e.ID, e.JobID, err)
	}
	if out.FailedEntryCount > 0 {
		code, msg := "unknown", ""
		if len(out.Entries) > 0 {
			code, msg = aws.ToString(out.Entries[0].ErrorCode), aws.ToString(out.Entries[0].ErrorMessage)
		}
		return fmt.Errorf("publish event %s for job %s: entry refused: %s: %s", e.ID, e.JobID, code, msg)
	}
	return nil
}
