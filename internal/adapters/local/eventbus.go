package local

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/latentsync/latentsync-service/internal/job"
)

var outboxBucket = []byte("outbox") // sequence -> outboxEntry JSON

// EventBusOptions configure an EventBus.
type EventBusOptions struct {
	// MinBackoff and MaxBackoff bound the delay before retrying a failed
	// delivery; it doubles per attempt (defaults 1s and 5m).
	MinBackoff, MaxBackoff time.Duration
	// Now is the clock for retry times (time.Now when nil).
	Now func() time.Time
	// Logger receives delivery failures (slog.Default when nil).
	Logger *slog.Logger
}

// EventBus is an eventbus.Publisher backed by a persistent outbox,
// dir/events.db, and its dispatcher (Run). An event stays in the outbox
// until the handler accepted it, across restarts: delivery is at least
// once, so handlers deduplicate on Event.ID as they do behind EventBridge.
type EventBus struct {
	db      *bolt.DB
	opts    EventBusOptions
	wake    chan struct{}
	running atomic.Bool
}

type outboxEntry struct {
	Event     job.Event `json:"event"`
	Attempts  int       `json:"attempts"`
	NextAt    time.Time `json:"next_at"`
	LastError string    `json:"last_error,omitempty"`
}

// OpenEventBus opens (creating) the outbox under dir.
func OpenEventBus(dir string, opts EventBusOptions) (*EventBus, error) {
	db, err := openDB(dir, "events.db", string(outboxBucket))
	if err != nil {
		return nil, fmt.Errorf("event bus: %w", err)
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(5*time.Minute, opts.MinBackoff)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &EventBus{db: db, opts: opts, wake: make(chan struct{}, 1)}, nil
}

// Close releases the outbox file; undelivered events wait for the next open.
func (b *EventBus) Close() error { return b.db.Close() }

// Publish stores e in the outbox and wakes the dispatcher.
func (b *EventBus) Publish(ctx context.Context, e job.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := b.db.Update(func(tx *bolt.Tx) error {
		out := tx.Bucket(outboxBucket)
		seq, err := out.NextSequence()
		if err != nil {
			return err
		}
		raw, err := json.Marshal(outboxEntry{Event: e, NextAt: b.opts.Now()})
		if err != nil {
			return err
		}
		return out.Put(binary.BigEndian.AppendUint64(nil, seq), raw)
	})
	if err != nil {
		return fmt.Errorf("publish event %s of job %s: %w", e.ID, e.JobID, err)
	}
	select {
	case b.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
	return nil
}

// Pending counts events not yet delivered.
func (b *EventBus) Pending() (int, error) {
	n := 0
	err := b.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(outboxBucket).Stats().KeyN
		return nil
	})
	return n, err
}

// Run delivers outbox events to handle, oldest first, until ctx ends
// (then it returns nil). A failed delivery is retried with exponential
// backoff without holding up the other events. One Run at a time.
func (b *EventBus) Run(ctx context.Context, handle func(context.Context, job.Event) error) error {
	if !b.running.CompareAndSwap(false, true) {
		return fmt.Errorf("event bus: dispatcher already running")
	}
	defer b.running.Store(false)
	for {
		next, err := b.dispatchDue(ctx, handle)
		if err != nil {
			return fmt.Errorf("event bus: %w", err)
		}
		// With nothing scheduled, wait a long time: only Publish wakes us.
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(b.opts.Now()), time.Millisecond)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-b.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// dispatchDue handles every due entry once and returns when the earliest
// remaining one falls due (zero: the outbox is empty).
func (b *EventBus) dispatchDue(ctx context.Context, handle func(context.Context, job.Event) error) (time.Time, error) {
	type due struct {
		key   []byte
		entry outboxEntry
	}
	var (
		batch []due
		next  time.Time
	)
	now := b.opts.Now()
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(outboxBucket).ForEach(func(k, v []byte) error {
			var e outboxEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode outbox entry %x: %w", k, err)
			}
			if e.NextAt.After(now) {
				if next.IsZero() || e.NextAt.Before(next) {
					next = e.NextAt
				}
				return nil
			}
			batch = append(batch, due{append([]byte(nil), k...), e})
			return nil
		})
	})
	if err != nil {
		return time.Time{}, err
	}
	for _, d := range batch {
		if ctx.Err() != nil {
			return time.Time{}, nil // the entries stay for the next Run
		}
		herr := handle(ctx, d.entry.Event)
		err := b.db.Update(func(tx *bolt.Tx) error {
			out := tx.Bucket(outboxBucket)
			if herr == nil {
				return out.Delete(d.key)
			}
			d.entry.Attempts++
			d.entry.NextAt = b.opts.Now().Add(b.backoff(d.entry.Attempts))
			d.entry.LastError = herr.Error()
			raw, err := json.Marshal(d.entry)
			if err != nil {
				return err
			}
			return out.Put(d.key, raw)
		})
		if err != nil {
			return time.Time{}, fmt.Errorf("record delivery of event %s: %w", d.entry.Event.ID, err)
		}
		if herr != nil {
			b.opts.Logger.WarnContext(ctx, "event delivery failed; will retry",
				"job_id", d.entry.Event.JobID, "event_id", d.entry.Event.ID, "event_type", d.entry.Event.Type,
				"attempt", d.entry.Attempts, "retry_at", d.entry.NextAt, "error", herr)
			if next.IsZero() || d.entry.NextAt.Before(next) {
				next = d.entry.NextAt
			}
		}
	}
	return next, nil
}

// backoff is MinBackoff doubled per earlier attempt, capped at MaxBackoff.
func (b *EventBus) backoff(attempts int) time.Duration {
	d := b.opts.MinBackoff
	for i := 1; i < attempts && d < b.opts.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, b.opts.MaxBackoff)
}
