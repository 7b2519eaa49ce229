package aws_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	awsadapter "github.com/latentsync/latentsync-service/internal/adapters/aws"
	"github.com/latentsync/latentsync-service/internal/adapters/aws/awstest"
	"github.com/latentsync/latentsync-service/internal/blob"
	"github.com/latentsync/latentsync-service/internal/job"
)

var created = time.Date(2025, 6, 2, 8, 0, 0, 0, time.UTC)

func newJob(tenant, id string) *job.Job {
	return &job.Job{
		ID: id, Tenant: tenant, Status: job.AwaitingUpload, CreatedAt: created, UpdatedAt: created,
		UploadDeadline: created.Add(24 * time.Hour), ExpireAt: created.Add(30 * 24 * time.Hour),
		Options: job.Options{InferenceSteps: 20, GuidanceScale: 1.5, SyncMode: "cut_off"},
	}
}

func rawItem(t *testing.T, c *dynamodb.Client, table, pk string) map[string]types.AttributeValue {
	t.Helper()
	out, err := c.GetItem(t.Context(), &dynamodb.GetItemInput{
		TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

func attrN(item map[string]types.AttributeValue, name string) string {
	if n, ok := item[name].(*types.AttributeValueMemberN); ok {
		return n.Value
	}
	return ""
}

// The table layout the package documents, and the CDK stack and the TTL
// rely on: TTL in epoch seconds on the job and its idempotency key, the
// sweep index only while the job awaits its uploads.
func TestJobTableLayout(t *testing.T) {
	ddb := awstest.StartDynamoDB(t)
	table := awstest.Name(t, "jobs")
	ddb.CreateTable(t, awsadapter.JobTableSchema(table), awsadapter.JobTableTTL(table))
	st := awsadapter.NewJobStore(ddb.Client, table)
	j := newJob("tenant-a", "job_layout")
	j.ExpireAt = time.Now().Add(time.Hour) // DynamoDB Local deletes expired items
	j, err := st.Create(t.Context(), j, "key-1", "hash-1")
	if err != nil {
		t.Fatal(err)
	}
	ttl, err := ddb.Client.DescribeTimeToLive(t.Context(), &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatal(err)
	}
	if d := ttl.TimeToLiveDescription; d == nil || aws.ToString(d.AttributeName) != "expire_at" {
		t.Errorf("TTL = %+v, want attribute expire_at", d)
	}
	wantTTL := strconv.FormatInt(j.ExpireAt.Unix(), 10)
	idem := rawItem(t, ddb.Client, table, "IDEM#tenant-a#key-1")
	if idem == nil || attrN(idem, "expire_at") != wantTTL {
		t.Errorf("idempotency item = %v, want one expiring at %s", idem, wantTTL)
	}
	steps := []struct {
		to        job.Status
		wantSweep bool
	}{
		{job.AwaitingUpload, true},
		{job.Queued, false},
		{job.Processing, false},
	}
	for _, step := range steps {
		if err := j.Apply(step.to, created.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if step.to != job.AwaitingUpload {
			if err := st.Update(t.Context(), j); err != nil {
				t.Fatal(err)
			}
		}
		item := rawItem(t, ddb.Client, table, "JOB#job_layout")
		if got := attrN(item, "expire_at"); got != wantTTL {
			t.Errorf("%s: expire_at = %q, want %s (epoch seconds)", step.to, got, wantTTL)
		}
		if got := attrN(item, "version"); got != strconv.FormatInt(j.Version, 10) {
			t.Errorf("%s: version = %q, want %d", step.to, got, j.Version)
		}
		_, inSweep := item["sweep_sk"]
		if inSweep != step.wantSweep {
			t.Errorf("%s: in the awaiting-upload index = %v, want %v", step.to, inSweep, step.wantSweep)
		}
		doc, _ := item["job"].(*types.AttributeValueMemberM)
		if doc == nil || doc.Value["upload_deadline"] == nil || doc.Value["status"] == nil {
			t.Errorf("%s: job map = %v, want the job's JSON names", step.to, item["job"])
		}
	}
	for _, cursor := range []string{"!!", "bm8tc2VwYXJhdG9y"} { // not base64; no separator
		if _, _, err := st.List(t.Context(), "tenant-a", "", 10, cursor); err == nil {
			t.Errorf("List(cursor %q) succeeded, want an error", cursor)
		}
	}
}

// Programs configured only by the standard environment (as the Lambdas
// are) reach the emulators with no code change, S3 included: an IP
// endpoint makes the SDK use path-style addressing by itself.
func TestStandardEndpointVariables(t *testing.T) {
	ddb := awstest.StartDynamoDB(t)
	f := awstest.StartFauxqs(t)
	table := awstest.Name(t, "jobs")
	ddb.CreateTable(t, awsadapter.JobTableSchema(table), nil)
	bucket := f.CreateBucket(t, awstest.Name(t, "b"))
	queueURL, _ := f.CreateQueues(t, awstest.Name(t, "q"), 3)

	env := awstest.Env(ddb.Endpoint, "DYNAMODB")
	for k, v := range awstest.Env(f.Endpoint, "S3", "SQS") {
		env[k] = v
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	cfg, err := config.LoadDefaultConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := awsadapter.NewJobStore(dynamodb.NewFromConfig(cfg), table).Create(ctx, newJob("t", "job_env"), "", ""); err != nil {
		t.Errorf("job store from the environment: %v", err)
	}
	bs := awsadapter.NewBlobStore(s3.NewFromConfig(cfg), bucket)
	if err := bs.Put(ctx, "k", bytes.NewReader([]byte("x")), 1, "text/plain"); err != nil {
		t.Errorf("blob store from the environment: %v", err)
	}
	if _, err := awsadapter.NewQueue(sqs.NewFromConfig(cfg), queueURL).Send(ctx, []byte("m"), nil); err != nil {
		t.Errorf("queue from the environment: %v", err)
	}
}

// Put from a stream that cannot seek (a pipe from an encoder): stored
// whole, or not at all when the stream ends early.
func TestPutUnseekable(t *testing.T) {
	f := awstest.StartFauxqs(t)
	st := awsadapter.NewBlobStore(f.S3, f.CreateBucket(t, awstest.Name(t, "outputs")))
	body := bytes.Repeat([]byte("0123456789"), 50_000)
	tests := []struct {
		name    string
		send    int // bytes the stream delivers
		size    int64
		wantErr bool
	}{
		{"whole", len(body), int64(len(body)), false},
		{"longer stream is cut at size", len(body), 1000, false},
		{"short stream", 1000, int64(len(body)), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := "outputs/" + awstest.Name(t, "k")
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(writeAll(pw, body[:tc.send])) }()
			err := st.Put(t.Context(), key, pr, tc.size, "video/mp4")
			pr.CloseWithError(errors.New("test done"))
			if tc.wantErr {
				if err == nil {
					t.Fatal("Put succeeded")
				}
				if _, err := st.Attributes(t.Context(), key); !errors.Is(err, blob.ErrNotFound) {
					t.Errorf("Attributes after a failed Put = %v, want ErrNotFound", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			r, err := st.NewRangeReader(t.Context(), key, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, body[:tc.size]) {
				t.Errorf("stored %d bytes (%v), want the first %d", len(got), err, tc.size)
			}
		})
	}
}

func writeAll(w io.Writer, b []byte) error {
	_, err := w.Write(b)
	return err
}

// Every field of a job survives the store, not only those the
// conformance suite sets.
func TestJobRoundTrip(t *testing.T) {
	ddb := awstest.StartDynamoDB(t)
	table := awstest.Name(t, "jobs")
	ddb.CreateTable(t, awsadapter.JobTableSchema(table), nil)
	st := awsadapter.NewJobStore(ddb.Client, table)

	berlin := time.FixedZone("CEST", 2*3600)
	started, done := created.Add(time.Minute).In(berlin), created.Add(3*time.Minute+123456789)
	conf, offset, ssim := 7.25, -1, 0.93
	full := newJob("tenant-a", "job_full")
	full.Status, full.Stage, full.Progress = job.Succeeded, "", 1
	full.StartedAt, full.CompletedAt = &started, &done
	full.Video, full.Audio = job.Media{ContentType: "video/mp4", SizeBytes: 52_428_800}, job.Media{ContentType: "audio/wav", SizeBytes: 1}
	full.VideoValidated, full.AudioValidated, full.CancelRequested = true, true, true
	full.WebhookURL, full.NotifyEmail, full.ClientReference = "https://h.example.com/x?y=1", "a@example.com", "ref ü"
	full.Error = &job.Error{Code: "PROCESSING_FAILED", Message: "gpu: out of memory"}
	full.Metrics = &job.Metrics{SyncConfidence: &conf, SyncOffset: &offset, SSIM: &ssim, Frames: 250, DurationS: 10,
		ProcessingS: 42.5, StageSeconds: map[string]float64{"01|init-components": 0.5, "04|run-pipeline": 40}}
	full.OutputKey, full.OutputSize, full.Bundle = job.OutputKey("tenant-a", "job_full"), 1<<20, "v1.5.0"
	full.TraceHeader = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"

	zero := &job.Job{ID: "job_zero", Tenant: "tenant-a", Status: job.AwaitingUpload}
	for _, j := range []*job.Job{newJob("tenant-a", "job_min"), full, zero} {
		t.Run(j.ID, func(t *testing.T) {
			want, err := json.Marshal(j) // Version 0, as read back below
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Create(t.Context(), j, "", ""); err != nil {
				t.Fatal(err)
			}
			read, err := st.Get(t.Context(), "tenant-a", j.ID)
			if err != nil {
				t.Fatal(err)
			}
			read.Version = 0
			got, _ := json.Marshal(read)
			if !bytes.Equal(got, want) {
				t.Errorf("read back\n %s\nwant\n %s", got, want)
			}
		})
	}
}
