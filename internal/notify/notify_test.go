package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/latentsync/latentsync-service/internal/fakeclock"
	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/webhook"
)

var testKey = []byte("test-secret-0123456789abcdef")

// clock is the Notifier's time in tests: sleeping advances it instantly.
type clock struct {
	*fakeclock.Clock
	mu     sync.Mutex
	sleeps []time.Duration
}

func newClock() *clock {
	return &clock{Clock: fakeclock.New(time.Date(2026, 1, 15, 12, 31, 20, 0, time.UTC))}
}

func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Advance(d)
	c.sleeps = append(c.sleeps, d)
	return ctx.Err()
}

func (c *clock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// received is one request as the receiver saw it.
type received struct {
	method string
	header http.Header
	body   []byte
}

// receiver is a webhook endpoint on 127.0.0.1; answer decides the response
// to the n-th request (from 0).
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []received
}

func newReceiver(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		n := len(rc.reqs)
		rc.reqs = append(rc.reqs, received{r.Method, r.Header.Clone(), b})
		rc.mu.Unlock()
		answer(n, w, r)
	}))
	t.Cleanup(rc.Close)
	return rc
}

// statuses answers the scripted statuses in turn, then 200.
func statuses(codes ...int) func(int, http.ResponseWriter, *http.Request) {
	return func(n int, w http.ResponseWriter, _ *http.Request) {
		if n < len(codes) {
			w.WriteHeader(codes[n])
			return
		}
		w.WriteHeader(http.StatusOK)
	}
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

// sampleEvent decodes one of the sample EventBridge events of events/.
func sampleEvent(t *testing.T, name string) (events.CloudWatchEvent, job.Event) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.CloudWatchEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	e, err := FromEventBridge(ev)
	if err != nil {
		t.Fatalf("FromEventBridge(%s): %v", name, err)
	}
	return ev, e
}

