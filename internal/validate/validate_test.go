package validate_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/media"
	"github.com/latentsync/latentsync-service/internal/media/mediatest"
	"github.com/latentsync/latentsync-service/internal/queue"
	"github.com/latentsync/latentsync-service/internal/validate"
)

func webm(t testing.TB) string {
	return mediatest.FFmpeg(t, "clip.webm", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "2",
		"-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k", "-c:a", "libopus")
}

func speech(t testing.TB) string { return mediatest.SpeechWAV(t, "Hello there, this is a test.") }

// requireQueued checks that j is queued with both inputs valid, that exactly
// one message for it is in the queue, and that the message is right.
func requireQueued(t *testing.T, e *env, j *job.Job) {
	t.Helper()
	got := e.get(j)
	if got.Status != job.Queued || !got.VideoValidated || !got.AudioValidated || got.Error != nil {
		t.Fatalf("job: status %s, video validated %v, audio validated %v, error %+v; want queued with both valid",
			got.Status, got.VideoValidated, got.AudioValidated, got.Error)
	}
	msgs := e.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d queue messages, want 1: %+v", len(msgs), msgs)
	}
	m := msgs[0]
	want := job.NewMessage(got, "bundle-v1")
	if m.Message != want {
		t.Errorf("message %+v, want %+v", m.Message, want)
	}
	if m.Attributes[queue.TraceAttribute] != j.TraceHeader {
		t.Errorf("trace attribute %q, want %q", m.Attributes[queue.TraceAttribute], j.TraceHeader)
	}
	if evs := e.published(); len(evs) != 0 {
		t.Errorf("events published for a valid job: %+v", evs)
	}
}

// requireFailed checks that j failed with code and that exactly one
// job.failed event reported it.
func requireFailed(t *testing.T, e *env, j *job.Job, code joberr.Code) {
	t.Helper()
	got := e.get(j)
	if got.Status != job.Failed || got.Error == nil || got.Error.Code != code {
		t.Fatalf("job: status %s, error %+v; want failed with %s", got.Status, got.Error, code)
	}
	if got.Error.Message == "" {
		t.Error("failure has no message")
	}
	evs := e.published()
	if len(evs) != 1 {
		t.Fatalf("%d events, want 1: %+v", len(evs), evs)
	}
	ev := evs[0]
	if ev.Type != job.EventFailed || ev.JobID != j.ID || ev.Tenant != tenant || ev.Webhook != j.WebhookURL ||
		ev.Detail.Status != job.Failed || ev.Detail.Error == nil || *ev.Detail.Error != *got.Error {
		t.Errorf("event %+v, want job.failed of %s with error %+v", ev, j.ID, got.Error)
	}
	if msgs := e.messages(); len(msgs) != 0 {
		t.Errorf("failed job was queued: %+v", msgs)
	}
}

func TestValidInputsQueueTheJob(t *testing.T) {
	mediatest.Require(t, "ffmpeg", "ffprobe")
	tests := []struct {
		name         string
		video, audio func(testing.TB) string
	}{
		{"mp4 and wav", mediatest.AVMP4, speech},
		{"webm and m4a", webm, mediatest.AudioM4A},
		{"audio taken from a video file", mediatest.VideoOnlyMP4, mediatest.AVMP4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, validate.Config{Bundle: "bundle-v1"}, wrap{})
			j := e.newJob(tc.video(t), tc.audio(t))
			if err := e.handle(j, job.VideoInput); err != nil {
				t.Fatal(err)
			}
			if got := e.get(j); got.Status != job.AwaitingUpload || !got.VideoValidated || got.AudioValidated {
				t.Fatalf("after the video: status %s, video %v, audio %v; want awaiting_upload, video only",
					got.Status, got.VideoValidated, got.AudioValidated)
			}
			if msgs := e.messages(); len(msgs) != 0 {
				t.Fatalf("queued before the audio was validated: %+v", msgs)
			}
			if err := e.handle(j, job.AudioInput); err != nil {
				t.Fatal(err)
			}
			requireQueued(t, e, j)
		})
	}
}

