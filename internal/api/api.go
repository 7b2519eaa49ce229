// Package api is the public HTTP API v1 (DESIGN.md section 3) as one
// net/http handler: the API Lambda serves it through the API Gateway proxy
// adapter and `latentsync serve` mounts it on a local server.
package api

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/latentsync/latentsync-service/internal/blob"
	"github.com/latentsync/latentsync-service/internal/eventbus"
	"github.com/latentsync/latentsync-service/internal/jobstore"
	"github.com/latentsync/latentsync-service/internal/media"
)

// Limits bound what a client may ask for; zero fields take DefaultLimits' values.
type Limits struct {
	MaxVideoBytes   int64         // declared video size above it: 413 MEDIA_TOO_LARGE
	MaxAudioBytes   int64         // declared audio size above it: 413 MEDIA_TOO_LARGE
	UploadURLTTL    time.Duration // how long a presigned upload URL works
	OutputURLTTL    time.Duration // how long a presigned result URL works
	UploadWindow    time.Duration // uploads not complete by then expire the job
	RecordRetention time.Duration // the job record may be deleted this long after creation
	MaxBodyBytes    int64         // request bodies above it are refused
}

// DefaultLimits are DESIGN.md's defaults; the record lives as long as the
// outputs it points to (30 days).
func DefaultLimits() Limits {
	return Limits{
		MaxVideoBytes:   media.VideoLimits().MaxBytes,
		MaxAudioBytes:   media.AudioLimits().MaxBytes,
		UploadURLTTL:    15 * time.Minute,
		OutputURLTTL:    15 * time.Minute,
		UploadWindow:    24 * time.Hour,
		RecordRetention: 30 * 24 * time.Hour,
		MaxBodyBytes:    64 << 10,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	orDefault(&l.MaxVideoBytes, d.MaxVideoBytes)
	orDefault(&l.MaxAudioBytes, d.MaxAudioBytes)
	orDefault(&l.MaxBodyBytes, d.MaxBodyBytes)
	orDefault(&l.UploadURLTTL, d.UploadURLTTL)
	orDefault(&l.OutputURLTTL, d.OutputURLTTL)
	orDefault(&l.UploadWindow, d.UploadWindow)
	orDefault(&l.RecordRetention, d.RecordRetention)
	return l
}

func orDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Document is the OpenAPI 3 description of this API, served at
// GET /v1/openapi.yaml (lambdas/api/openapi.yaml links here). Tests validate
// every request and response against it, so it cannot drift from the handlers.
//
//go:embed openapi.yaml
var Document []byte

// Config is what the handler needs. Jobs, Blobs, Events and Auth are required.
type Config struct {
	Jobs  jobstore.Store
	Blobs blob.Store // the uploads bucket
	// Outputs is where results are downloaded from; nil means Blobs.
	Outputs blob.Store
	Events  eventbus.Publisher
	Auth    Authenticator
	// OpenAPI is the document served at GET /v1/openapi.yaml; nil means Document.
	OpenAPI []byte
	Limits  Limits
	// LocalWebhooks accepts http:// webhook URLs and hosts on private,
	// loopback or link-local addresses: local serve only, never in AWS.
	LocalWebhooks bool
	Now           func() time.Time // default time.Now
	Logger        *slog.Logger     // default slog.Default()
}

// Handler serves the API.
type Handler struct {
	cfg Config
	lim Limits
	now func() time.Time
	log *slog.Logger
	mux *http.ServeMux
}

// New checks cfg and returns the API handler.
func New(cfg Config) (*Handler, error) {
	switch {
	case cfg.Jobs == nil:
		return nil, errors.New("api: Config.Jobs is required")
	case cfg.Blobs == nil:
		return nil, errors.New("api: Config.Blobs is required")
	case cfg.Events == nil:
		return nil, errors.New("api: Config.Events is required")
	case cfg.Auth == nil:
		return nil, errors.New("api: Config.Auth is required")
	}
	if len(cfg.OpenAPI) == 0 {
		cfg.OpenAPI = Document
	}
	if cfg.Outputs == nil {
		cfg.Outputs = cfg.Blobs
	}
	h := &Handler{cfg: cfg, lim: cfg.Limits.withDefaults(), now: cfg.Now, log: cfg.Logger, mux: http.NewServeMux()}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	h.mux.HandleFunc("POST /v1/jobs", h.authed(h.create))
	h.mux.HandleFunc("GET /v1/jobs", h.authed(h.list))
	h.mux.HandleFunc("GET /v1/jobs/{id}", h.authed(h.get))
	h.mux.HandleFunc("DELETE /v1/jobs/{id}", h.authed(h.cancel))
	h.mux.HandleFunc("GET /v1/openapi.yaml", h.openAPI)
	// Method-less patterns catch the methods the routes above do not
	// serve, so 404 and 405 come back as JSON errors like every other.
	h.mux.HandleFunc("/v1/jobs", h.methodNotAllowed("GET, POST"))
	h.mux.HandleFunc("/v1/jobs/{id}", h.methodNotAllowed("GET, DELETE"))
	h.mux.HandleFunc("/v1/openapi.yaml", h.methodNotAllowed("GET"))
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, errRouteNotFound)
	})
	return h, nil
}

// ServeHTTP tags the request with an id, serves it and logs one line.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	info := &requestInfo{id: requestID(r)}
	w.Header().Set("X-Request-Id", info.id)
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	r = r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info))
	h.mux.ServeHTTP(rec, r)

	attrs := []any{"method", r.Method, "path", r.URL.Path, "status", rec.status,
		"duration_ms", time.Since(start).Milliseconds()}
	level := slog.LevelInfo
	if info.err != nil {
		attrs = append(attrs, "err", info.err.Error())
		if rec.status >= 500 {
			level = slog.LevelError
		}
	}
	h.logger(r.Context()).Log(r.Context(), level, "request", attrs...)
}

// requestInfo collects what the access log line reports; handlers fill it
// in as they learn the tenant and the job.
type requestInfo struct {
	id, tenant, jobID string
	err               error
}

type requestInfoKey struct{}

func info(ctx context.Context) *requestInfo {
	if i, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		return i
	}
	return &requestInfo{}
}

// logger carries the request id, tenant and job id known so far.
func (h *Handler) logger(ctx context.Context) *slog.Logger {
	i := info(ctx)
	l := h.log.With("request_id", i.id)
	if i.tenant != "" {
		l = l.With("tenant", i.tenant)
	}
	if i.jobID != "" {
		l = l.With("job_id", i.jobID)
	}
	return l
}

// requestID prefers API Gateway's id (it is in the gateway's own logs),
// then a caller's X-Request-Id, then a fresh one.
func requestID(r *http.Request) string {
	if rc, ok := gatewayContext(r.Context()); ok && rc.RequestID != "" {
		return rc.RequestID
	}
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 128 && printableASCII(id) {
		return id
	}
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail on supported platforms
	return "req_" + hex.EncodeToString(b[:])
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// authed resolves the tenant before calling next.
func (h *Handler) authed(next func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tenant, err := h.cfg.Auth.Tenant(r)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		info(r.Context()).tenant = tenant
		next(w, r, tenant)
	}
}

func (h *Handler) methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		h.fail(w, r, fmt.Errorf("%s %s: %w", r.Method, r.URL.Path, errMethodNotAllowed))
	}
}

func (h *Handler) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(h.cfg.OpenAPI)
}
