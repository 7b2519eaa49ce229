package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// listen serves a receiver on 127.0.0.1 for the test and records what it
// refused.
func listen(t *testing.T, cfg ReceiverConfig) (*Receiver, string, func() []error) {
	t.Helper()
	var mu sync.Mutex
	var refused []error
	cfg.Rejected = func(err error) {
		mu.Lock()
		defer mu.Unlock()
		refused = append(refused, err)
	}
	rc := NewReceiver(cfg)
	ep, err := rc.Listen()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	if !strings.HasPrefix(ep.URL, "http://127.0.0.1:") {
		t.Fatalf("endpoint %q is not on 127.0.0.1", ep.URL)
	}
	return rc, ep.URL, func() []error {
		mu.Lock()
		defer mu.Unlock()
		return append([]error(nil), refused...)
	}
}

// deliver POSTs body with the Standard Webhooks headers signed by key at ts
// (no headers when key is nil) and returns the status.
func deliver(t *testing.T, url string, key []byte, id string, ts time.Time, body []byte) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != nil {
		h, err := Headers(key, id, ts, body)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range h {
			req.Header[k] = v
		}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// pending returns a delivery already handed over, if any: the handler hands
// it over before it answers, so none is in flight once deliver returns.
func pending(rc *Receiver) (Delivery, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	d, err := rc.Next(ctx)
	return d, err == nil
}

func TestReceiver(t *testing.T) {
	key := []byte("receiver-test-key-0123456789abcdef")
	payload := []byte(`{"type":"job.succeeded","timestamp":"2026-01-15T12:31:20Z","data":{"id":"job_1","status":"succeeded"}}`)
	big := []byte(`{"type":"job.succeeded","data":{"pad":"` + strings.Repeat("x", 300) + `"}}`)
	now := time.Now()
	tests := []struct {
		name    string
		key     []byte // signing key; nil: unsigned
		ts      time.Time
		body    []byte
		want    int
		deliver bool
	}{
		{"signed delivery", key, now, payload, http.StatusNoContent, true},
		{"signed with another key", []byte("another-key-0123456789abcdef0000"), now, payload, http.StatusUnauthorized, false},
		{"unsigned", nil, now, payload, http.StatusUnauthorized, false},
		{"timestamp outside the tolerance", key, now.Add(-DefaultTolerance - time.Minute), payload, http.StatusUnauthorized, false},
		{"body over the limit", key, now, big, http.StatusRequestEntityTooLarge, false},
		{"signed but not JSON", key, now, []byte("not json"), http.StatusBadRequest, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc, url, refused := listen(t, ReceiverConfig{Key: key, MaxBody: 256})
			if got := deliver(t, url, tc.key, "msg_1", tc.ts, tc.body); got != tc.want {
				t.Errorf("status %d, want %d", got, tc.want)
			}
			d, ok := pending(rc)
			if ok != tc.deliver {
				t.Fatalf("delivered %v (id %q, type %q), want %v", ok, d.ID, d.Type, tc.deliver)
			}
			wantRefused := 1
			if tc.deliver {
				wantRefused = 0
			}
			if got := refused(); len(got) != wantRefused {
				t.Errorf("Rejected called with %v, want %d calls", got, wantRefused)
			}
			if !tc.deliver {
				return
			}
			var data struct{ ID, Status string }
			if err := json.Unmarshal(d.Data, &data); err != nil {
				t.Fatal(err)
			}
			if d.ID != "msg_1" || !bytes.Equal(d.Body, tc.body) || d.Type != "job.succeeded" || data.ID != "job_1" || data.Status != "succeeded" {
				t.Errorf("delivery id %q, type %q, body %q, data %+v", d.ID, d.Type, d.Body, data)
			}
		})
	}
}

// A delivery that finds the buffer full is acknowledged but dropped; the
// buffered ones come out in order.
func TestReceiverBuffer(t *testing.T) {
	key := []byte("receiver-test-key-0123456789abcdef")
	rc, url, _ := listen(t, ReceiverConfig{Key: key, Buffer: 2})
	for _, id := range []string{"msg_1", "msg_2", "msg_3"} {
		if got := deliver(t, url, key, id, time.Now(), []byte(`{"type":"t","data":{}}`)); got != http.StatusNoContent {
			t.Fatalf("%s: status %d", id, got)
		}
	}
	for _, want := range []string{"msg_1", "msg_2"} {
		if d, ok := pending(rc); !ok || d.ID != want {
			t.Fatalf("next delivery %q, %v; want %s", d.ID, ok, want)
		}
	}
	if d, ok := pending(rc); ok {
		t.Fatalf("delivery %q beyond the buffer", d.ID)
	}
}
