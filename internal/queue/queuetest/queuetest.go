// Package queuetest is the conformance suite of queue.Queue: the local
// adapter and the aws adapter (against an SQS emulator) both run it.
// Durations are whole seconds because SQS counts visibility and wait in
// seconds.
package queuetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/internal/queue"
)

// Gap names a check of the contract a queue under test does not enforce.
type Gap string

// GapStaleReceipt: Delete and ChangeVisibility refuse a receipt of an
// earlier delivery with queue.ErrReceiptInvalid. Real SQS accepts some
// stale receipts (deleting with one still deletes the message).
const GapStaleReceipt Gap = "stale-receipt"

// Options adapt the suite to one queue implementation.
type Options struct {
	// Gaps maps each check the queue does not enforce to the reason; those
	// sub-tests are skipped with it. The zero value holds the queue to the
	// whole contract.
	Gaps map[Gap]string
}

// NewQueues returns a fresh, empty queue whose messages move to dlq after
// maxReceives receives.
type NewQueues func(t *testing.T, maxReceives int) (main, dlq queue.Queue)

// Run runs the suite; sub-tests run in parallel, each on its own queues.
func Run(t *testing.T, newQueues NewQueues, opts Options) {
	tests := []struct {
		name string
		fn   func(t *testing.T, newQueues NewQueues)
	}{
		{"SendReceiveDelete", testSendReceiveDelete},
		{"MaxAndDrain", testMaxAndDrain},
		{"VisibilityRedelivers", testVisibilityRedelivers},
		{"ChangeVisibilityZeroReleases", testReleaseNow},
		{"ChangeVisibilityExtends", testExtend},
		{"StaleReceipt", func(t *testing.T, nq NewQueues) {
			if why, ok := opts.Gaps[GapStaleReceipt]; ok {
				t.Skipf("queue does not enforce %s: %s", GapStaleReceipt, why)
			}
			testStaleReceipt(t, nq)
		}},
		{"LongPoll", testLongPoll},
		{"DeadLetter", testDeadLetter},
		{"ConcurrentReceivers", testConcurrentReceivers},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newQueues)
		})
	}
}

const (
	long  = 30 * time.Second // visibility that outlasts any sub-test step
	short = time.Second
)

var traceAttrs = map[string]string{
	"trace_header": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
	"tenant":       "tenant-1",
}

func send(t *testing.T, q queue.Queue, body string, attrs map[string]string) string {
	t.Helper()
	id, err := q.Send(t.Context(), []byte(body), attrs)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if id == "" {
		t.Fatal("Send returned an empty id")
	}
	return id
}

func receive(t *testing.T, q queue.Queue, max int, wait, vis time.Duration) []queue.Message {
	t.Helper()
	msgs, err := q.Receive(t.Context(), max, wait, vis)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if len(msgs) > max {
		t.Fatalf("Receive(max %d) returned %d messages", max, len(msgs))
	}
	return msgs
}

// receiveOne long-polls until one message arrives (failing after a few seconds).
func receiveOne(t *testing.T, q queue.Queue, vis time.Duration) queue.Message {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if msgs := receive(t, q, 1, 2*time.Second, vis); len(msgs) == 1 {
			return msgs[0]
		}
	}
	t.Fatal("no message received within 5s")
	return queue.Message{}
}

func assertEmpty(t *testing.T, q queue.Queue, why string) {
	t.Helper()
	if msgs := receive(t, q, 10, short, long); len(msgs) != 0 {
		t.Errorf("%s: received %d messages (first %s, count %d), want none", why, len(msgs), msgs[0].ID, msgs[0].ReceiveCount)
	}
}

