// Package webhooktest runs a signature-checking webhook endpoint on
// 127.0.0.1 for tests that follow a job to its webhook.
package webhooktest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/internal/webhook"
)

// Receiver is a webhook.Receiver served for the length of one test; a
// delivery it refuses (a bad signature) fails the test.
type Receiver struct {
	URL string // where to send deliveries
	rc  *webhook.Receiver
}

// Start serves a receiver that verifies deliveries with key until t ends.
func Start(t testing.TB, key []byte) *Receiver {
	t.Helper()
	rc := webhook.NewReceiver(webhook.ReceiverConfig{Key: key, Buffer: 8, Rejected: func(err error) {
		t.Errorf("webhook refused: %v", err)
	}})
	ep, err := rc.Listen()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	return &Receiver{URL: ep.URL, rc: rc}
}

// Next returns the payload of the next verified delivery, failing t when
// none arrives within the given time.
func (r *Receiver) Next(t testing.TB, within time.Duration) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	d, err := r.rc.Next(ctx)
	if err != nil {
		t.Fatalf("no webhook delivered within %s", within)
	}
	var payload map[string]any
	if err := json.Unmarshal(d.Body, &payload); err != nil {
		t.Fatal(err)
	}
	return payload
}