func TestBadInputsFailTheJob(t *testing.T) {
	mediatest.Require(t, "ffmpeg", "ffprobe")
	tests := []struct {
		name         string
		video, audio func(testing.TB) string
		cfg          validate.Config
		declareExtra int64 // added to the video's declared size
		want         joberr.Code
	}{
		{name: "truncated mp4", video: mediatest.TruncatedMP4, audio: speech, want: joberr.CorruptMedia},
		{name: "zero-byte video", video: mediatest.Empty, audio: speech, want: joberr.UnsupportedMedia},
		{name: "text file named .mp4", video: mediatest.TextAsMP4, audio: speech, want: joberr.UnsupportedMedia},
		{name: "matroska vp9", video: mediatest.VP9MKV, audio: speech, want: joberr.UnsupportedMedia},
		{name: "audio-only file as the video", video: mediatest.AudioM4A, audio: speech, want: joberr.NoVideoStream},
		{name: "video without audio as the audio", video: mediatest.AVMP4, audio: mediatest.VideoOnlyMP4, want: joberr.NoAudioStream},
		{name: "text file as the audio", video: mediatest.AVMP4, audio: mediatest.TextAsMP4, want: joberr.UnsupportedMedia},
		{name: "video too long", video: mediatest.AVMP4, audio: speech,
			cfg: validate.Config{VideoLimits: media.Limits{MaxDuration: 1500 * time.Millisecond}}, want: joberr.MediaTooLong},
		{name: "audio too long", video: mediatest.AVMP4, audio: speech,
			cfg: validate.Config{AudioLimits: media.Limits{MaxDuration: 500 * time.Millisecond}}, want: joberr.MediaTooLong},
		{name: "video too large", video: mediatest.AVMP4, audio: speech,
			cfg: validate.Config{VideoLimits: media.Limits{MaxBytes: 10_000}}, want: joberr.MediaTooLarge},
		{name: "audio too large", video: mediatest.AVMP4, audio: speech,
			cfg: validate.Config{AudioLimits: media.Limits{MaxBytes: 10_000}}, want: joberr.MediaTooLarge},
		{name: "frames too large", video: mediatest.AVMP4, audio: speech,
			cfg: validate.Config{VideoLimits: media.Limits{MaxSide: 300}}, want: joberr.MediaTooLarge},
		{name: "stored size differs from declared", video: mediatest.AVMP4, audio: speech, declareExtra: 1, want: joberr.InvalidRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Bundle = "bundle-v1"
			e := newEnv(t, tc.cfg, wrap{})
			video := tc.video(t)
			j := e.newJob(video, tc.audio(t))
			if tc.declareExtra != 0 {
				stored := e.get(j)
				stored.Video.SizeBytes += tc.declareExtra
				if err := e.jobs.Update(e.ctx, stored); err != nil {
					t.Fatal(err)
				}
			}
			// Both events, then both again: one verdict, one event.
			for _, in := range []job.Input{job.VideoInput, job.AudioInput, job.VideoInput, job.AudioInput} {
				if err := e.handle(j, in); err != nil {
					t.Fatalf("%s: %v", in, err)
				}
			}
			requireFailed(t, e, j, tc.want)
		})
	}
}

func TestTwoBadInputsReportTheFirstVerdictOnce(t *testing.T) {
	mediatest.Require(t, "ffmpeg", "ffprobe")
	e := newEnv(t, validate.Config{}, wrap{})
	j := e.newJob(mediatest.TextAsMP4(t), mediatest.VideoOnlyMP4(t))
	for _, in := range []job.Input{job.AudioInput, job.VideoInput, job.AudioInput} {
		if err := e.handle(j, in); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
	}
	requireFailed(t, e, j, joberr.NoAudioStream)
}

func TestRepeatedEventsQueueOnce(t *testing.T) {
	mediatest.Require(t, "ffmpeg", "ffprobe")
	e := newEnv(t, validate.Config{Bundle: "bundle-v1"}, wrap{})
	j := e.newJob(mediatest.AVMP4(t), speech(t))
	for _, in := range []job.Input{job.VideoInput, job.VideoInput, job.AudioInput, job.AudioInput, job.VideoInput} {
		if err := e.handle(j, in); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
	}
	requireQueued(t, e, j)
}

