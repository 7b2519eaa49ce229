package local

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/latentsync/latentsync-service/internal/queue"
)

// Buckets of queues.db: one top-level bucket per queue holding msgBucket
// (id -> storedMessage JSON) and readyBucket (visible-at id -> "", the
// order in which messages become receivable).
var (
	metaBucket  = []byte("meta") // its sequence numbers message ids across queues
	msgBucket   = []byte("messages")
	readyBucket = []byte("ready")
)

// QueuesOptions configure Queues.
type QueuesOptions struct {
	// Now is the clock for visibility (time.Now when nil). Long polls still
	// wait in real time.
	Now func() time.Time
}

// Queues is a set of named queues in one bbolt file, dir/queues.db; a
// queue and its dead-letter queue live in the same file so a redrive is
// one transaction.
type Queues struct {
	db     *bolt.DB
	now    func() time.Time
	closed chan struct{}
	once   sync.Once

	mu      sync.Mutex
	arrived map[string]chan struct{} // closed (and replaced) when the queue may have a message
}

// QueueConfig configures one queue.
type QueueConfig struct {
	// MaxReceives: a message received this many times moves to DeadLetter
	// on its next receive; 0 never moves it.
	MaxReceives int
	// DeadLetter names the dead-letter queue in the same Queues.
	DeadLetter string
}

// Queue is a queue.Queue.
type Queue struct {
	qs   *Queues
	name string
	cfg  QueueConfig
}

type storedMessage struct {
	ID           string            `json:"id"`
	Body         []byte            `json:"body"`
	Attributes   map[string]string `json:"attributes,omitempty"`
	SentAt       time.Time         `json:"sent_at"`
	ReceiveCount int               `json:"receive_count"`
	VisibleAt    time.Time         `json:"visible_at"`
	Receipt      string            `json:"receipt,omitempty"` // of the latest delivery
}

// ErrQueuesClosed: the queues were closed.
var ErrQueuesClosed = errors.New("queues closed")

// OpenQueues opens (creating) the queues under dir.
func OpenQueues(dir string, opts QueuesOptions) (*Queues, error) {
	db, err := openDB(dir, "queues.db", string(metaBucket))
	if err != nil {
		return nil, fmt.Errorf("queues: %w", err)
	}
	qs := &Queues{db: db, now: opts.Now, closed: make(chan struct{}), arrived: map[string]chan struct{}{}}
	if qs.now == nil {
		qs.now = time.Now
	}
	return qs, nil
}

// Close wakes waiting receivers and releases the file.
func (qs *Queues) Close() error {
	qs.once.Do(func() { close(qs.closed) })
	return qs.db.Close()
}

