// Package eventbus is the portable contract for publishing job events: the
// aws adapter puts them on EventBridge (a rule routes them to the notify
// Lambda); the local adapter persists them and hands them to the notifier.
package eventbus

import (
	"context"

	"github.com/latentsync/latentsync-service/internal/job"
)

// Publisher publishes job events; publishing the same event (same ID) twice
// may deliver it twice, so consumers deduplicate on Event.ID.
type Publisher interface {
	Publish(ctx context.Context, e job.Event) error
}