func testSendReceiveDelete(t *testing.T, newQueues NewQueues) {
	q, _ := newQueues(t, 5)
	tests := []struct {
		name  string
		body  string
		attrs map[string]string
	}{
		{"with attributes", `{"v":1,"job_id":"job_1"}`, traceAttrs},
		{"without attributes", `{"v":1,"job_id":"job_2"}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sent := time.Now()
			id := send(t, q, tc.body, tc.attrs)
			m := receiveOne(t, q, long)
			if m.ID != id || string(m.Body) != tc.body {
				t.Errorf("received %s %q, want %s %q", m.ID, m.Body, id, tc.body)
			}
			if !maps.Equal(m.Attributes, tc.attrs) { // nil and empty are equal
				t.Errorf("attributes = %v, want %v", m.Attributes, tc.attrs)
			}
			if m.ReceiveCount != 1 || m.Receipt == "" {
				t.Errorf("ReceiveCount %d, receipt %q; want 1 and a receipt", m.ReceiveCount, m.Receipt)
			}
			if m.SentAt.Before(sent.Add(-time.Minute)) || m.SentAt.After(time.Now().Add(time.Minute)) {
				t.Errorf("SentAt = %s, want about %s", m.SentAt, sent)
			}
			if err := q.Delete(t.Context(), m.Receipt); err != nil {
				t.Fatalf("Delete: %v", err)
			}
		})
	}
	assertEmpty(t, q, "after delete")
}

func testMaxAndDrain(t *testing.T, newQueues NewQueues) {
	q, _ := newQueues(t, 5)
	want := map[string]string{}
	for i := range 5 {
		body := fmt.Sprintf("message %d", i)
		want[send(t, q, body, nil)] = body
	}
	got := map[string]string{}
	deadline := time.Now().Add(10 * time.Second)
	for first := true; len(got) < len(want) && time.Now().Before(deadline); first = false {
		max := 10
		if first {
			max = 2
		}
		for _, m := range receive(t, q, max, short, long) {
			if _, dup := got[m.ID]; dup {
				t.Errorf("message %s delivered twice while hidden", m.ID)
			}
			got[m.ID] = string(m.Body)
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("drained %v, want %v", got, want)
	}
}

func testVisibilityRedelivers(t *testing.T, newQueues NewQueues) {
	q, _ := newQueues(t, 5)
	id := send(t, q, "job", nil)
	first := receiveOne(t, q, short)
	hiddenAt := time.Now()
	if msgs := receive(t, q, 10, 0, long); len(msgs) != 0 {
		t.Errorf("received %d messages while the only one is hidden", len(msgs))
	}
	again := receiveOne(t, q, long)
	if again.ID != id || again.ReceiveCount != 2 {
		t.Errorf("redelivered %s count %d, want %s count 2", again.ID, again.ReceiveCount, id)
	}
	if again.Receipt == first.Receipt {
		t.Error("redelivery reused the first receipt")
	}
	if d := time.Since(hiddenAt); d < 500*time.Millisecond {
		t.Errorf("redelivered after %s, before its 1s visibility ran out", d)
	}
}

func testReleaseNow(t *testing.T, newQueues NewQueues) {
	q, _ := newQueues(t, 5)
	id := send(t, q, "job", nil)
	m := receiveOne(t, q, long)
	if err := q.ChangeVisibility(t.Context(), m.Receipt, 0); err != nil {
		t.Fatalf("ChangeVisibility(0): %v", err)
	}
	start := time.Now()
	msgs := receive(t, q, 1, 2*time.Second, long)
	if len(msgs) != 1 || msgs[0].ID != id || msgs[0].ReceiveCount != 2 {
		t.Fatalf("after release received %+v, want %s with count 2", msgs, id)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("released message took %s to arrive, want at once", d)
	}
}

func testExtend(t *testing.T, newQueues NewQueues) {
	q, _ := newQueues(t, 5)
	send(t, q, "job", nil)
	m := receiveOne(t, q, short)
	if err := q.ChangeVisibility(t.Context(), m.Receipt, long); err != nil {
		t.Fatalf("ChangeVisibility(30s): %v", err)
	}
	time.Sleep(2 * short)
	assertEmpty(t, q, "visibility extended past the first timeout")
	if err := q.Delete(t.Context(), m.Receipt); err != nil {
		t.Errorf("Delete with the extended receipt: %v", err)
	}
}

func testStaleReceipt(t *testing.T, newQueues NewQueues) {
	q, _ := newQueues(t, 5)
	send(t, q, "job", nil)
	stale := receiveOne(t, q, short)
	fresh := receiveOne(t, q, long) // after the first visibility ran out
	if err := q.Delete(t.Context(), stale.Receipt); !errors.Is(err, queue.ErrReceiptInvalid) {
		t.Errorf("Delete(stale receipt) = %v, want ErrReceiptInvalid", err)
	}
	if err := q.ChangeVisibility(t.Context(), stale.Receipt, 0); !errors.Is(err, queue.ErrReceiptInvalid) {
		t.Errorf("ChangeVisibility(stale receipt) = %v, want ErrReceiptInvalid", err)
	}
	assertEmpty(t, q, "stale receipt must not release or delete the new delivery")
	if err := q.Delete(t.Context(), fresh.Receipt); err != nil {
		t.Fatalf("Delete(current receipt): %v", err)
	}
	if err := q.Delete(t.Context(), fresh.Receipt); !errors.Is(err, queue.ErrReceiptInvalid) {
		t.Errorf("Delete(deleted message) = %v, want ErrReceiptInvalid", err)
	}
	if err := q.ChangeVisibility(t.Context(), fresh.Receipt, long); !errors.Is(err, queue.ErrReceiptInvalid) {
		t.Errorf("ChangeVisibility(deleted message) = %v, want ErrReceiptInvalid", err)
	}
}

func testLongPoll(t *testing.T, newQueues NewQueues) {
	q, _ := newQueues(t, 5)
	t.Run("empty queue waits", func(t *testing.T) {
		start := time.Now()
		msgs := receive(t, q, 10, short, long)
		if d := time.Since(start); len(msgs) != 0 || d < 500*time.Millisecond || d > 3*time.Second {
			t.Errorf("Receive(wait 1s) on an empty queue: %d messages after %s, want none after about 1s", len(msgs), d)
		}
	})
	t.Run("returns when a message arrives", func(t *testing.T) {
		sent := make(chan string, 1)
		go func() {
			time.Sleep(500 * time.Millisecond)
			id, err := q.Send(context.Background(), []byte("late"), nil)
			if err != nil {
				t.Errorf("Send: %v", err)
			}
			sent <- id
		}()
		start := time.Now()
		msgs := receive(t, q, 10, 10*time.Second, long)
		d := time.Since(start)
		id := <-sent
		if len(msgs) != 1 || msgs[0].ID != id {
			t.Fatalf("long poll returned %d messages, want the one sent meanwhile", len(msgs))
		}
		if d > 3*time.Second {
			t.Errorf("long poll returned %s after start, want soon after the send at 0.5s", d)
		}
	})
	t.Run("context cancel ends the wait", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		msgs, _ := q.Receive(ctx, 10, 10*time.Second, long)
		if d := time.Since(start); len(msgs) != 0 || d > 3*time.Second {
			t.Errorf("canceled Receive returned %d messages after %s, want none soon", len(msgs), d)
		}
	})
}

func testDeadLetter(t *testing.T, newQueues NewQueues) {
	const maxReceives = 2
	q, dlq := newQueues(t, maxReceives)
	send(t, q, "poison", traceAttrs)
	for i := 1; i <= maxReceives; i++ {
		m := receiveOne(t, q, long)
		if m.ReceiveCount != i {
			t.Errorf("receive %d: ReceiveCount = %d", i, m.ReceiveCount)
		}
		if err := q.ChangeVisibility(t.Context(), m.Receipt, 0); err != nil {
			t.Fatalf("release %d: %v", i, err)
		}
	}
	assertEmpty(t, q, fmt.Sprintf("after %d receives", maxReceives))
	dead := receiveOne(t, dlq, long)
	if string(dead.Body) != "poison" || !maps.Equal(dead.Attributes, traceAttrs) {
		t.Errorf("dead letter %q %v, want the poison message with its attributes", dead.Body, dead.Attributes)
	}
	if err := dlq.Delete(t.Context(), dead.Receipt); err != nil {
		t.Errorf("Delete from dlq: %v", err)
	}
	assertEmpty(t, q, "after redrive")
}

func testConcurrentReceivers(t *testing.T, newQueues NewQueues) {
	q, _ := newQueues(t, 5)
	const n, receivers = 20, 4
	var sent []string
	for i := range n {
		sent = append(sent, send(t, q, fmt.Sprintf("m%d", i), nil))
	}
	var mu sync.Mutex
	seen := map[string]int{}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range receivers {
		wg.Go(func() {
			for ctx.Err() == nil {
				msgs, err := q.Receive(ctx, 3, short, long)
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("Receive: %v", err)
					}
					return
				}
				mu.Lock()
				for _, m := range msgs {
					seen[m.ID]++
				}
				done := len(seen) == n
				mu.Unlock()
				if done {
					cancel()
				}
			}
		})
	}
	wg.Wait()
	for id, c := range seen {
		if c > 1 {
			t.Errorf("message %s delivered %d times while hidden", id, c)
		}
	}
	got := slices.Sorted(maps.Keys(seen))
	slices.Sort(sent)
	if !slices.Equal(got, sent) {
		t.Errorf("received %d distinct messages, want the %d sent", len(got), len(sent))
	}
}