// Queue returns the named queue, creating it (and its dead-letter queue).
func (qs *Queues) Queue(name string, cfg QueueConfig) (*Queue, error) {
	switch {
	case name == "" || name == string(metaBucket):
		return nil, fmt.Errorf("queue name %q not allowed", name)
	case cfg.MaxReceives < 0 || cfg.MaxReceives > 0 && (cfg.DeadLetter == "" || cfg.DeadLetter == name):
		return nil, fmt.Errorf("queue %s: MaxReceives needs a dead-letter queue other than itself", name)
	}
	err := qs.db.Update(func(tx *bolt.Tx) error {
		for _, n := range []string{name, cfg.DeadLetter} {
			if n == "" {
				continue
			}
			b, err := tx.CreateBucketIfNotExists([]byte(n))
			if err != nil {
				return err
			}
			for _, sub := range [][]byte{msgBucket, readyBucket} {
				if _, err := b.CreateBucketIfNotExists(sub); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue %s: %w", name, err)
	}
	return &Queue{qs: qs, name: name, cfg: cfg}, nil
}

// signal returns the channel closed at the next arrival on the queue;
// taken before looking, so an arrival in between is not missed.
func (qs *Queues) signal(name string) chan struct{} {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	ch, ok := qs.arrived[name]
	if !ok {
		ch = make(chan struct{})
		qs.arrived[name] = ch
	}
	return ch
}

func (qs *Queues) notify(name string) {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	if ch, ok := qs.arrived[name]; ok {
		close(ch)
		delete(qs.arrived, name)
	}
}

func readyKey(m *storedMessage) []byte { return join(timeKey(m.VisibleAt), []byte(m.ID)) }

func (q *Queue) buckets(tx *bolt.Tx, name string) (msgs, ready *bolt.Bucket) {
	b := tx.Bucket([]byte(name))
	return b.Bucket(msgBucket), b.Bucket(readyBucket)
}

func putMessage(msgs, ready *bolt.Bucket, m *storedMessage) error {
	raw, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode message %s: %w", m.ID, err)
	}
	if err := msgs.Put([]byte(m.ID), raw); err != nil {
		return err
	}
	return ready.Put(readyKey(m), nil)
}

func getMessage(msgs *bolt.Bucket, id string) (*storedMessage, error) {
	raw := msgs.Get([]byte(id))
	if raw == nil {
		return nil, nil
	}
	var m storedMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("decode message %s: %w", id, err)
	}
	return &m, nil
}

// Send enqueues a message, visible at once, and wakes long-polling receivers.
func (q *Queue) Send(ctx context.Context, body []byte, attributes map[string]string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	var id string
	err := q.qs.db.Update(func(tx *bolt.Tx) error {
		seq, err := tx.Bucket(metaBucket).NextSequence()
		if err != nil {
			return err
		}
		id = fmt.Sprintf("msg-%016x", seq)
		now := q.qs.now()
		msgs, ready := q.buckets(tx, q.name)
		return putMessage(msgs, ready, &storedMessage{ID: id, Body: body, Attributes: attributes, SentAt: now, VisibleAt: now})
	})
	if err != nil {
		return "", fmt.Errorf("send to %s: %w", q.name, err)
	}
	q.qs.notify(q.name)
	return id, nil
}

// Receive waits up to wait for visible messages and returns as soon as
// there is at least one; each is hidden for visibility.
func (q *Queue) Receive(ctx context.Context, n int, wait, visibility time.Duration) ([]queue.Message, error) {
	if n < 1 {
		return nil, fmt.Errorf("receive from %s: max %d < 1", q.name, n)
	}
	deadline := time.Now().Add(wait)
	for {
		arrived := q.qs.signal(q.name)
		msgs, nextVisible, err := q.take(n, visibility)
		select {
		case <-q.qs.closed: // the database error says less
			return nil, fmt.Errorf("receive from %s: %w", q.name, ErrQueuesClosed)
		default:
		}
		if err != nil || len(msgs) > 0 {
			return msgs, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, nil
		}
		// A hidden message may become visible before the wait ends.
		if !nextVisible.IsZero() {
			left = min(left, max(nextVisible.Sub(q.qs.now()), time.Millisecond))
		}
		timer := time.NewTimer(left)
		select {
		case <-arrived:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-q.qs.closed:
			timer.Stop()
			return nil, fmt.Errorf("receive from %s: %w", q.name, ErrQueuesClosed)
		}
		timer.Stop()
	}
}

// take delivers up to max visible messages in one transaction, moving
// those past MaxReceives to the dead-letter queue; nextVisible is when the
// earliest remaining message becomes visible (zero: none left).
func (q *Queue) take(n int, visibility time.Duration) (out []queue.Message, nextVisible time.Time, err error) {
	redriven := false
	err = q.qs.db.Update(func(tx *bolt.Tx) error {
		out = nil
		now := q.qs.now()
		msgs, ready := q.buckets(tx, q.name)
		delivered := map[string]bool{} // with visibility 0 they are due again at once
		for len(out) < n {
			// Collect before modifying: a released message (visibility 0)
			// must not be met twice by the same cursor.
			var due [][]byte
			c := ready.Cursor()
			for k, _ := c.First(); k != nil && len(due) < n-len(out) && !parseTimeKey(k).After(now); k, _ = c.Next() {
				if !delivered[string(k[12:])] {
					due = append(due, bytes.Clone(k))
				}
			}
			if len(due) == 0 {
				break
			}
			for _, k := range due {
				m, err := getMessage(msgs, string(k[12:]))
				if err != nil {
					return err
				}
				if err := ready.Delete(k); err != nil {
					return err
				}
				if m == nil {
					continue // index without message: drop it
				}
				if q.cfg.MaxReceives > 0 && m.ReceiveCount >= q.cfg.MaxReceives {
					if err := q.redrive(tx, msgs, m, now); err != nil {
						return err
					}
					redriven = true
					continue
				}
				m.ReceiveCount++
				m.VisibleAt = now.Add(visibility)
				m.Receipt = m.ID + "." + randomHex(8)
				delivered[m.ID] = true
				if err := putMessage(msgs, ready, m); err != nil {
					return err
				}
				out = append(out, queue.Message{
					ID: m.ID, Body: m.Body, Attributes: m.Attributes, Receipt: m.Receipt,
					ReceiveCount: m.ReceiveCount, SentAt: m.SentAt,
				})
			}
		}
		if k, _ := ready.Cursor().First(); k != nil {
			nextVisible = parseTimeKey(k)
		}
		return nil
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("receive from %s: %w", q.name, err)
	}
	if redriven {
		q.qs.notify(q.cfg.DeadLetter)
	}
	return out, nextVisible, nil
}

// redrive moves m to the dead-letter queue as a fresh, visible message
// with its id, body, attributes and send time.
func (q *Queue) redrive(tx *bolt.Tx, msgs *bolt.Bucket, m *storedMessage, now time.Time) error {
	if err := msgs.Delete([]byte(m.ID)); err != nil {
		return err
	}
	dlqMsgs, dlqReady := q.buckets(tx, q.cfg.DeadLetter)
	return putMessage(dlqMsgs, dlqReady, &storedMessage{
		ID: m.ID, Body: m.Body, Attributes: m.Attributes, SentAt: m.SentAt, VisibleAt: now,
	})
}

// current loads the message of a receipt if that receipt is its latest
// delivery; otherwise queue.ErrReceiptInvalid.
func (q *Queue) current(msgs *bolt.Bucket, receipt string) (*storedMessage, error) {
	id, _, ok := strings.Cut(receipt, ".")
	if !ok {
		return nil, queue.ErrReceiptInvalid
	}
	m, err := getMessage(msgs, id)
	if err != nil {
		return nil, err
	}
	if m == nil || m.Receipt != receipt {
		return nil, queue.ErrReceiptInvalid
	}
	return m, nil
}

// ChangeVisibility hides the delivery for d from now; 0 releases it and
// wakes receivers.
func (q *Queue) ChangeVisibility(ctx context.Context, receipt string, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := q.qs.db.Update(func(tx *bolt.Tx) error {
		msgs, ready := q.buckets(tx, q.name)
		m, err := q.current(msgs, receipt)
		if err != nil {
			return err
		}
		if err := ready.Delete(readyKey(m)); err != nil {
			return err
		}
		m.VisibleAt = q.qs.now().Add(d)
		return putMessage(msgs, ready, m)
	})
	if err != nil {
		return fmt.Errorf("change visibility in %s: %w", q.name, err)
	}
	if d <= 0 {
		q.qs.notify(q.name)
	}
	return nil
}

// Delete removes the message of the latest delivery.
func (q *Queue) Delete(ctx context.Context, receipt string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := q.qs.db.Update(func(tx *bolt.Tx) error {
		msgs, ready := q.buckets(tx, q.name)
		m, err := q.current(msgs, receipt)
		if err != nil {
			return err
		}
		if err := ready.Delete(readyKey(m)); err != nil {
			return err
		}
		return msgs.Delete([]byte(m.ID))
	})
	if err != nil {
		return fmt.Errorf("delete from %s: %w", q.name, err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
