// Package server runs the whole service in one process on 127.0.0.1 with the
// local adapters: the API, the upload endpoint behind presigned URLs,
// validation, the jobs queue with its workers and dead-letter handling, and
// notifications. It wires the same handlers the Lambdas and the ECS task use;
// only the adapters differ.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/latentsync/latentsync-service/gpuworker/worker"
	"github.com/latentsync/latentsync-service/internal/adapters/local"
	"github.com/latentsync/latentsync-service/internal/api"
	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/notify"
	"github.com/latentsync/latentsync-service/internal/queue"
	"github.com/latentsync/latentsync-service/internal/validate"
)

// Config configures a local stack.
type Config struct {
	Addr          string            // listen address, e.g. 127.0.0.1:8080 (port 0 picks one)
	DataDir       string            // jobs, objects, queues, events and mail live here
	APIKeys       map[string]string // API key -> tenant
	WebhookSecret []byte            // signs every webhook
	// Pipelines run jobs; one worker slot each.
	Pipelines []worker.Pipeline
	// MaxReceives moves a message to the dead-letter queue after this many
	// deliveries [3].
	MaxReceives int
	// Visibility of a received job message [5 min]; tests shorten it.
	Visibility time.Duration
	// SweepEvery is how often abandoned uploads are expired [1 min].
	SweepEvery time.Duration
	// NotifyTimeout bounds one event's notification before the event is
	// retried later, so one dead receiver does not hold up the others [2 min].
	NotifyTimeout time.Duration
	Logger        *slog.Logger
}

// Server is a running local stack.
type Server struct {
	cfg      Config
	log      *slog.Logger
	listener net.Listener
	baseURL  string

	jobs     *local.JobStore
	blobs    *local.BlobStore
	queues   *local.Queues
	jobsQ    *local.Queue
	deadQ    *local.Queue
	uploadsQ *local.Queue
	bus      *local.EventBus

	validator *validate.Validator
	worker    *worker.Worker
	notifier  *notify.Notifier
	http      *http.Server
}

// Queue names inside the data directory.
const (
	jobsQueue          = "jobs"
	jobsDeadLetters    = "jobs-dlq"
	uploadsQueue       = "uploads"
	uploadsDeadLetters = "uploads-dlq"
)