// Both uploads' events, each delivered twice, race; every job gets exactly
// one message. A repeat that finds the enqueue in flight asks to be retried.
func TestConcurrentEventsQueueOnce(t *testing.T) {
	mediatest.Require(t, "ffmpeg", "ffprobe")
	e := newEnv(t, validate.Config{Bundle: "bundle-v1"}, wrap{})
	video, audio := mediatest.AVMP4(t), speech(t)
	const jobs = 6
	var all []*job.Job
	var wg sync.WaitGroup
	errs := make(chan error, jobs*4)
	start := make(chan struct{})
	for range jobs {
		j := e.newJob(video, audio)
		all = append(all, j)
		for _, in := range []job.Input{job.VideoInput, job.AudioInput, job.VideoInput, job.AudioInput} {
			wg.Go(func() {
				<-start
				errs <- e.handle(j, in)
			})
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, validate.ErrEnqueueInFlight) {
			t.Errorf("handle: %v", err)
		}
	}
	// Retries after the grace period find the jobs queued.
	e.clock.Advance(time.Hour)
	for _, j := range all {
		for _, in := range []job.Input{job.VideoInput, job.AudioInput} {
			if err := e.handle(j, in); err != nil {
				t.Errorf("retry %s: %v", in, err)
			}
		}
	}
	perJob := map[string]int{}
	for _, m := range e.messages() {
		perJob[m.JobID]++
	}
	for _, j := range all {
		if got := e.get(j); got.Status != job.Queued {
			t.Errorf("job %s is %s, want queued", j.ID, got.Status)
		}
		if perJob[j.ID] != 1 {
			t.Errorf("job %s has %d messages, want 1", j.ID, perJob[j.ID])
		}
	}
}

func TestFailedSendIsRetried(t *testing.T) {
	mediatest.Require(t, "ffmpeg", "ffprobe")
	var sender *faultySender
	e := newEnv(t, validate.Config{Bundle: "bundle-v1", EnqueueGrace: time.Minute}, wrap{queue: func(s validate.Sender) validate.Sender {
		sender = &faultySender{Sender: s}
		sender.fails.Store(1)
		return sender
	}})
	j := e.newJob(mediatest.AVMP4(t), speech(t))
	if err := e.handle(j, job.VideoInput); err != nil {
		t.Fatal(err)
	}
	if err := e.handle(j, job.AudioInput); !errors.Is(err, errInjected) {
		t.Fatalf("handle with the queue down: %v, want the outage", err)
	}
	if got := e.get(j); got.Status != job.AwaitingUpload || !got.VideoValidated || !got.AudioValidated {
		t.Fatalf("after the failed send: %s, video %v, audio %v", got.Status, got.VideoValidated, got.AudioValidated)
	}
	// A retry at once cannot tell a crashed enqueue from a running one.
	if err := e.handle(j, job.AudioInput); !errors.Is(err, validate.ErrEnqueueInFlight) {
		t.Fatalf("retry within the grace period: %v, want ErrEnqueueInFlight", err)
	}
	e.clock.Advance(time.Minute)
	if err := e.handle(j, job.AudioInput); err != nil {
		t.Fatalf("retry after the grace period: %v", err)
	}
	requireQueued(t, e, j)
}

// A crash between the send and the status write leaves a message and a job
// not yet queued; the retry sends again rather than lose the job, and the
// worker drops the duplicate.
func TestCrashAfterSendIsNotLost(t *testing.T) {
	mediatest.Require(t, "ffmpeg", "ffprobe")
	e := newEnv(t, validate.Config{EnqueueGrace: time.Minute}, wrap{jobs: func(s validate.Jobs) validate.Jobs {
		fj := &faultyJobs{Jobs: s}
		fj.fails.Store(1)
		return fj
	}})
	j := e.newJob(mediatest.AVMP4(t), speech(t))
	if err := e.handle(j, job.VideoInput); err != nil {
		t.Fatal(err)
	}
	if err := e.handle(j, job.AudioInput); !errors.Is(err, errInjected) {
		t.Fatalf("handle: %v, want the injected failure", err)
	}
	e.clock.Advance(time.Minute)
	if err := e.handle(j, job.AudioInput); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if got := e.get(j); got.Status != job.Queued {
		t.Fatalf("job is %s, want queued", got.Status)
	}
	msgs := e.messages()
	if len(msgs) != 2 || msgs[0].JobID != j.ID || msgs[1].JobID != j.ID {
		t.Fatalf("messages %+v, want the first send and the retry's", msgs)
	}
}

