package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/internal/syncbuf"

	"github.com/latentsync/latentsync-service/internal/adapters/local"
	"github.com/latentsync/latentsync-service/internal/api"
	"github.com/latentsync/latentsync-service/internal/fakeclock"
	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/jobstore"
)

// Two tenants and their keys.
const (
	keyA, tenantA = "key-alpha", "tenant-a"
	keyB, tenantB = "key-bravo", "tenant-b"
)

var t0 = time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)

// env is the API and the local blob handler on one 127.0.0.1 server, over
// the real local adapters.
type env struct {
	srv   *httptest.Server
	jobs  *local.JobStore
	blobs *local.BlobStore
	bus   *local.EventBus
	clock *fakeclock.Clock // tests move it, so deadlines and URL expiry are exact
	spec  *spec
	logs  *syncbuf.Buffer
	h     *api.Handler

	mu        sync.Mutex
	delivered []job.Event // events the bus handed to its consumer
}

type options struct {
	local  bool                                // Config.LocalWebhooks
	limits api.Limits                          // Config.Limits
	store  func(jobstore.Store) jobstore.Store // wraps the job store
	auth   api.Authenticator                   // default: keyA and keyB
}

func newEnv(t *testing.T, o options) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{clock: fakeclock.New(t0), spec: loadSpec(t), logs: &syncbuf.Buffer{}}
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)

	var err error
	if e.jobs, err = local.OpenJobStore(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.jobs.Close() })
	if e.blobs, err = local.OpenBlobStore(dir, local.BlobConfig{BaseURL: e.srv.URL + "/blobs/", Now: e.clock.Now}); err != nil {
		t.Fatal(err)
	}
	if e.bus, err = local.OpenEventBus(dir, local.EventBusOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.bus.Close() })
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.bus.Run(ctx, func(_ context.Context, ev job.Event) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.delivered = append(e.delivered, ev)
			return nil
		})
	}()
	t.Cleanup(func() { stop(); <-done })

	auth := o.auth
	if auth == nil {
		ka, err := api.NewKeyAuth(map[string]string{keyA: tenantA, keyB: tenantB})
		if err != nil {
			t.Fatal(err)
		}
		auth = ka
	}
	var store jobstore.Store = e.jobs
	if o.store != nil {
		store = o.store(store)
	}
	h, err := api.New(api.Config{
		Jobs: store, Blobs: e.blobs, Events: e.bus, Auth: auth, OpenAPI: e.spec.raw,
		Limits: o.limits, LocalWebhooks: o.local, Now: e.clock.Now,
		Logger: slog.New(slog.NewJSONHandler(e.logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	mux.Handle("/blobs/", e.blobs.Handler())
	mux.Handle("/", h)
	return e
}

// events waits until the bus delivered everything published and returns
// what it delivered.
func (e *env) events(t *testing.T) []job.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := e.bus.Pending()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events still pending", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]job.Event(nil), e.delivered...)
}

// exchange is one request and its response.
type exchange struct {
	status  int
	header  http.Header
	body    []byte
	specErr error // the document's verdict on the request
}

// call sends a request with key (none when "") and hdr; body is a string
// sent as is, or a value sent as JSON. Every exchange goes through the
// document check.
func (e *env) call(t *testing.T, method, path, key string, body any, hdr map[string]string) exchange {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("x-api-key", key)
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	req.Body = nil
	return exchange{status: resp.StatusCode, header: resp.Header, body: got,
		specErr: e.spec.check(t, req, raw, resp, got)}
}

// do is call for requests the document must accept.
func (e *env) do(t *testing.T, method, path, key string, body any, hdr map[string]string) exchange {
	t.Helper()
	x := e.call(t, method, path, key, body, hdr)
	if x.specErr != nil {
		t.Errorf("%s %s: the document rejects this request: %v", method, path, x.specErr)
	}
	return x
}

func (x exchange) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(x.body, v); err != nil {
		t.Fatalf("decode %s: %v", x.body, err)
	}
}

// errorOf returns the code and message of an error response.
func (x exchange) errorOf(t *testing.T) (string, string) {
	t.Helper()
	var b struct {
		Error struct{ Code, Message string }
	}
	x.decode(t, &b)
	return b.Error.Code, b.Error.Message
}

func (x exchange) wantError(t *testing.T, status int, code, msgPart string) {
	t.Helper()
	if x.status != status {
		t.Fatalf("status %d, want %d; body %s", x.status, status, x.body)
	}
	c, m := x.errorOf(t)
	if c != code || !strings.Contains(m, msgPart) {
		t.Errorf("error %s %q, want %s containing %q", c, m, code, msgPart)
	}
}

// created is the 201 body.
type created struct {
	ID      string
	Status  job.Status
	Uploads map[string]struct {
		URL       string
		Method    string
		Headers   map[string]string
		ExpiresAt time.Time `json:"expires_at"`
	}
	Links map[string]string
}

func validBody() map[string]any {
	return map[string]any{
		"video": map[string]any{"content_type": "video/mp4", "size_bytes": 1234},
		"audio": map[string]any{"content_type": "audio/wav", "size_bytes": 567},
	}
}

// create makes a job for key and returns its 201 body.
func (e *env) create(t *testing.T, key string, body map[string]any) created {
	t.Helper()
	x := e.do(t, "POST", "/v1/jobs", key, body, nil)
	if x.status != http.StatusCreated {
		t.Fatalf("create: %d %s", x.status, x.body)
	}
	var c created
	x.decode(t, &c)
	return c
}

// setStatus moves a stored job along the status machine, as validation and
// workers would.
func (e *env) setStatus(t *testing.T, id string, path ...job.Status) *job.Job {
	t.Helper()
	j, err := e.jobs.Get(t.Context(), "", id)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range path {
		if err := j.Apply(s, e.clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.jobs.Update(t.Context(), j); err != nil {
		t.Fatal(err)
	}
	return j
}
