// Package validate checks a job's uploads when the object store reports them
// (the validate Lambda; `latentsync serve` runs it in-process) and moves a job
// whose two inputs are valid from awaiting_upload to queued with exactly one
// queue message. Bad media fails the job with its specific error code and one
// job.failed event. Sweep expires jobs whose uploads never arrived.
//
// Delivery is at least once and unordered: S3 may report an object twice, the
// video and audio events race, and a failed invocation is retried with the
// same event. Every decision is therefore a conditional write on the version
// read, and a repeated event finds the work done and does nothing.
//
// Enqueueing sends before it writes (see enqueue): a crash between the two
// leaves a job that a retry, or Sweep, sends again, so no message is lost;
// the price is a rare duplicate message, which the worker drops because its
// own queued -> processing conditional write admits one delivery only.
package validate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/latentsync/latentsync-service/internal/blob"
	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/media"
)

// Upload is one object-created notification.
type Upload struct {
	Bucket string
	Key    string // decoded, as stored
	Size   int64  // as the notification reports it; the stored size is checked
}

// ErrEnqueueInFlight: both inputs are valid and another invocation is
// sending the job's queue message right now. Retry the event later: by then
// the job is queued (nothing to do) or, if that invocation died, old enough
// for this one to send.
var ErrEnqueueInFlight = errors.New("job is being enqueued by another invocation")

// Jobs is the part of jobstore.Store validation uses.
type Jobs interface {
	Get(ctx context.Context, tenant, id string) (*job.Job, error)
	Update(ctx context.Context, j *job.Job) error
	ListExpired(ctx context.Context, before time.Time, limit int) ([]*job.Job, error)
}