// New opens the stores under cfg.DataDir and listens on cfg.Addr; Run serves.
func New(cfg Config) (s *Server, err error) {
	if len(cfg.APIKeys) == 0 || len(cfg.WebhookSecret) == 0 || len(cfg.Pipelines) == 0 {
		return nil, errors.New("server: API keys, a webhook secret and at least one pipeline are required")
	}
	if cfg.MaxReceives == 0 {
		cfg.MaxReceives = 3
	}
	if cfg.SweepEvery == 0 {
		cfg.SweepEvery = time.Minute
	}
	if cfg.NotifyTimeout == 0 {
		cfg.NotifyTimeout = 2 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s = &Server{cfg: cfg, log: cfg.Logger}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.listener, err = net.Listen("tcp", cfg.Addr); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	s.baseURL = "http://" + s.listener.Addr().String()
	dir := cfg.DataDir
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if s.jobs, err = local.OpenJobStore(dir); err != nil {
		return nil, err
	}
	if s.blobs, err = local.OpenBlobStore(dir, local.BlobConfig{BaseURL: s.baseURL + "/blobs/"}); err != nil {
		return nil, err
	}
	if s.queues, err = local.OpenQueues(dir, local.QueuesOptions{}); err != nil {
		return nil, err
	}
	if s.deadQ, err = s.queues.Queue(jobsDeadLetters, local.QueueConfig{}); err != nil {
		return nil, err
	}
	if s.jobsQ, err = s.queues.Queue(jobsQueue, local.QueueConfig{MaxReceives: cfg.MaxReceives, DeadLetter: jobsDeadLetters}); err != nil {
		return nil, err
	}
	if s.uploadsQ, err = s.queues.Queue(uploadsQueue, local.QueueConfig{MaxReceives: 10, DeadLetter: uploadsDeadLetters}); err != nil {
		return nil, err
	}
	if s.bus, err = local.OpenEventBus(dir, local.EventBusOptions{Logger: cfg.Logger}); err != nil {
		return nil, err
	}
	mailer, err := notify.NewDirMailer(filepath.Join(dir, "mail"), "latentsync@localhost")
	if err != nil {
		return nil, err
	}
	s.notifier = notify.New(notify.Config{
		Secrets: notify.StaticSecret(cfg.WebhookSecret), Mailer: mailer,
		AllowPrivate: true, // a development stack on 127.0.0.1 delivers to local receivers
		Logger:       cfg.Logger,
	})
	s.validator = validate.New(s.jobs, s.blobs, s.jobsQ, s.bus, validate.Config{
		TempDir: filepath.Join(dir, "tmp"), Logger: cfg.Logger,
	})
	w, err := worker.New(worker.Config{
		Queue: s.jobsQ, Jobs: s.jobs, Inputs: s.blobs, Outputs: s.blobs, Events: s.bus,
		Pipeline: worker.Pool(cfg.Pipelines...), Concurrency: len(cfg.Pipelines),
		Visibility: cfg.Visibility, Wait: 5 * time.Second,
		WorkDir: filepath.Join(dir, "tmp"), OutputURLTTL: 24 * time.Hour, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	s.worker = w
	auth, err := api.NewKeyAuth(cfg.APIKeys)
	if err != nil {
		return nil, err
	}
	apiHandler, err := api.New(api.Config{
		Jobs: s.jobs, Blobs: s.blobs, Events: s.bus, Auth: auth,
		LocalWebhooks: true, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", apiHandler)
	mux.Handle("/blobs/", s.notifyOnUpload(s.blobs.Handler()))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// URL is the stack's base URL.
func (s *Server) URL() string { return s.baseURL }

// Run serves until ctx ends, then shuts down: it stops taking uploads and
// work, lets the workers release or finish their jobs, and closes the stores.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	run("http", func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			shutdown, done := context.WithTimeout(context.Background(), 10*time.Second)
			defer done()
			s.http.Shutdown(shutdown)
		}()
		if err := s.http.Serve(s.listener); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	run("uploads", s.consumeUploads)
	run("sweep", s.sweep)
	run("worker", s.worker.Run)
	run("dead letters", func(ctx context.Context) error { return s.worker.RunDeadLetters(ctx, s.deadQ) })
	run("notify", func(ctx context.Context) error {
		return s.bus.Run(ctx, func(ctx context.Context, e job.Event) error {
			ctx, done := context.WithTimeout(ctx, s.cfg.NotifyTimeout)
			defer done()
			return s.notifier.Handle(ctx, e)
		})
	})
	s.log.Info("latentsync serving", "url", s.baseURL, "data", s.cfg.DataDir, "workers", len(s.cfg.Pipelines))
	<-ctx.Done()
	wg.Wait()
	s.close()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func (s *Server) close() {
	if s.bus != nil {
		s.bus.Close()
	}
	if s.queues != nil {
		s.queues.Close()
	}
	if s.blobs != nil {
		s.blobs.Close()
	}
	if s.jobs != nil {
		s.jobs.Close()
	}
	if s.listener != nil {
		s.listener.Close()
	}
}

// uploadNotice is the local equivalent of an S3 ObjectCreated event; it goes
// through a persistent queue so an upload is validated even across a crash.
type uploadNotice struct {
	Key  string `json:"key"`
	Size int64  `json:"size"`
}

// notifyOnUpload queues an upload notice after every successful PUT.
func (s *Server) notifyOnUpload(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut {
			next.ServeHTTP(w, r)
			return
		}
		rec := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		if rec.status/100 != 2 {
			return
		}
		key := r.URL.Path[len("/blobs/"):]
		size, _ := strconv.ParseInt(r.Header.Get("Content-Length"), 10, 64)
		body, _ := json.Marshal(uploadNotice{Key: key, Size: size})
		if _, err := s.uploadsQ.Send(context.WithoutCancel(r.Context()), body, nil); err != nil {
			// The object is stored; the expiry sweep re-enqueues nothing for
			// it, so say so loudly: the client can upload again.
			s.log.Error("queue upload notice", "key", key, "error", err.Error())
		}
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// consumeUploads validates uploads in the order they arrived; a failed
// validation (including one still enqueueing elsewhere) is retried later.
func (s *Server) consumeUploads(ctx context.Context) error {
	for ctx.Err() == nil {
		msgs, err := s.uploadsQ.Receive(ctx, 4, 5*time.Second, 5*time.Minute)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("receive upload notices: %w", err)
		}
		for _, m := range msgs {
			s.validateUpload(ctx, m)
		}
	}
	return nil
}

func (s *Server) validateUpload(ctx context.Context, m queue.Message) {
	var n uploadNotice
	if err := json.Unmarshal(m.Body, &n); err != nil {
		s.log.Error("bad upload notice", "body", string(m.Body), "error", err.Error())
		s.uploadsQ.Delete(ctx, m.Receipt)
		return
	}
	if err := s.validator.Handle(ctx, validate.Upload{Key: n.Key, Size: n.Size}); err != nil {
		s.log.Warn("validation will be retried", "key", n.Key, "attempt", m.ReceiveCount, "error", err.Error())
		s.uploadsQ.ChangeVisibility(ctx, m.Receipt, time.Duration(m.ReceiveCount)*5*time.Second)
		return
	}
	s.uploadsQ.Delete(ctx, m.Receipt)
}

func (s *Server) sweep(ctx context.Context) error {
	t := time.NewTicker(s.cfg.SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if res, err := s.validator.Sweep(ctx); err != nil {
				s.log.Error("sweep", "error", err.Error())
			} else if res.Expired+res.Enqueued > 0 {
				s.log.Info("sweep", "expired", res.Expired, "enqueued", res.Enqueued)
			}
		}
	}
}
