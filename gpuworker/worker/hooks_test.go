package worker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/queue"
)

// hookLog records the health hooks in the order they fire.
type hookLog struct {
	mu      sync.Mutex
	polls   []time.Time
	running []string // "id:true" / "id:false"
}

func (h *hookLog) polled(t time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.polls = append(h.polls, t)
}

func (h *hookLog) run(id string, running bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.running = append(h.running, fmt.Sprintf("%s:%v", id, running))
}

func (h *hookLog) snapshot() ([]time.Time, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.polls), slices.Clone(h.running)
}

func TestHealthHooks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := newFakePipeline(3)
	p.hold = make(chan struct{})
	cfg := e.config(p)
	h := &hookLog{}
	cfg.Polled, cfg.Running = h.polled, h.run
	before := time.Now()
	stop := e.start(cfg)
	defer stop()

	// Empty polls count: the idle worker is alive.
	eventually(t, 5*time.Second, func() bool { polls, _ := h.snapshot(); return len(polls) >= 2 },
		func() string { return "fewer than 2 polls reported while idle" })

	j := e.queueJob()
	select {
	case id := <-p.started:
		if id != j.ID {
			t.Fatalf("pipeline started %s, want %s", id, j.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the job never started")
	}
	if _, running := h.snapshot(); !slices.Equal(running, []string{j.ID + ":true"}) {
		t.Errorf("while the pipeline runs, Running went %v, want [%s:true]", running, j.ID)
	}
	close(p.hold)
	e.waitStatus(j.ID, job.Succeeded, 15*time.Second)
	eventually(t, 5*time.Second, func() bool { _, r := h.snapshot(); return len(r) == 2 },
		func() string { _, r := h.snapshot(); return fmt.Sprintf("Running went %v", r) })
	polls, running := h.snapshot()
	if want := []string{j.ID + ":true", j.ID + ":false"}; !slices.Equal(running, want) {
		t.Errorf("Running went %v, want %v", running, want)
	}
	for i, at := range polls {
		if at.Before(before) || at.After(time.Now()) || (i > 0 && at.Before(polls[i-1])) {
			t.Errorf("poll %d at %v is not a time of this test, in order", i, at)
		}
	}
}

// failingQueue fails every receive, as an unreachable SQS would.
type failingQueue struct{ queue.Queue }

func (failingQueue) Receive(context.Context, int, time.Duration, time.Duration) ([]queue.Message, error) {
	return nil, errors.New("connection refused")
}

func TestFailedReceiveIsNotAPoll(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := e.config(newFakePipeline(1))
	cfg.Queue = failingQueue{e.q}
	h := &hookLog{}
	cfg.Polled = h.polled
	stop := e.start(cfg)
	time.Sleep(1500 * time.Millisecond) // the first failure and its one-second backoff
	stop()
	if polls, _ := h.snapshot(); len(polls) != 0 {
		t.Errorf("%d polls reported, though every receive failed", len(polls))
	}
}
