package local

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/internal/queue"
	"github.com/latentsync/latentsync-service/internal/queue/queuetest"
)

func openQueues(t *testing.T, dir string, opts QueuesOptions) *Queues {
	t.Helper()
	qs, err := OpenQueues(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { qs.Close() })
	return qs
}

func jobQueues(t *testing.T, qs *Queues, maxReceives int) (*Queue, *Queue) {
	t.Helper()
	main, err := qs.Queue("jobs", QueueConfig{MaxReceives: maxReceives, DeadLetter: "jobs-dlq"})
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := qs.Queue("jobs-dlq", QueueConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return main, dlq
}

func TestQueueConformance(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, maxReceives int) (queue.Queue, queue.Queue) {
		return jobQueues(t, openQueues(t, t.TempDir(), QueuesOptions{}), maxReceives)
	}, queuetest.Options{})
}

func TestQueueSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	first := openQueues(t, dir, QueuesOptions{})
	q, _ := jobQueues(t, first, 3)
	for i := range 2 {
		if _, err := q.Send(ctx, fmt.Appendf(nil, "m%d", i), map[string]string{"n": fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	inFlight, err := q.Receive(ctx, 1, 0, time.Hour)
	if err != nil || len(inFlight) != 1 {
		t.Fatalf("Receive = %d, %v", len(inFlight), err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	q, _ = jobQueues(t, openQueues(t, dir, QueuesOptions{}), 3)
	waiting, err := q.Receive(ctx, 10, 0, time.Hour)
	if err != nil || len(waiting) != 1 || waiting[0].ID == inFlight[0].ID || waiting[0].Attributes["n"] == "" {
		t.Fatalf("after restart received %+v, %v; want only the message not in flight", waiting, err)
	}
	// The in-flight delivery's receipt outlives the restart.
	if err := q.ChangeVisibility(ctx, inFlight[0].Receipt, 0); err != nil {
		t.Fatalf("ChangeVisibility with a pre-restart receipt: %v", err)
	}
	again, err := q.Receive(ctx, 10, 0, time.Hour)
	if err != nil || len(again) != 1 || again[0].ID != inFlight[0].ID || again[0].ReceiveCount != 2 {
		t.Fatalf("released message after restart: %+v, %v; want it with count 2", again, err)
	}
}

// With an injected clock, visibility and redrive need no sleeping.
func TestQueueVisibilityByClock(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	qs := openQueues(t, t.TempDir(), QueuesOptions{Now: func() time.Time { return now }})
	q, dlq := jobQueues(t, qs, 2)
	ctx := t.Context()
	if _, err := q.Send(ctx, []byte("job"), nil); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		advance   time.Duration
		wantCount int // 0: nothing delivered
	}{
		{0, 1},
		{59 * time.Second, 0},
		{time.Second, 2},
		{time.Minute, 0}, // third receive: redriven instead
	}
	for i, st := range steps {
		now = now.Add(st.advance)
		msgs, err := q.Receive(ctx, 1, 0, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		if len(msgs) == 1 {
			got = msgs[0].ReceiveCount
		}
		if got != st.wantCount {
			t.Errorf("step %d (+%s): delivered count %d, want %d", i, st.advance, got, st.wantCount)
		}
	}
	dead, err := dlq.Receive(ctx, 1, 0, time.Minute)
	if err != nil || len(dead) != 1 || string(dead[0].Body) != "job" || dead[0].ReceiveCount != 1 {
		t.Fatalf("dlq = %+v, %v; want the job as a first delivery", dead, err)
	}
}

func TestQueueCloseWakesReceivers(t *testing.T) {
	qs, err := OpenQueues(t.TempDir(), QueuesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	q, _ := jobQueues(t, qs, 0)
	done := make(chan error, 1)
	go func() {
		_, err := q.Receive(t.Context(), 1, time.Minute, time.Minute)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	qs.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrQueuesClosed) {
			t.Errorf("Receive after Close = %v, want ErrQueuesClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Receive still waiting 5s after Close")
	}
}

func TestQueueConfigRejected(t *testing.T) {
	qs := openQueues(t, t.TempDir(), QueuesOptions{})
	tests := []struct {
		name string
		q    string
		cfg  QueueConfig
	}{
		{"empty name", "", QueueConfig{}},
		{"redrive without dlq", "jobs", QueueConfig{MaxReceives: 3}},
		{"redrive to itself", "jobs", QueueConfig{MaxReceives: 3, DeadLetter: "jobs"}},
		{"negative max receives", "jobs", QueueConfig{MaxReceives: -1, DeadLetter: "dlq"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := qs.Queue(tc.q, tc.cfg); err == nil {
				t.Error("Queue succeeded, want an error")
			}
		})
	}
}
