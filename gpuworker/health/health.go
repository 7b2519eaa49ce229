// Package health is the worker's health endpoint for the container health
// check: GET /healthz answers 200 while the worker is ready and either
// polling the queue or running a job, 503 otherwise, with the state as JSON.
// The worker reports into a State; Serve publishes it on a loopback address.
package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Path is the endpoint's path.
const Path = "/healthz"

// Status is the JSON body of GET /healthz.
type Status struct {
	Healthy bool `json:"healthy"`
	Ready   bool `json:"ready"`
	// Reason says why the worker is not healthy ("" when it is).
	Reason string `json:"reason,omitempty"`
	// CurrentJob is a job being run (the oldest when several are), "" when idle.
	CurrentJob  string   `json:"current_job"`
	RunningJobs []string `json:"running_jobs"`
	// LastSuccessfulPoll is the last receive from the jobs queue that did not fail.
	LastSuccessfulPoll *time.Time `json:"last_successful_poll"`
	BundleVersion      string     `json:"bundle_version"`
	Provider           string     `json:"provider,omitempty"` // execution provider of the UNet
	StartedAt          time.Time  `json:"started_at"`
	ReadyAt            *time.Time `json:"ready_at,omitempty"`
}

// Config configures a State. Zero values take the defaults in brackets.
type Config struct {
	// MaxPollAge is how long an idle ready worker may go without a
	// successful poll before it is unhealthy; it must exceed the long-poll
	// wait [2 min].
	MaxPollAge time.Duration
	Now        func() time.Time // [time.Now]
}

// State is what the worker reports; safe for concurrent use.
type State struct {
	maxPollAge time.Duration
	now        func() time.Time

	mu       sync.Mutex
	started  time.Time
	ready    time.Time // zero until ready
	failed   string
	bundle   string
	provider string
	lastPoll time.Time
	jobs     []string // in start order
}

// New returns a State for a worker that is starting.
func New(cfg Config) *State {
	if cfg.MaxPollAge <= 0 {
		cfg.MaxPollAge = 2 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &State{maxPollAge: cfg.MaxPollAge, now: cfg.Now, started: cfg.Now()}
}

// SetBundle records the bundle version being loaded (shown before ready too).
func (s *State) SetBundle(version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bundle = version
}

// SetReady marks the worker ready: the bundle is loaded and warmed up.
func (s *State) SetReady(bundleVersion, provider string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bundle, s.provider, s.ready, s.failed = bundleVersion, provider, s.now(), ""
}

// SetFailed marks the worker as never going to be ready (reason: why).
func (s *State) SetFailed(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed, s.ready = reason, time.Time{}
}

// Polled records a successful receive from the jobs queue at t.
func (s *State) Polled(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.After(s.lastPoll) {
		s.lastPoll = t
	}
}

// Running records that job id started (running true) or ended.
func (s *State) Running(id string, running bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobs = slices.DeleteFunc(s.jobs, func(j string) bool { return j == id })
	if running {
		s.jobs = append(s.jobs, id)
	}
}

// Status is the current state. An idle ready worker must have polled
// within MaxPollAge (counted from ready until the first poll); a worker
// running a job is healthy without polling, since its slot is busy.
func (s *State) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	st := Status{
		Ready: !s.ready.IsZero(), BundleVersion: s.bundle, Provider: s.provider,
		StartedAt: s.started, RunningJobs: slices.Clone(s.jobs),
	}
	if st.RunningJobs == nil {
		st.RunningJobs = []string{}
	}
	if len(s.jobs) > 0 {
		st.CurrentJob = s.jobs[0]
	}
	if !s.lastPoll.IsZero() {
		t := s.lastPoll
		st.LastSuccessfulPoll = &t
	}
	if st.Ready {
		t := s.ready
		st.ReadyAt = &t
	}
	switch {
	case s.failed != "":
		st.Reason = s.failed
	case !st.Ready:
		st.Reason = "starting: model bundle not loaded yet"
	case len(s.jobs) > 0:
		st.Healthy = true
	default:
		since := s.ready
		if s.lastPoll.After(since) {
			since = s.lastPoll
		}
		if age := now.Sub(since); age > s.maxPollAge {
			st.Reason = fmt.Sprintf("no successful poll of the jobs queue for %s", age.Round(time.Second))
		} else {
			st.Healthy = true
		}
	}
	return st
}

// Handler serves GET Path.
func (s *State) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Path, func(w http.ResponseWriter, _ *http.Request) {
		st := s.Status()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if st.Healthy {
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(st)
	})
	return mux
}

// Listen binds addr, which must be a loopback address: the health check
// runs inside the task, and nothing outside it should see the endpoint.
func Listen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("health address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("health address %q: must be a loopback IP such as 127.0.0.1", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("health endpoint: %w", err)
	}
	return l, nil
}

// Serve serves h on l until ctx ends.
func Serve(ctx context.Context, l net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("health endpoint listening", "addr", l.Addr().String(), "path", Path)
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("health endpoint: %w", err)
	}
	<-done
	return nil
}

// Probe asks the endpoint at addr once and returns nil when it answered
// 200: the container health check runs the worker binary with this, so
// the image needs no curl.
func Probe(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+Path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health probe: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health probe: %s: %s", resp.Status, body)
	}
	return nil
}