// Objects is the part of blob.Store validation uses: it reads sizes and
// byte ranges, never whole uploads.
type Objects interface {
	Attributes(ctx context.Context, key string) (blob.Attributes, error)
	NewRangeReader(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
}

// Sender sends queue messages (queue.Queue).
type Sender interface {
	Send(ctx context.Context, body []byte, attributes map[string]string) (string, error)
}

// Publisher publishes job events (eventbus.Publisher).
type Publisher interface {
	Publish(ctx context.Context, e job.Event) error
}

// ErrVerdictPending is what a Screener returns (wrapped) when the scan has
// not finished: the event is dropped without error, because the scanner's
// result event triggers validation again.
var ErrVerdictPending = errors.New("malware scan verdict pending")

// Screener vets an upload before anything reads it. It is the extension
// point for a malware scan verdict (GuardDuty Malware Protection for S3 tags
// the object with GuardDutyMalwareScanStatus): return a *joberr.Error with
// joberr.MalwareDetected to fail the job, ErrVerdictPending while the scan
// runs; any other error retries the event.
type Screener interface {
	Screen(ctx context.Context, u Upload) error
}

// Config tunes a Validator; zero fields take the defaults of DESIGN.md.
type Config struct {
	// Bucket, when set, is the only bucket whose events are handled.
	Bucket string
	// Bundle is the model bundle version put in queue messages ("" lets the
	// worker use its default).
	Bundle      string
	VideoLimits media.Limits // default media.VideoLimits()
	AudioLimits media.Limits // default media.AudioLimits()
	// HeadBytes and TailBytes are how much of each end of an upload is read
	// for probing (defaults 8 MiB and 1 MiB); an MP4/MOV's boxes outside
	// them are fetched by walking its top-level box headers.
	HeadBytes, TailBytes int64
	// ProbeTimeout bounds reading and probing one upload (default 2 min).
	ProbeTimeout time.Duration
	// EnqueueGrace is how long a job with both inputs valid may stay
	// awaiting_upload before a repeated event or Sweep assumes the
	// invocation that was enqueueing it died and sends again (default 2 min;
	// longer than one invocation, shorter than the retries' backoff).
	EnqueueGrace time.Duration
	// TempDir holds the per-upload probe copies ("" = os.TempDir()).
	TempDir  string
	Screener Screener // nil: no screening
	Logger   *slog.Logger
	Now      func() time.Time
}

func (c *Config) defaults() {
	if c.VideoLimits == (media.Limits{}) {
		c.VideoLimits = media.VideoLimits()
	}
	if c.AudioLimits == (media.Limits{}) {
		c.AudioLimits = media.AudioLimits()
	}
	if c.HeadBytes <= 0 {
		c.HeadBytes = 8 << 20
	}
	if c.TailBytes <= 0 {
		c.TailBytes = 1 << 20
	}
	if c.ProbeTimeout <= 0 {
		c.ProbeTimeout = 2 * time.Minute
	}
	if c.EnqueueGrace <= 0 {
		c.EnqueueGrace = 2 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validator handles upload notifications and expires abandoned jobs.
type Validator struct {
	jobs    Jobs
	objects Objects
	queue   Sender
	events  Publisher
	cfg     Config
	log     *slog.Logger
}

// New returns a Validator over the job store, the uploads bucket, the jobs
// queue and the event bus.
func New(jobs Jobs, objects Objects, queue Sender, events Publisher, cfg Config) *Validator {
	cfg.defaults()
	return &Validator{jobs: jobs, objects: objects, queue: queue, events: events, cfg: cfg, log: cfg.Logger}
}

// ParseKey splits an upload key uploads/{tenant}/{job}/{video|audio}.
func ParseKey(key string) (tenant, id string, in job.Input, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 4 || parts[0] != "uploads" || parts[1] == "" || parts[2] == "" {
		return "", "", "", false
	}
	switch in := job.Input(parts[3]); in {
	case job.VideoInput, job.AudioInput:
		return parts[1], parts[2], in, true
	}
	return "", "", "", false
}

// Handle validates one upload. It returns nil when the event needs no retry:
// the upload was judged (valid or failing the job), or the event is not for
// a job awaiting this upload. An error means the event should be delivered
// again (an outage, or ErrEnqueueInFlight).
func (v *Validator) Handle(ctx context.Context, u Upload) error {
	if v.cfg.Bucket != "" && u.Bucket != v.cfg.Bucket {
		v.log.InfoContext(ctx, "ignoring an event of another bucket", "bucket", u.Bucket, "key", u.Key)
		return nil
	}
	tenant, id, in, ok := ParseKey(u.Key)
	if !ok {
		v.log.InfoContext(ctx, "ignoring an object that is not an upload", "bucket", u.Bucket, "key", u.Key)
		return nil
	}
	log := v.log.With("job_id", id, "tenant", tenant, "input", string(in))
	j, err := v.jobs.Get(ctx, tenant, id)
	if errors.Is(err, job.ErrNotFound) {
		log.WarnContext(ctx, "ignoring an upload for an unknown job", "key", u.Key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("validate %s: %w", u.Key, err)
	}
	log = log.With("trace_id", j.TraceHeader)
	if j.Status != job.AwaitingUpload {
		// A repeated or late event: the job moved on (or was failed by
		// the other input, canceled, expired); it was reported already.
		log.InfoContext(ctx, "job no longer awaits uploads; event ignored", "status", string(j.Status))
		return nil
	}
	if validated(j, in) {
		log.InfoContext(ctx, "upload already validated; repeated event")
		return v.resume(ctx, log, j)
	}

	start := v.cfg.Now()
	info, err := v.check(ctx, j, in, u)
	var bad *joberr.Error
	switch {
	case errors.As(err, &bad):
		log.InfoContext(ctx, "upload rejected", "code", string(bad.Code), "reason", err.Error())
		return v.fail(ctx, log, j, bad)
	case errors.Is(err, ErrVerdictPending):
		// The scanner's own result event validates the upload again once the
		// verdict exists; retrying this event would only page someone when a
		// scan is slow.
		log.InfoContext(ctx, "malware scan not finished; waiting for its result event", "reason", err.Error())
		return nil
	case errors.Is(err, blob.ErrNotFound):
		// Deleted after the event; a new upload brings a new event,
		// otherwise the job expires.
		log.WarnContext(ctx, "upload is gone; event ignored", "key", u.Key)
		return nil
	case err != nil:
		return fmt.Errorf("validate %s of job %s: %w", in, id, err)
	}
	log.InfoContext(ctx, "upload valid", "container", info.Container, "duration_s", info.Duration.Seconds(),
		"size_bytes", info.Size, "check_s", v.cfg.Now().Sub(start).Seconds())
	return v.accept(ctx, log, j, in)
}

// check judges the stored upload; a *joberr.Error is a verdict on the media,
// anything else is an outage.
func (v *Validator) check(ctx context.Context, j *job.Job, in job.Input, u Upload) (*media.Info, error) {
	limits, declared := v.cfg.VideoLimits, j.Video
	if in == job.AudioInput {
		limits, declared = v.cfg.AudioLimits, j.Audio
	}
	attrs, err := v.objects.Attributes(ctx, u.Key)
	if err != nil {
		return nil, fmt.Errorf("stat upload: %w", err)
	}
	// The stored size, not the event's: the event may describe an older
	// version of the object. Over the limit says more than "not as
	// declared", so it is checked first.
	if limits.MaxBytes > 0 && attrs.Size > limits.MaxBytes {
		return nil, joberr.New(joberr.MediaTooLarge, "the %s upload is %d bytes; the limit is %d", in, attrs.Size, limits.MaxBytes)
	}
	if attrs.Size != declared.SizeBytes {
		// The presigned PUT binds the length, so this is an upload that
		// bypassed or outlived it: a broken request, not a media problem.
		return nil, joberr.New(joberr.InvalidRequest, "the %s upload is %d bytes but the job declared %d", in, attrs.Size, declared.SizeBytes)
	}
	if v.cfg.Screener != nil {
		if err := v.cfg.Screener.Screen(ctx, u); err != nil {
			return nil, fmt.Errorf("screen upload: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, v.cfg.ProbeTimeout)
	defer cancel()
	info, err := v.probe(ctx, u.Key, attrs.Size, string(in))
	if err != nil {
		return nil, err
	}
	if err := admit(info, in, limits); err != nil {
		return nil, err
	}
	return info, nil
}

// admit applies the rules media.Probe leaves to the caller: the stream the
// input is for, the limits, and the container whitelist of DESIGN.md, which
// names WebM but not Matroska in general (media accepts both because one
// demuxer reads them; an .mkv is refused here so that what the API documents
// is what it takes).
func admit(info *media.Info, in job.Input, limits media.Limits) error {
	name := filepath.Base(info.Path)
	if info.Container == "matroska" {
		return joberr.New(joberr.UnsupportedMedia, "file %q: Matroska is not supported (use MP4, MOV, M4A, WebM, WAV or MP3)", name)
	}
	require := media.RequireVideo
	if in == job.AudioInput {
		require = media.RequireAudio
	}
	if err := require(info); err != nil {
		return err
	}
	return limits.Check(info)
}

func validated(j *job.Job, in job.Input) bool {
	if in == job.VideoInput {
		return j.VideoValidated
	}
	return j.AudioValidated
}

func setValidated(j *job.Job, in job.Input) {
	if in == job.VideoInput {
		j.VideoValidated = true
	} else {
		j.AudioValidated = true
	}
}