func testNotifier(c *clock, cfg Config) *Notifier {
	if cfg.Secrets == nil {
		cfg.Secrets = StaticSecret(testKey)
	}
	cfg.Now, cfg.Sleep = c.Now, c.Sleep
	if cfg.Jitter == nil {
		cfg.Jitter = func(d time.Duration) time.Duration { return d }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return New(cfg)
}

func TestWebhookRequestIsSignedStandardWebhook(t *testing.T) {
	rc := newReceiver(t, statuses())
	ev, e := sampleEvent(t, "eventbridge-job-succeeded.json")
	e.Webhook, e.Email = rc.URL+"/hooks?src=latentsync", ""
	c := newClock()
	if err := testNotifier(c, Config{AllowPrivate: true}).Handle(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost || r.header.Get("Content-Type") != "application/json" || r.header.Get("User-Agent") != UserAgent {
		t.Fatalf("request %s with headers %v", r.method, r.header)
	}
	if err := webhook.Verify(testKey, r.header, r.body, c.Now()); err != nil {
		t.Fatalf("signature: %v", err)
	}
	if got := r.header.Get(webhook.HeaderID); got != e.ID {
		t.Fatalf("webhook-id %q, want the event id %q", got, e.ID)
	}
	if got := r.header.Get(webhook.HeaderTimestamp); got != strconv.FormatInt(c.Now().Unix(), 10) {
		t.Fatalf("webhook-timestamp %q, want the clock's %d", got, c.Now().Unix())
	}

	// The body: {"type","timestamp","data"} with data = the job view as published.
	var got struct {
		Type      string          `json:"type"`
		Timestamp string          `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Type != "job.succeeded" || got.Timestamp != "2026-01-15T12:31:19.804Z" {
		t.Fatalf("type %q timestamp %q", got.Type, got.Timestamp)
	}
	var keys map[string]json.RawMessage
	_ = json.Unmarshal(r.body, &keys)
	if len(keys) != 3 {
		t.Fatalf("body has keys %v, want exactly type, timestamp, data", keys)
	}
	var detail struct {
		Detail json.RawMessage `json:"detail"`
	}
	if err := json.Unmarshal(ev.Detail, &detail); err != nil {
		t.Fatal(err)
	}
	assertSameJSON(t, got.Data, detail.Detail)
}

// assertSameJSON compares two JSON documents by value.
func assertSameJSON(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normTimes(g), normTimes(w)) {
		t.Fatalf("JSON differs:\n got %s\nwant %s", got, want)
	}
}

// normTimes rewrites RFC 3339 strings to one form (Go drops trailing zeros
// of fractional seconds, the sample keeps them).
func normTimes(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normTimes(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normTimes(e)
		}
	case string:
		if ts, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return ts.UTC().Format(time.RFC3339Nano)
		}
	}
	return v
}

func TestWebhookRetries(t *testing.T) {
	sched := DefaultSchedule()
	tests := []struct {
		name       string
		answer     func(int, http.ResponseWriter, *http.Request)
		wantHits   int
		wantSleeps []time.Duration
		wantErr    error
	}{
		{name: "2xx at once", answer: statuses(http.StatusNoContent), wantHits: 1},
		{name: "500 then success", answer: statuses(500), wantHits: 2, wantSleeps: sched[:1]},
		{name: "502, 503, 504 then success", answer: statuses(502, 503, 504), wantHits: 4, wantSleeps: sched[:3]},
		{name: "429 then success", answer: statuses(429), wantHits: 2, wantSleeps: sched[:1]},
		{name: "429 with a longer Retry-After", answer: func(n int, w http.ResponseWriter, _ *http.Request) {
			if n == 0 {
				w.Header().Set("Retry-After", "120")
				w.WriteHeader(http.StatusTooManyRequests)
			}
		}, wantHits: 2, wantSleeps: []time.Duration{2 * time.Minute}},
		{name: "503 with a Retry-After beyond the schedule is capped", answer: func(n int, w http.ResponseWriter, _ *http.Request) {
			if n == 0 {
				w.Header().Set("Retry-After", "604800")
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}, wantHits: 2, wantSleeps: []time.Duration{10 * time.Hour}},
		{name: "400 is permanent", answer: statuses(400), wantHits: 1},
		{name: "401 is permanent", answer: statuses(401), wantHits: 1},
		{name: "404 is permanent", answer: statuses(404), wantHits: 1},
		{name: "410 is permanent", answer: statuses(410), wantHits: 1},
		{name: "a redirect is not followed and not retried", answer: func(_ int, w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusTemporaryRedirect)
		}, wantHits: 1},
		{name: "500 forever exhausts the schedule", answer: func(_ int, w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(500)
		}, wantHits: len(sched) + 1, wantSleeps: sched, wantErr: ErrUndelivered},
		{name: "connection dropped then success", answer: func(n int, w http.ResponseWriter, _ *http.Request) {
			if n == 0 {
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close()
				}
			}
		}, wantHits: 2, wantSleeps: sched[:1]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, tc.answer)
			_, e := sampleEvent(t, "eventbridge-job-failed.json")
			e.Webhook = rc.URL
			c := newClock()
			start := c.Now()
			err := testNotifier(c, Config{AllowPrivate: true}).Handle(context.Background(), e)
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("Handle = %v, want %v", err, tc.wantErr)
			}
			reqs := rc.requests()
			if len(reqs) != tc.wantHits {
				t.Fatalf("%d requests, want %d", len(reqs), tc.wantHits)
			}
			if got := c.Sleeps(); !reflect.DeepEqual(got, tc.wantSleeps) && len(got)+len(tc.wantSleeps) > 0 {
				t.Fatalf("slept %v, want %v", got, tc.wantSleeps)
			}
			// Every attempt: same id and body, signed afresh at its own time.
			at := start
			for i, r := range reqs {
				if i > 0 {
					at = at.Add(c.Sleeps()[i-1])
				}
				if r.header.Get(webhook.HeaderID) != e.ID || !bytes.Equal(r.body, reqs[0].body) {
					t.Fatalf("attempt %d: id %q, body changed: %v", i+1, r.header.Get(webhook.HeaderID), !bytes.Equal(r.body, reqs[0].body))
				}
				if err := webhook.Verify(testKey, r.header, r.body, at); err != nil {
					t.Fatalf("attempt %d at %s: %v", i+1, at, err)
				}
			}
		})
	}
}

func TestDefaultJitterStaysWithinTwentyPercent(t *testing.T) {
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) })
	_, e := sampleEvent(t, "eventbridge-job-failed.json")
	e.Webhook = rc.URL
	c := newClock()
	n := New(Config{Secrets: StaticSecret(testKey), AllowPrivate: true, Now: c.Now, Sleep: c.Sleep, Logger: slog.New(slog.DiscardHandler)})
	if err := n.Handle(context.Background(), e); !errors.Is(err, ErrUndelivered) {
		t.Fatalf("Handle = %v", err)
	}
	sched, got := DefaultSchedule(), c.Sleeps()
	if len(got) != len(sched) {
		t.Fatalf("slept %v", got)
	}
	exact := 0
	for i, d := range got {
		lo, hi := time.Duration(float64(sched[i])*0.8), time.Duration(float64(sched[i])*1.2)
		if d < lo || d > hi {
			t.Fatalf("retry %d after %s, want %s..%s", i+1, d, lo, hi)
		}
		if d == sched[i] {
			exact++
		}
	}
	if exact == len(got) {
		t.Fatalf("no jitter: slept exactly %v", got)
	}
}

func TestWebhookStopsWhenTheNextRetryDoesNotFitTheDeadline(t *testing.T) {
	rc := newReceiver(t, statuses(500))
	_, e := sampleEvent(t, "eventbridge-job-failed.json")
	e.Webhook = rc.URL
	c := newClock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// 5 s retry + 15 s attempt fit in 30 s; the 5 min one would not.
	n := testNotifier(c, Config{AllowPrivate: true, Schedule: []time.Duration{5 * time.Second, 5 * time.Minute}})
	if err := n.Handle(ctx, e); err != nil {
		t.Fatalf("Handle = %v: the first retry fits", err)
	}
	rc2 := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) })
	e.Webhook = rc2.URL
	c2 := newClock()
	err := testNotifier(c2, Config{AllowPrivate: true, Schedule: []time.Duration{5 * time.Second, 5 * time.Minute}}).Handle(ctx, e)
	if !errors.Is(err, ErrUndelivered) {
		t.Fatalf("Handle = %v, want ErrUndelivered", err)
	}
	if hits, sleeps := len(rc2.requests()), c2.Sleeps(); hits != 2 || len(sleeps) != 1 {
		t.Fatalf("%d requests and sleeps %v; want 2 and one 5 s wait before giving the event back", hits, sleeps)
	}
}

func TestWebhookAttemptTimeoutIsRetried(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 0 { // hang past the attempt timeout
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	})
	_, e := sampleEvent(t, "eventbridge-job-failed.json")
	e.Webhook = rc.URL
	c := newClock()
	start := time.Now()
	if err := testNotifier(c, Config{AllowPrivate: true, AttemptTimeout: 300 * time.Millisecond}).Handle(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s with a 300 ms attempt timeout", d)
	}
	if len(rc.requests()) != 2 || len(c.Sleeps()) != 1 {
		t.Fatalf("%d requests, sleeps %v", len(rc.requests()), c.Sleeps())
	}
}

func TestPrivateReceiverRefusedUnlessAllowed(t *testing.T) {
	plain := newReceiver(t, statuses())
	tlsRC := &receiver{}
	tlsRC.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tlsRC.mu.Lock()
		tlsRC.reqs = append(tlsRC.reqs, received{method: r.Method})
		tlsRC.mu.Unlock()
	}))
	t.Cleanup(tlsRC.Close)
	port := tlsRC.URL[strings.LastIndex(tlsRC.URL, ":"):]
	for _, url := range []string{plain.URL, tlsRC.URL, "https://localhost" + port, "https://u:p@hooks.example.com/"} {
		t.Run(url, func(t *testing.T) {
			var logs bytes.Buffer
			_, e := sampleEvent(t, "eventbridge-job-failed.json")
			e.Webhook = url
			c := newClock()
			n := testNotifier(c, Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
			if err := n.Handle(context.Background(), e); err != nil {
				t.Fatalf("Handle = %v; a refused URL is permanent, not an error to retry", err)
			}
			if len(c.Sleeps()) != 0 {
				t.Fatalf("retried a refused URL: %v", c.Sleeps())
			}
			var rec struct {
				Msg   string `json:"msg"`
				JobID string `json:"job_id"`
				Error string `json:"error"`
			}
			if err := json.Unmarshal(logs.Bytes(), &rec); err != nil {
				t.Fatalf("log %q: %v", logs.String(), err)
			}
			if rec.JobID != e.JobID || !strings.Contains(rec.Error, "not allowed") {
				t.Fatalf("log record %+v", rec)
			}
		})
	}
	if len(plain.requests())+len(tlsRC.requests()) != 0 {
		t.Fatalf("private receivers got %d requests", len(plain.requests())+len(tlsRC.requests()))
	}
}

func TestWebhookSecretProblemsAreErrors(t *testing.T) {
	rc := newReceiver(t, statuses())
	tests := []struct {
		name    string
		secrets SecretSource
	}{
		{"lookup fails", SecretFunc(func(context.Context, string) ([]byte, error) { return nil, errors.New("secrets store down") })},
		{"tenant has none", StaticSecret(nil)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, e := sampleEvent(t, "eventbridge-job-failed.json")
			e.Webhook = rc.URL
			if err := testNotifier(newClock(), Config{Secrets: tc.secrets, AllowPrivate: true}).Handle(context.Background(), e); err == nil {
				t.Fatal("Handle = nil")
			}
		})
	}
	if len(rc.requests()) != 0 {
		t.Fatalf("sent %d unsigned requests", len(rc.requests()))
	}
}

func TestSecretsPerTenant(t *testing.T) {
	rc := newReceiver(t, statuses())
	keys := map[string][]byte{"tenant-a": []byte("key-a"), "tenant-b": []byte("key-b")}
	secrets := SecretFunc(func(_ context.Context, tenant string) ([]byte, error) { return keys[tenant], nil })
	c := newClock()
	n := testNotifier(c, Config{Secrets: secrets, AllowPrivate: true})
	for _, tenant := range []string{"tenant-a", "tenant-b"} {
		_, e := sampleEvent(t, "eventbridge-job-failed.json")
		e.Webhook, e.Tenant = rc.URL, tenant
		if err := n.Handle(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	reqs := rc.requests()
	for i, tenant := range []string{"tenant-a", "tenant-b"} {
		other := keys[[]string{"tenant-b", "tenant-a"}[i]]
		if webhook.Verify(keys[tenant], reqs[i].header, reqs[i].body, c.Now()) != nil ||
			webhook.Verify(other, reqs[i].header, reqs[i].body, c.Now()) == nil {
			t.Fatalf("request %d not signed with %s's key alone", i, tenant)
		}
	}
}

func TestHandleRejectsMalformedEvents(t *testing.T) {
	_, good := sampleEvent(t, "eventbridge-job-failed.json")
	tests := []struct {
		name string
		edit func(*job.Event)
	}{
		{"no id", func(e *job.Event) { e.ID = "" }},
		{"no job id", func(e *job.Event) { e.JobID = "" }},
		{"no tenant", func(e *job.Event) { e.Tenant = "" }},
		{"unknown type", func(e *job.Event) { e.Type = "job.started" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := good
			tc.edit(&e)
			if err := testNotifier(newClock(), Config{}).Handle(context.Background(), e); !errors.Is(err, ErrBadEvent) {
				t.Fatalf("Handle = %v, want ErrBadEvent", err)
			}
		})
	}
}
