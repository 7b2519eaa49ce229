package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/internal/eventbus"
	"github.com/latentsync/latentsync-service/internal/job"
)

var _ eventbus.Publisher = (*EventBus)(nil)

func openEventBus(t *testing.T, dir string) *EventBus {
	t.Helper()
	b, err := OpenEventBus(dir, EventBusOptions{
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 80 * time.Millisecond,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func event(n int) job.Event {
	id := fmt.Sprintf("job_%d", n)
	return job.Event{ID: "evt_" + id + "_succeeded", Type: job.EventSucceeded, JobID: id, Tenant: "t1",
		Detail: job.View{ID: id, Status: job.Succeeded}}
}

// recorder is a handler that fails the first failures[id] deliveries of an
// event and records every call.
type recorder struct {
	mu       sync.Mutex
	failures map[string]int
	calls    []string // event ids, in call order
	done     []string // accepted event ids
	times    map[string][]time.Time
}

func (r *recorder) handle(_ context.Context, e job.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, e.ID)
	if r.times == nil {
		r.times = map[string][]time.Time{}
	}
	r.times[e.ID] = append(r.times[e.ID], time.Now())
	if r.failures[e.ID] > 0 {
		r.failures[e.ID]--
		return errors.New("webhook endpoint unavailable")
	}
	r.done = append(r.done, e.ID)
	return nil
}

func (r *recorder) accepted() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.done)
}

// runUntil runs the dispatcher until want events were accepted.
func runUntil(t *testing.T, b *EventBus, r *recorder, want int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- b.Run(ctx, r.handle) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(r.accepted()) < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := len(r.accepted()); got < want {
		t.Fatalf("%d events accepted within 5s, want %d", got, want)
	}
}

func TestEventBusRetriesWithBackoff(t *testing.T) {
	b := openEventBus(t, t.TempDir())
	flaky, fine := event(1), event(2)
	r := &recorder{failures: map[string]int{flaky.ID: 3}}
	for _, e := range []job.Event{flaky, fine} {
		if err := b.Publish(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	runUntil(t, b, r, 2)
	if got := r.accepted(); !slices.Equal(got, []string{fine.ID, flaky.ID}) {
		t.Errorf("accepted %v: the failing event must not hold up the other", got)
	}
	times := r.times[flaky.ID]
	if len(times) != 4 {
		t.Fatalf("flaky event handled %d times, want 4 (3 failures + 1)", len(times))
	}
	// Gaps double from 20ms and cap at 80ms: 20, 40, 80.
	for i, min := range []time.Duration{20, 40, 80} {
		if gap := times[i+1].Sub(times[i]); gap < min*time.Millisecond {
			t.Errorf("retry %d after %s, want at least %dms", i+1, gap, min)
		}
	}
	if n, err := b.Pending(); err != nil || n != 0 {
		t.Errorf("Pending = %d, %v; want 0", n, err)
	}
}

func TestEventBusSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	first := openEventBus(t, dir)
	for i := range 3 {
		if err := first.Publish(t.Context(), event(i)); err != nil {
			t.Fatal(err)
		}
	}
	// The first process's handler never succeeds, then the process stops.
	down := &recorder{failures: map[string]int{event(0).ID: 100, event(1).ID: 100, event(2).ID: 100}}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := first.Run(ctx, down.handle); err != nil {
		t.Fatal(err)
	}
	if len(down.calls) == 0 {
		t.Fatal("dispatcher made no delivery attempt")
	}
	first.Close()

	second := openEventBus(t, dir)
	if n, err := second.Pending(); err != nil || n != 3 {
		t.Fatalf("Pending after restart = %d, %v; want 3", n, err)
	}
	up := &recorder{}
	runUntil(t, second, up, 3)
	got := up.accepted()
	slices.Sort(got)
	if want := []string{event(0).ID, event(1).ID, event(2).ID}; !slices.Equal(got, want) {
		t.Errorf("delivered after restart %v, want %v", got, want)
	}
}

func TestEventBusPublishWakesDispatcher(t *testing.T) {
	b := openEventBus(t, t.TempDir())
	r := &recorder{}
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan error, 1)
	go func() { stopped <- b.Run(ctx, r.handle) }()
	defer func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	time.Sleep(50 * time.Millisecond) // the dispatcher is idle, waiting
	start := time.Now()
	if err := b.Publish(t.Context(), event(7)); err != nil {
		t.Fatal(err)
	}
	for len(r.accepted()) == 0 && time.Since(start) < 5*time.Second {
		time.Sleep(2 * time.Millisecond)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("event delivered %s after Publish, want at once", d)
	}
	if err := b.Run(ctx, r.handle); err == nil {
		t.Error("a second concurrent Run succeeded")
	}
}