func TestEventsForJobsNotAwaitingUploadAreIgnored(t *testing.T) {
	mediatest.Require(t, "ffmpeg", "ffprobe")
	video, audio := mediatest.AVMP4(t), speech(t)
	tests := []struct {
		name string
		path []job.Status
	}{
		{"queued", []job.Status{job.Queued}},
		{"processing", []job.Status{job.Queued, job.Processing}},
		{"succeeded", []job.Status{job.Queued, job.Processing, job.Succeeded}},
		{"failed", []job.Status{job.Failed}},
		{"canceled", []job.Status{job.Canceled}},
		{"expired", []job.Status{job.Expired}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, validate.Config{}, wrap{})
			j := e.newJob(video, audio)
			stored := e.get(j)
			for _, s := range tc.path {
				if err := stored.Apply(s, e.clock.Now()); err != nil {
					t.Fatal(err)
				}
			}
			if err := e.jobs.Update(e.ctx, stored); err != nil {
				t.Fatal(err)
			}
			for _, in := range []job.Input{job.VideoInput, job.AudioInput} {
				if err := e.handle(j, in); err != nil {
					t.Fatalf("%s: %v", in, err)
				}
			}
			got := e.get(j)
			if got.Version != stored.Version || got.Status != stored.Status || got.VideoValidated || got.AudioValidated {
				t.Errorf("job changed: %+v", got)
			}
			if msgs := e.messages(); len(msgs) != 0 {
				t.Errorf("messages sent: %+v", msgs)
			}
			if evs := e.published(); len(evs) != 0 {
				t.Errorf("events published: %+v", evs)
			}
		})
	}
}

func TestEventsForOtherObjectsAreIgnored(t *testing.T) {
	mediatest.Require(t, "ffmpeg", "ffprobe")
	video := mediatest.AVMP4(t)
	e := newEnv(t, validate.Config{Bucket: "uploads"}, wrap{})
	j := e.newJob("", "")
	own := job.UploadKey(tenant, j.ID, job.VideoInput)
	tests := []struct {
		name, bucket, key string
		stored            bool // a valid video is stored at key
	}{
		{"another bucket", "outputs", own, true},
		{"another tenant's key for the job", "uploads", job.UploadKey("tenant-b", j.ID, job.VideoInput), true},
		{"unknown job", "uploads", job.UploadKey(tenant, "job_00000000000ffffffffffffffffffff", job.VideoInput), true},
		{"unknown input", "uploads", "uploads/" + tenant + "/" + j.ID + "/thumbnail", true},
		{"output key", "uploads", job.OutputKey(tenant, j.ID), true},
		{"too few segments", "uploads", "uploads/" + tenant + "/" + j.ID, false},
		{"too many segments", "uploads", own + "/x", true},
		{"empty tenant", "uploads", "uploads//" + j.ID + "/video", false},
		{"upload deleted before validation", "uploads", own, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Handling the event as an upload of j would show in the job.
			if tc.stored {
				e.put(tc.key, video)
				defer e.blobs.Delete(e.ctx, tc.key)
			}
			if err := e.v.Handle(e.ctx, validate.Upload{Bucket: tc.bucket, Key: tc.key, Size: 1}); err != nil {
				t.Fatal(err)
			}
			if got := e.get(j); got.Version != 1 || got.VideoValidated || got.Status != job.AwaitingUpload {
				t.Errorf("job changed: %+v", got)
			}
		})
	}
	if msgs := e.messages(); len(msgs) != 0 {
		t.Errorf("messages sent: %+v", msgs)
	}
	if evs := e.published(); len(evs) != 0 {
		t.Errorf("events published: %+v", evs)
	}
}

// Validation reads an upload's ends and its MP4 boxes, not the media data.
func TestProbeReadsHeadersOnly(t *testing.T) {
	mediatest.Require(t, "ffmpeg", "ffprobe")
	moovLast := mediatest.MP4(t, mediatest.Clip{W: 640, H: 480, Seconds: 4, Audio: true})
	tests := []struct {
		name  string
		video string
	}{
		{"mp4 with its index last", moovLast},
		{"mp4 with its index first", mediatest.FFmpeg(t, "faststart.mp4", "-i", moovLast, "-c", "copy", "-movflags", "+faststart")},
		{"webm", mediatest.FFmpeg(t, "clip.webm", "-f", "lavfi", "-i", "testsrc2=size=640x480:rate=25",
			"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "4",
			"-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1M", "-c:a", "libopus")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var counter *countingObjects
			e := newEnv(t, validate.Config{HeadBytes: 64 << 10, TailBytes: 4 << 10}, wrap{objects: func(o validate.Objects) validate.Objects {
				counter = &countingObjects{Objects: o}
				return counter
			}})
			j := e.newJob(tc.video, "")
			if err := e.handle(j, job.VideoInput); err != nil {
				t.Fatal(err)
			}
			if got := e.get(j); !got.VideoValidated || got.Status != job.AwaitingUpload {
				t.Fatalf("job %s, video validated %v, error %+v; want the video valid", got.Status, got.VideoValidated, got.Error)
			}
			size := fileSize(t, tc.video)
			if read := counter.read.Load(); read*3 > size {
				t.Errorf("read %d of %d bytes; want the headers only", read, size)
			}
		})
	}
}

