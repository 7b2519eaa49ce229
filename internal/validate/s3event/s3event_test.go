package s3event_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/latentsync/latentsync-service/internal/adapters/local"
	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/media/mediatest"
	"github.com/latentsync/latentsync-service/internal/validate"
	"github.com/latentsync/latentsync-service/internal/validate/s3event"
)

// The sample payloads under events/ are for this job.
const (
	sampleBucket = "latentsync-uploads-123456789012-eu-west-1"
	sampleTenant = "k7x9q2demo"
	sampleJob    = "job_0196a5c2e7f3b9d04c1e2f5a6b7c8d9"
)

func load[T any](t *testing.T, name string) T {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

func TestUploads(t *testing.T) {
	rec := func(name, key string) events.S3EventRecord {
		var r events.S3EventRecord
		r.EventName = name
		r.S3.Bucket.Name = "b"
		r.S3.Object.Key = key
		r.S3.Object.Size = 42
		return r
	}
	tests := []struct {
		name  string
		event events.S3Event
		want  []validate.Upload
	}{
		{"video sample", load[events.S3Event](t, "s3-object-created-video.json"),
			[]validate.Upload{{Bucket: sampleBucket, Key: "uploads/" + sampleTenant + "/" + sampleJob + "/video", Size: 1843290}}},
		{"audio sample", load[events.S3Event](t, "s3-object-created-audio.json"),
			[]validate.Upload{{Bucket: sampleBucket, Key: "uploads/" + sampleTenant + "/" + sampleJob + "/audio", Size: 96044}}},
		{"encoded key", events.S3Event{Records: []events.S3EventRecord{rec("ObjectCreated:Put", "uploads/t%3D1+x/job_1/video")}},
			[]validate.Upload{{Bucket: "b", Key: "uploads/t=1 x/job_1/video", Size: 42}}},
		{"multipart upload", events.S3Event{Records: []events.S3EventRecord{rec("ObjectCreated:CompleteMultipartUpload", "uploads/t/j/audio")}},
			[]validate.Upload{{Bucket: "b", Key: "uploads/t/j/audio", Size: 42}}},
		{"undecodable key kept as sent", events.S3Event{Records: []events.S3EventRecord{rec("ObjectCreated:Put", "uploads/%zz/j/video")}},
			[]validate.Upload{{Bucket: "b", Key: "uploads/%zz/j/video", Size: 42}}},
		{"removal skipped", events.S3Event{Records: []events.S3EventRecord{
			rec("ObjectRemoved:Delete", "uploads/t/j/video"), rec("ObjectCreated:Copy", "uploads/t/j/video")}},
			[]validate.Upload{{Bucket: "b", Key: "uploads/t/j/video", Size: 42}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := s3event.Uploads(tc.event)
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("upload %d: %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// The sample events, delivered directly and through SQS, take the sample
// job from awaiting_upload to queued on the real local adapters.
func TestSamplesQueueTheJob(t *testing.T) {
	mediatest.Require(t, "ffmpeg", "ffprobe")
	ctx := context.Background()
	dir := t.TempDir()
	jobs, err := local.OpenJobStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer jobs.Close()
	blobs, err := local.OpenBlobStore(dir, local.BlobConfig{BaseURL: "http://127.0.0.1:1/blobs/"})
	if err != nil {
		t.Fatal(err)
	}
	qs, err := local.OpenQueues(dir, local.QueuesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer qs.Close()
	q, err := qs.Queue("jobs", local.QueueConfig{})
	if err != nil {
		t.Fatal(err)
	}
	bus, err := local.OpenEventBus(dir, local.EventBusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	log := slog.New(slog.NewJSONHandler(t.Output(), nil))
	v := validate.New(jobs, blobs, q, bus, validate.Config{Bucket: sampleBucket, Logger: log, TempDir: t.TempDir()})

	video, audio := mediatest.AVMP4(t), mediatest.AudioM4A(t)
	now := time.Now()
	j := &job.Job{ID: sampleJob, Tenant: sampleTenant, Status: job.AwaitingUpload, CreatedAt: now, UpdatedAt: now,
		UploadDeadline: now.Add(time.Hour), Video: job.Media{SizeBytes: size(t, video)}, Audio: job.Media{SizeBytes: size(t, audio)}}
	if err := j.Options.Normalize(); err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.Create(ctx, j, "", ""); err != nil {
		t.Fatal(err)
	}
	for in, path := range map[job.Input]string{job.VideoInput: video, job.AudioInput: audio} {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		err = blobs.Put(ctx, job.UploadKey(sampleTenant, sampleJob, in), f, size(t, path), "application/octet-stream")
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}

	if err := s3event.HandleS3(ctx, v, load[events.S3Event](t, "s3-object-created-video.json")); err != nil {
		t.Fatal(err)
	}
	sqs := load[events.SQSEvent](t, "sqs-s3-object-created.json")
	sqs.Records = append(sqs.Records, events.SQSMessage{MessageId: "not-s3", Body: "{not json"})
	resp := s3event.HandleSQS(ctx, log, v, sqs)
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != "not-s3" {
		t.Errorf("batch failures %+v, want only the message that is not an S3 notification", resp.BatchItemFailures)
	}

	got, err := jobs.Get(ctx, sampleTenant, sampleJob)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != job.Queued {
		t.Fatalf("job is %s (error %+v), want queued", got.Status, got.Error)
	}
	msgs, err := q.Receive(ctx, 10, 0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	if m, err := job.ParseMessage(msgs[0].Body); err != nil || m.JobID != sampleJob {
		t.Errorf("message %+v, %v; want one for %s", m, err, sampleJob)
	}
}

func size(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}
