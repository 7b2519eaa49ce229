package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/latentsync/latentsync-service/internal/blob"
	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/joberr"
)

// Content types accepted for each upload (DESIGN.md: MP4/MOV/M4A, WebM,
// WAV, MP3). The speech track may also come in a video container: the
// validator takes its audio stream. Anything else is 415 UNSUPPORTED_MEDIA,
// so clients learn before uploading hundreds of megabytes.
var (
	videoTypes = []string{"video/mp4", "video/quicktime", "video/webm"}
	audioTypes = []string{
		"audio/mp4", "audio/x-m4a", "audio/mpeg", "audio/wav", "audio/x-wav", "audio/wave", "audio/webm",
		"video/mp4", "video/quicktime", "video/webm",
	}
)

const (
	maxIdempotencyKey  = 255
	maxClientReference = 256
	maxEmail           = 254
)

// IdempotencyKeyHeader names the optional idempotency key of POST /v1/jobs.
const IdempotencyKeyHeader = "Idempotency-Key"

type createRequest struct {
	Video   *job.Media   `json:"video"`
	Audio   *job.Media   `json:"audio"`
	Options *job.Options `json:"options"`
	Webhook *struct {
		URL string `json:"url"`
	} `json:"webhook"`
	NotifyEmail     string `json:"notify_email"`
	ClientReference string `json:"client_reference"`
}

// normalized is a request after validation and defaults; its hash is what
// an Idempotency-Key is bound to, so spelling out a default is the same request.
type normalized struct {
	Video           job.Media   `json:"video"`
	Audio           job.Media   `json:"audio"`
	Options         job.Options `json:"options"`
	WebhookURL      string      `json:"webhook_url"`
	NotifyEmail     string      `json:"notify_email"`
	ClientReference string      `json:"client_reference"`
}