func TestSweep(t *testing.T) {
	e := newEnv(t, validate.Config{EnqueueGrace: time.Minute, Bundle: "bundle-v1"}, wrap{})
	jobWith := func(deadline time.Duration, validated bool, age time.Duration) *job.Job {
		j := e.newJob("", "")
		stored := e.get(j)
		stored.UploadDeadline = e.clock.Now().Add(deadline)
		stored.VideoValidated, stored.AudioValidated = validated, validated
		stored.UpdatedAt = e.clock.Now().Add(-age)
		if err := e.jobs.Update(e.ctx, stored); err != nil {
			t.Fatal(err)
		}
		return j
	}
	abandoned := jobWith(-time.Hour, false, 25*time.Hour)
	pending := jobWith(time.Hour, false, time.Hour)
	stranded := jobWith(-time.Hour, true, 2*time.Minute) // its enqueue died
	enqueueing := jobWith(-time.Hour, true, time.Second) // its enqueue is running
	canceled := jobWith(-time.Hour, false, time.Hour)
	c := e.get(canceled)
	if err := c.Apply(job.Canceled, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if err := e.jobs.Update(e.ctx, c); err != nil {
		t.Fatal(err)
	}

	res, err := e.v.Sweep(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res != (validate.SweepResult{Expired: 1, Enqueued: 1}) {
		t.Errorf("sweep %+v, want 1 expired, 1 enqueued", res)
	}
	if got := e.get(abandoned); got.Status != job.Expired || got.Error == nil || got.Error.Code != joberr.Timeout || got.CompletedAt == nil {
		t.Errorf("abandoned job: %s, error %+v; want expired with TIMEOUT", got.Status, got.Error)
	}
	for name, j := range map[string]*job.Job{"pending": pending, "enqueueing": enqueueing} {
		if got := e.get(j); got.Status != job.AwaitingUpload {
			t.Errorf("%s job is %s, want awaiting_upload", name, got.Status)
		}
	}
	if got := e.get(canceled); got.Status != job.Canceled {
		t.Errorf("canceled job is %s", got.Status)
	}
	if got := e.get(stranded); got.Status != job.Queued {
		t.Errorf("stranded job is %s, want queued", got.Status)
	}
	msgs := e.messages()
	if len(msgs) != 1 || msgs[0].JobID != stranded.ID {
		t.Errorf("messages %+v, want one for the stranded job", msgs)
	}
	evs := e.published()
	if len(evs) != 1 || evs[0].JobID != abandoned.ID || evs[0].Type != job.EventFailed || evs[0].Detail.Status != job.Expired {
		t.Errorf("events %+v, want job.failed of the abandoned job", evs)
	}

	// Nothing is done twice.
	res, err = e.v.Sweep(e.ctx)
	if err != nil || res != (validate.SweepResult{}) {
		t.Errorf("second sweep %+v, %v; want nothing done", res, err)
	}
	if msgs := e.messages(); len(msgs) != 0 {
		t.Errorf("second sweep sent %+v", msgs)
	}
	if evs := e.published(); len(evs) != 1 {
		t.Errorf("second sweep published: %+v", evs[1:])
	}
}

func TestParseKey(t *testing.T) {
	tests := []struct {
		key            string
		tenant, id, in string
		ok             bool
	}{
		{"uploads/t1/job_1/video", "t1", "job_1", "video", true},
		{"uploads/t1/job_1/audio", "t1", "job_1", "audio", true},
		{"uploads/t1/job_1/result.mp4", "", "", "", false},
		{"uploads/t1/job_1/video/", "", "", "", false},
		{"outputs/t1/job_1/video", "", "", "", false},
		{"uploads/t1//video", "", "", "", false},
		{"uploads/t1/job_1", "", "", "", false},
		{"", "", "", "", false},
	}
	for _, tc := range tests {
		tenant, id, in, ok := validate.ParseKey(tc.key)
		if tenant != tc.tenant || id != tc.id || string(in) != tc.in || ok != tc.ok {
			t.Errorf("ParseKey(%q) = %q, %q, %q, %v; want %q, %q, %q, %v", tc.key, tenant, id, in, ok, tc.tenant, tc.id, tc.in, tc.ok)
		}
	}
}
