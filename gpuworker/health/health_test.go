package health_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/gpuworker/health"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// serve runs the endpoint for st on a free loopback port and returns its address.
func serve(t *testing.T, st *health.State) string {
	t.Helper()
	l, err := health.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- health.Serve(ctx, l, st.Handler(), slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String()
}

type body struct {
	Healthy            bool       `json:"healthy"`
	Ready              bool       `json:"ready"`
	Reason             string     `json:"reason"`
	CurrentJob         *string    `json:"current_job"`
	RunningJobs        []string   `json:"running_jobs"`
	LastSuccessfulPoll *time.Time `json:"last_successful_poll"`
	BundleVersion      string     `json:"bundle_version"`
	Provider           string     `json:"provider"`
}

func get(t *testing.T, addr string) (int, body) {
	t.Helper()
	resp, err := http.Get("http://" + addr + health.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var b body
	var raw map[string]json.RawMessage
	data, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatalf("body %s: %v", data, err)
	}
	for _, k := range []string{"ready", "current_job", "last_successful_poll", "bundle_version"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("body %s lacks %q", data, k)
		}
	}
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func TestHealthStates(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	const maxAge = time.Minute
	tests := []struct {
		name        string
		steps       func(st *health.State, c *clock)
		code        int
		ready       bool
		job         string
		reason      string // substring; "" means none
		polledAt    time.Time
		bundle      string
		wantRunning []string
	}{
		{
			name:  "starting",
			steps: func(st *health.State, c *clock) { st.SetBundle("v7") },
			code:  503, reason: "starting", bundle: "v7",
		},
		{
			name: "bundle failed",
			steps: func(st *health.State, c *clock) {
				st.SetBundle("v7")
				st.SetFailed("model bundle v7: unet.onnx has sha256 x")
			},
			code: 503, reason: "unet.onnx has sha256", bundle: "v7",
		},
		{
			name:  "ready, first poll still to come",
			steps: func(st *health.State, c *clock) { st.SetReady("v7", "CUDA"); c.Add(maxAge - time.Second) },
			code:  200, ready: true, bundle: "v7",
		},
		{
			name:  "ready but never polled",
			steps: func(st *health.State, c *clock) { st.SetReady("v7", "CUDA"); c.Add(maxAge + time.Second) },
			code:  503, ready: true, reason: "no successful poll", bundle: "v7",
		},
		{
			name: "polling",
			steps: func(st *health.State, c *clock) {
				st.SetReady("v7", "CUDA")
				c.Add(maxAge)
				st.Polled(c.Now())
				c.Add(maxAge / 2)
			},
			code: 200, ready: true, polledAt: t0.Add(maxAge), bundle: "v7",
		},
		{
			name: "polls stopped",
			steps: func(st *health.State, c *clock) {
				st.SetReady("v7", "CUDA")
				st.Polled(c.Now())
				c.Add(maxAge + time.Second)
			},
			code: 503, ready: true, reason: "no successful poll", polledAt: t0, bundle: "v7",
		},
		{
			name: "long job keeps it healthy",
			steps: func(st *health.State, c *clock) {
				st.SetReady("v7", "CUDA")
				st.Polled(c.Now())
				st.Running("job-1", true)
				st.Running("job-2", true)
				c.Add(10 * maxAge)
			},
			code: 200, ready: true, job: "job-1", polledAt: t0, bundle: "v7", wantRunning: []string{"job-1", "job-2"},
		},
		{
			name: "job ended, polls did not resume",
			steps: func(st *health.State, c *clock) {
				st.SetReady("v7", "CUDA")
				st.Polled(c.Now())
				st.Running("job-1", true)
				c.Add(10 * maxAge)
				st.Running("job-1", false)
			},
			code: 503, ready: true, reason: "no successful poll", polledAt: t0, bundle: "v7",
		},
		{
			name: "failed after ready",
			steps: func(st *health.State, c *clock) {
				st.SetReady("v7", "CUDA")
				st.Polled(c.Now())
				st.SetFailed("shutting down")
			},
			code: 503, reason: "shutting down", polledAt: t0, bundle: "v7",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{t: t0}
			st := health.New(health.Config{MaxPollAge: maxAge, Now: c.Now})
			tc.steps(st, c)
			code, b := get(t, serve(t, st))
			if code != tc.code || b.Healthy != (tc.code == 200) {
				t.Errorf("status %d healthy %v, want %d", code, b.Healthy, tc.code)
			}
			if b.Ready != tc.ready {
				t.Errorf("ready = %v, want %v", b.Ready, tc.ready)
			}
			if b.CurrentJob == nil || *b.CurrentJob != tc.job {
				t.Errorf("current_job = %v, want %q", b.CurrentJob, tc.job)
			}
			if want := tc.wantRunning; strings.Join(b.RunningJobs, ",") != strings.Join(want, ",") {
				t.Errorf("running_jobs = %v, want %v", b.RunningJobs, want)
			}
			if (tc.reason == "") != (b.Reason == "") || !strings.Contains(b.Reason, tc.reason) {
				t.Errorf("reason = %q, want one containing %q", b.Reason, tc.reason)
			}
			switch {
			case tc.polledAt.IsZero() && b.LastSuccessfulPoll != nil:
				t.Errorf("last_successful_poll = %v, want null", b.LastSuccessfulPoll)
			case !tc.polledAt.IsZero() && (b.LastSuccessfulPoll == nil || !b.LastSuccessfulPoll.Equal(tc.polledAt)):
				t.Errorf("last_successful_poll = %v, want %v", b.LastSuccessfulPoll, tc.polledAt)
			}
			if b.BundleVersion != tc.bundle {
				t.Errorf("bundle_version = %q, want %q", b.BundleVersion, tc.bundle)
			}
		})
	}
}

func TestProbe(t *testing.T) {
	c := &clock{t: time.Now()}
	st := health.New(health.Config{Now: c.Now})
	addr := serve(t, st)
	if err := health.Probe(t.Context(), addr); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("probe of a starting worker: %v, want a 503 error", err)
	}
	st.SetReady("v1", "CPU")
	if err := health.Probe(t.Context(), addr); err != nil {
		t.Errorf("probe of a ready worker: %v", err)
	}
}

func TestListenRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "example.com:80", "10.0.0.1:8081", "nonsense"} {
		if l, err := health.Listen(addr); err == nil {
			l.Close()
			t.Errorf("Listen(%q) succeeded", addr)
		}
	}
}