func (n normalized) hash() string {
	b, _ := json.Marshal(n) // plain fields only: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

type createResponse struct {
	ID      string                       `json:"id"`
	Status  job.Status                   `json:"status"`
	Uploads map[job.Input]blob.Presigned `json:"uploads,omitempty"`
	Links   map[string]string            `json:"links"`
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request, tenant string) {
	ctx := r.Context()
	key := r.Header.Get(IdempotencyKeyHeader)
	if err := checkIdempotencyKey(key, r.Header); err != nil {
		h.fail(w, r, err)
		return
	}
	req, err := h.decodeCreate(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	n, err := h.validate(ctx, req)
	if err != nil {
		h.fail(w, r, err)
		return
	}

	now := h.now().UTC()
	j := &job.Job{
		ID: job.NewID(now), Tenant: tenant, Status: job.AwaitingUpload,
		CreatedAt: now, UpdatedAt: now, UploadDeadline: now.Add(h.lim.UploadWindow),
		ExpireAt: now.Add(h.lim.RecordRetention),
		Options:  n.Options, Video: n.Video, Audio: n.Audio,
		WebhookURL: n.WebhookURL, NotifyEmail: n.NotifyEmail, ClientReference: n.ClientReference,
		TraceHeader: r.Header.Get("X-Amzn-Trace-Id"),
	}
	stored, err := h.cfg.Jobs.Create(ctx, j, key, n.hash())
	if err != nil {
		h.fail(w, r, fmt.Errorf("create job: %w", err))
		return
	}
	info(ctx).jobID = stored.ID
	replay := stored.ID != j.ID

	resp := createResponse{ID: stored.ID, Status: stored.Status, Links: links(stored.ID)}
	// A replayed job that no longer awaits uploads gets no upload URLs: a
	// second PUT would replace media that was already validated.
	if stored.Status == job.AwaitingUpload {
		resp.Uploads = map[job.Input]blob.Presigned{}
		for in, m := range map[job.Input]job.Media{job.VideoInput: stored.Video, job.AudioInput: stored.Audio} {
			p, err := h.cfg.Blobs.PresignPut(ctx, job.UploadKey(stored.Tenant, stored.ID, in), m.ContentType, m.SizeBytes, h.lim.UploadURLTTL)
			if err != nil {
				h.fail(w, r, fmt.Errorf("presign %s upload of job %s: %w", in, stored.ID, err))
				return
			}
			if p.Headers == nil {
				p.Headers = map[string]string{}
			}
			resp.Uploads[in] = p
		}
	}
	if replay {
		w.Header().Set("Idempotent-Replayed", "true")
	} else {
		h.logger(ctx).Info("job created", "video_bytes", stored.Video.SizeBytes, "audio_bytes", stored.Audio.SizeBytes,
			"idempotency_key", key != "")
	}
	w.Header().Set("Location", "/v1/jobs/"+stored.ID)
	writeJSON(w, http.StatusCreated, resp)
}

func links(id string) map[string]string { return map[string]string{"self": "/v1/jobs/" + id} }

func invalid(format string, args ...any) error {
	return joberr.New(joberr.InvalidRequest, format, args...)
}

func checkIdempotencyKey(key string, hdr http.Header) error {
	if vs := hdr.Values(IdempotencyKeyHeader); len(vs) > 1 {
		return invalid("send the Idempotency-Key header once")
	}
	if _, present := hdr[http.CanonicalHeaderKey(IdempotencyKeyHeader)]; present && key == "" {
		return invalid("the Idempotency-Key header is empty")
	}
	if len(key) > maxIdempotencyKey || !printableASCII(key) {
		return invalid("the Idempotency-Key header must be 1 to %d printable ASCII characters without spaces", maxIdempotencyKey)
	}
	return nil
}

// decodeCreate reads the JSON body strictly: unknown fields, trailing data
// and wrong types are errors that name the field.
func (h *Handler) decodeCreate(w http.ResponseWriter, r *http.Request) (*createRequest, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return nil, invalid("the request Content-Type must be application/json, got %q", ct)
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.lim.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, invalid("the request body exceeds %d bytes", h.lim.MaxBodyBytes)
		}
		return nil, fmt.Errorf("read request body: %w", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, invalid("the request body is empty; send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req createRequest
	if err := dec.Decode(&req); err != nil {
		return nil, jsonError(err)
	}
	if dec.More() {
		return nil, invalid("the request body holds data after the JSON object")
	}
	return &req, nil
}

// jsonError turns a decoding error into a message that names the field.
func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return invalid("%s must be %s", typeErr.Field, jsonKind(typeErr.Type))
	case errors.As(err, &typeErr):
		return invalid("the request body must be a JSON object")
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("the request body is not valid JSON: %v", err)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return invalid("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return invalid("the request body cannot be read: %v", err)
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

// validate checks every field in document order and returns the first problem.
func (h *Handler) validate(ctx context.Context, req *createRequest) (normalized, error) {
	var n normalized
	var err error
	if n.Video, err = checkMedia("video", req.Video, videoTypes, h.lim.MaxVideoBytes); err != nil {
		return n, err
	}
	if n.Audio, err = checkMedia("audio", req.Audio, audioTypes, h.lim.MaxAudioBytes); err != nil {
		return n, err
	}
	if req.Options != nil {
		n.Options = *req.Options
	}
	if err := n.Options.Normalize(); err != nil {
		return n, joberr.Wrap(joberr.InvalidRequest, err, "%s", err.Error())
	}
	if req.Webhook != nil {
		if req.Webhook.URL == "" {
			return n, invalid("webhook.url is required when webhook is given")
		}
		if err := checkWebhookURL(ctx, req.Webhook.URL, h.cfg.LocalWebhooks); err != nil {
			return n, err
		}
		n.WebhookURL = req.Webhook.URL
	}
	if e := req.NotifyEmail; e != "" {
		addr, err := mail.ParseAddress(e)
		if err != nil || addr.Address != e || len(e) > maxEmail {
			return n, invalid("notify_email must be a plain email address (name@example.com) of at most %d characters", maxEmail)
		}
		n.NotifyEmail = e
	}
	if c := req.ClientReference; c != "" {
		if len(c) > maxClientReference || !utf8.ValidString(c) || strings.ContainsFunc(c, unicode.IsControl) {
			return n, invalid("client_reference must be at most %d bytes of text without control characters", maxClientReference)
		}
		n.ClientReference = c
	}
	return n, nil
}

func checkMedia(field string, m *job.Media, allowed []string, maxBytes int64) (job.Media, error) {
	switch {
	case m == nil:
		return job.Media{}, invalid("%s is required", field)
	case m.ContentType == "":
		return job.Media{}, invalid("%s.content_type is required", field)
	case m.SizeBytes <= 0:
		return job.Media{}, invalid("%s.size_bytes is required and must be a positive integer", field)
	}
	ct := strings.ToLower(strings.TrimSpace(m.ContentType))
	supported := false
	for _, a := range allowed {
		supported = supported || ct == a
	}
	if !supported {
		return job.Media{}, joberr.New(joberr.UnsupportedMedia, "%s.content_type %q is not supported; use one of %s (without parameters)",
			field, m.ContentType, strings.Join(allowed, ", "))
	}
	if m.SizeBytes > maxBytes {
		return job.Media{}, joberr.New(joberr.MediaTooLarge, "%s.size_bytes is %d; the limit is %d bytes", field, m.SizeBytes, maxBytes)
	}
	return job.Media{ContentType: ct, SizeBytes: m.SizeBytes}, nil
}
