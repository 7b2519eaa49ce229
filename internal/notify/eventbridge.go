package notify

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-lambda-go/events"

	"github.com/latentsync/latentsync-service/internal/job"
)

// EventSource is the EventBridge source of job events. The publisher puts
// each job.Event with this source, detail-type = the event's Type and
// detail = the job.Event JSON; the rule in front of the notify Lambda
// matches on it.
const EventSource = "latentsync"

// FromEventBridge decodes the job event inside an EventBridge event as the
// notify Lambda receives it. The result is validated like Handle does.
func FromEventBridge(ev events.CloudWatchEvent) (job.Event, error) {
	if ev.Source != EventSource {
		return job.Event{}, fmt.Errorf("%w: EventBridge source %q, want %q", ErrBadEvent, ev.Source, EventSource)
	}
	var e job.Event
	if err := json.Unmarshal(ev.Detail, &e); err != nil {
		return job.Event{}, fmt.Errorf("%w: EventBridge %s detail: %v", ErrBadEvent, ev.ID, err)
	}
	if e.Type != ev.DetailType {
		return job.Event{}, fmt.Errorf("%w: detail-type %q but detail.type %q", ErrBadEvent, ev.DetailType, e.Type)
	}
	if err := validate(e); err != nil {
		return job.Event{}, err
	}
	return e, nil
}

// HandleEventBridge is the notify Lambda's handler: lambda.Start(n.HandleEventBridge).
// A malformed event is an error too: after Lambda's retries it lands in the
// DLQ, where an engineer should look at it.
func (n *Notifier) HandleEventBridge(ctx context.Context, ev events.CloudWatchEvent) error {
	e, err := FromEventBridge(ev)
	if err != nil {
		n.log.Error("undecodable job event", "eventbridge_id", ev.ID, "detail_type", ev.DetailType, "error", err)
		return err
	}
	return n.Handle(ctx, e)
}
