package api

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/webhook"
)

// checkWebhookURL applies the notifier's own rule (webhook.CheckURL) at
// creation, so a job never carries a URL its notifications cannot reach.
// A refused URL or a host that does not exist is the client's error; a DNS
// timeout is ours (INTERNAL, retryable).
func checkWebhookURL(ctx context.Context, raw string, local bool) error {
	err := webhook.CheckURL(ctx, raw, local)
	if err == nil {
		return nil
	}
	if errors.Is(err, webhook.ErrForbiddenURL) {
		reason := strings.TrimPrefix(err.Error(), webhook.ErrForbiddenURL.Error()+": ")
		return joberr.New(joberr.InvalidRequest, "webhook.url is not allowed: %s; it must be https and reach a public address", reason)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && (dnsErr.IsTimeout || dnsErr.IsTemporary) {
		return joberr.Wrap(joberr.Internal, err, "webhook.url host could not be resolved now")
	}
	return joberr.Wrap(joberr.InvalidRequest, err, "webhook.url host does not resolve")
}
