package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/webhook"
)

// UserAgent identifies deliveries to receivers.
const UserAgent = "latentsync-webhooks/1"

// outcome is what one attempt taught us.
type outcome struct {
	status     int           // HTTP status, 0 when none came back
	err        error         // why it failed, nil on success
	permanent  bool          // retrying cannot help
	retryAfter time.Duration // the receiver's Retry-After, if any
	snippet    string        // start of a refusal's body, for the log
}

// deliver posts e's webhook until it succeeds, fails permanently (nil,
// logged) or retries run out (ErrUndelivered).
func (n *Notifier) deliver(ctx context.Context, log *slog.Logger, e job.Event) error {
	if n.secrets == nil {
		return fmt.Errorf("notify: webhook for job %s: no secret source configured", e.JobID)
	}
	key, err := n.secrets.WebhookSecret(ctx, e.Tenant)
	if err != nil {
		return fmt.Errorf("notify: webhook secret of tenant %s: %w", e.Tenant, err)
	}
	if len(key) == 0 {
		return fmt.Errorf("notify: tenant %s has no webhook secret: %w", e.Tenant, webhook.ErrNoSecret)
	}
	b, err := body(e)
	if err != nil {
		return err
	}
	maxDelay := time.Duration(0)
	for _, d := range n.schedule {
		maxDelay = max(maxDelay, d)
	}
	for attempt := 1; ; attempt++ {
		start := time.Now()
		o := n.attempt(ctx, key, e, b)
		attrs := []any{"attempt", attempt, "status", o.status, "duration_ms", time.Since(start).Milliseconds()}
		switch {
		case o.err == nil:
			log.Info("webhook delivered", attrs...)
			return nil
		case o.permanent:
			log.Warn("webhook refused; not retrying", append(attrs, "error", o.err, "response", o.snippet)...)
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("notify: webhook for job %s, attempt %d: %w", e.JobID, attempt, ctx.Err())
		case attempt > len(n.schedule):
			log.Error("webhook retries exhausted", append(attrs, "error", o.err)...)
			return fmt.Errorf("%w: job %s after %d attempts: %w", ErrUndelivered, e.JobID, attempt, o.err)
		}
		delay := n.jitter(n.schedule[attempt-1])
		if o.retryAfter > delay { // the receiver asked for longer; cap it at our longest wait
			delay = min(o.retryAfter, maxDelay)
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < delay+n.attemptTimeout {
			log.Warn("webhook failed; next retry does not fit before the deadline",
				append(attrs, "error", o.err, "retry_in_ms", delay.Milliseconds())...)
			return fmt.Errorf("%w: job %s after %d attempts, no time left for the next: %w", ErrUndelivered, e.JobID, attempt, o.err)
		}
		log.Info("webhook failed; retrying", append(attrs, "error", o.err, "retry_in_ms", delay.Milliseconds())...)
		if err := n.sleep(ctx, delay); err != nil {
			return fmt.Errorf("notify: webhook for job %s, waiting to retry: %w", e.JobID, err)
		}
	}
}

// attempt makes one signed POST; the timestamp and signature are the attempt's own.
func (n *Notifier) attempt(ctx context.Context, key []byte, e job.Event, b []byte) outcome {
	if err := webhook.CheckURL(ctx, e.Webhook, n.allowPrivate); err != nil {
		return outcome{err: err, permanent: errors.Is(err, webhook.ErrForbiddenURL)}
	}
	h, err := webhook.Headers(key, e.ID, n.now(), b)
	if err != nil {
		return outcome{err: err, permanent: true}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.Webhook, bytes.NewReader(b))
	if err != nil {
		return outcome{err: fmt.Errorf("build request: %w", err), permanent: true}
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	resp, err := n.client.Do(req)
	if err != nil {
		// The dialer refuses private addresses: a rebound name will not heal.
		return outcome{err: err, permanent: errors.Is(err, webhook.ErrForbiddenURL)}
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	o := outcome{status: resp.StatusCode}
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return o
	case c == http.StatusTooManyRequests || c >= 500:
		o.retryAfter = retryAfter(resp.Header.Get("Retry-After"), n.now())
	default: // 3xx (redirects are not followed) and every other 4xx
		o.permanent = true
		o.snippet = string(head)
	}
	o.err = fmt.Errorf("receiver answered %s", resp.Status)
	return o
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(min(s, 7*24*3600)) * time.Second // no overflow
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
