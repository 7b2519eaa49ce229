// Package notify tells clients that a job finished: a signed webhook
// (Standard Webhooks, retried with backoff) and an optional email. The same
// Notifier runs in the notify Lambda (fed by EventBridge) and in `serve`.
//
// Retries: Handle retries a webhook in process along a schedule (by default
// Standard Webhooks' 5 s, 5 m, 30 m, 2 h, 5 h, 10 h), but only while the next
// attempt fits before ctx's deadline. In the Lambda that means the retries that
// fit in the function's timeout; then Handle returns an error wrapping
// ErrUndelivered, so Lambda's asynchronous retries and its on-failure
// destination (the DLQ, which alarms) take over. A long-lived process
// (`serve`) has no deadline and follows the whole schedule. Every attempt
// carries the same webhook-id (the event ID): receivers deduplicate on it.
// A Lambda retry re-runs the whole event, so the email may then go twice;
// it is sent first and only repeats when the webhook also failed for minutes.
// Retrying for hours from the Lambda would need the event re-queued with a
// delay (SQS or EventBridge Scheduler); the Notifier does not do that.
package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/webhook"
)

// SecretEnv names the one webhook secret of local mode ("whsec_..." or raw).
const SecretEnv = "LATENTSYNC_WEBHOOK_SECRET"

// SecretSource returns the webhook signing key of a tenant (decoded bytes,
// see webhook.ParseSecret). An error is retried; an empty key is a
// configuration error.
type SecretSource interface {
	WebhookSecret(ctx context.Context, tenant string) ([]byte, error)
}

// SecretFunc adapts a function to SecretSource.
type SecretFunc func(ctx context.Context, tenant string) ([]byte, error)

// WebhookSecret calls f.
func (f SecretFunc) WebhookSecret(ctx context.Context, tenant string) ([]byte, error) {
	return f(ctx, tenant)
}

// StaticSecret signs every tenant's webhooks with one key (local mode).
func StaticSecret(key []byte) SecretSource {
	return SecretFunc(func(context.Context, string) ([]byte, error) { return key, nil })
}

// Mailer sends a plain-text email. Implementations wrap ErrRejected for
// failures that retrying cannot fix (invalid or suppressed address, message
// rejected); any other error is retried.
type Mailer interface {
	Send(ctx context.Context, to, subject, textBody string) error
}

// Errors Handle and Mailers return.
var (
	// ErrRejected marks a permanent failure of one notification.
	ErrRejected = errors.New("notify: rejected")
	// ErrUndelivered: the webhook still failed when retries ran out (or no
	// time was left for the next one); the event should be retried later.
	ErrUndelivered = errors.New("notify: webhook not delivered")
	// ErrBadEvent: the event cannot be notified as it is.
	ErrBadEvent = errors.New("notify: malformed job event")
)

// DefaultSchedule is the delay before each retry after the first attempt,
// as Standard Webhooks suggests: retries for about 18 hours.
func DefaultSchedule() []time.Duration {
	return []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour}
}

// Config builds a Notifier; zero fields take the defaults noted.
type Config struct {
	Secrets SecretSource // required when events carry webhooks
	Mailer  Mailer       // nil: email is not sent (logged)
	// AllowPrivate permits http:// and private, loopback and link-local
	// receivers: local mode and tests only.
	AllowPrivate bool
	// AttemptTimeout bounds one delivery attempt (default 15 s).
	AttemptTimeout time.Duration
	// Schedule is the delay before each retry (default DefaultSchedule).
	Schedule []time.Duration
	// Jitter spreads a scheduled delay so receivers recovering from an outage
	// are not hit by every sender at once (default: uniform within ±20 %).
	Jitter func(time.Duration) time.Duration
	// Sleep waits between attempts (default: a timer that stops with ctx).
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock for webhook-timestamp (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger // default slog.Default()
}

// Notifier delivers job events. It is safe for concurrent use.
type Notifier struct {
	secrets        SecretSource
	mailer         Mailer
	allowPrivate   bool
	client         *http.Client
	attemptTimeout time.Duration
	schedule       []time.Duration
	jitter         func(time.Duration) time.Duration
	sleep          func(context.Context, time.Duration) error
	now            func() time.Time
	log            *slog.Logger
}

// New returns a Notifier for cfg.
func New(cfg Config) *Notifier {
	n := &Notifier{
		secrets: cfg.Secrets, mailer: cfg.Mailer, allowPrivate: cfg.AllowPrivate,
		attemptTimeout: cfg.AttemptTimeout, schedule: cfg.Schedule,
		jitter: cfg.Jitter, sleep: cfg.Sleep, now: cfg.Now, log: cfg.Logger,
	}
	if n.attemptTimeout <= 0 {
		n.attemptTimeout = 15 * time.Second
	}
	if n.schedule == nil {
		n.schedule = DefaultSchedule()
	}
	if n.jitter == nil {
		n.jitter = spread
	}
	if n.sleep == nil {
		n.sleep = sleep
	}
	if n.now == nil {
		n.now = time.Now
	}
	if n.log == nil {
		n.log = slog.Default()
	}
	n.client = webhook.NewClient(webhook.ClientConfig{AllowPrivate: cfg.AllowPrivate, Timeout: n.attemptTimeout})
	return n
}

// Payload is the webhook body, in the shape Standard Webhooks recommends:
// the event type, when it happened, and the public job view as data.
type Payload struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      job.View  `json:"data"`
}

// Handle notifies e's webhook and email, if any. It returns nil when every
// notification was delivered or failed permanently (logged: a receiver's
// 4xx needs no engineer); an error means "retry the event later". Email goes
// first: it is quick and must not wait behind webhook retries.
func (n *Notifier) Handle(ctx context.Context, e job.Event) error {
	if err := validate(e); err != nil {
		return err
	}
	log := n.log.With("job_id", e.JobID, "event_id", e.ID, "event_type", e.Type, "tenant", e.Tenant)
	var errs []error
	if e.Email != "" {
		if err := n.email(ctx, log, e); err != nil {
			errs = append(errs, err)
		}
	}
	if e.Webhook != "" {
		if err := n.deliver(ctx, log, e); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func validate(e job.Event) error {
	switch {
	case e.ID == "" || e.JobID == "" || e.Tenant == "":
		return fmt.Errorf("%w: id %q, job_id %q, tenant %q: all are required", ErrBadEvent, e.ID, e.JobID, e.Tenant)
	case e.Type != job.EventSucceeded && e.Type != job.EventFailed && e.Type != job.EventCanceled:
		return fmt.Errorf("%w: unknown type %q", ErrBadEvent, e.Type)
	}
	return nil
}

func (n *Notifier) email(ctx context.Context, log *slog.Logger, e job.Event) error {
	if n.mailer == nil {
		log.Warn("email requested but no mailer configured")
		return nil
	}
	subject, text := compose(e)
	err := n.mailer.Send(ctx, e.Email, subject, text)
	switch {
	case err == nil:
		log.Info("email sent")
		return nil
	case errors.Is(err, ErrRejected):
		log.Warn("email rejected; not retrying", "error", err)
		return nil
	default:
		return fmt.Errorf("notify: email for job %s: %w", e.JobID, err)
	}
}

// spread returns d moved uniformly within ±20 %.
func spread(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// body is the webhook body of e; the same bytes go out on every attempt.
func body(e job.Event) ([]byte, error) {
	b, err := json.Marshal(Payload{Type: e.Type, Timestamp: e.Time.UTC(), Data: e.Detail})
	if err != nil {
		return nil, fmt.Errorf("notify: encode webhook body of %s: %w", e.ID, err)
	}
	return b, nil
}
