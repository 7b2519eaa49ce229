// Package lambdas_test runs the three Lambda binaries, built for linux/amd64,
// under the Lambda Runtime Interface Emulator against DynamoDB Local and
// fauxqs (SQS + S3): create -> upload -> validate -> queue -> worker ->
// succeeded -> notify, with the sample events of events/ as the payloads.
package lambdas_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/latentsync/latentsync-service/gpuworker/bundle"
	"github.com/latentsync/latentsync-service/gpuworker/infer/infertest"
	"github.com/latentsync/latentsync-service/gpuworker/pipeline"
	"github.com/latentsync/latentsync-service/gpuworker/worker"
	awsadapters "github.com/latentsync/latentsync-service/internal/adapters/aws"
	"github.com/latentsync/latentsync-service/internal/adapters/aws/awstest"
	"github.com/latentsync/latentsync-service/internal/apiclient"
	"github.com/latentsync/latentsync-service/internal/blob"
	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/webhook"
	"github.com/latentsync/latentsync-service/internal/webhook/webhooktest"
)

const (
	sampleVideo   = "../testdata/sample/face.mp4"
	sampleAudio   = "../testdata/sample/speech.wav"
	webhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	tenant        = "acme" // the API key id in events/apigw-*.json
)

func TestServiceUnderRuntimeEmulator(t *testing.T) {
	rie := rieBinary(t)
	ddb := awstest.StartDynamoDB(t)
	fq := awstest.StartFauxqs(t)
	table := awstest.Name(t, "jobs")
	ddb.CreateTable(t, awsadapters.JobTableSchema(table), awsadapters.JobTableTTL(table))
	uploads := fq.CreateBucket(t, awstest.Name(t, "uploads"))
	outputs := fq.CreateBucket(t, awstest.Name(t, "outputs"))
	queueURL, _ := fq.CreateQueues(t, awstest.Name(t, "jobs"), 3)
	bus := newEventCapture(t)
	hooks := webhooktest.Start(t, webhookKey(t))

	env := map[string]string{
		"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
		"AWS_EC2_METADATA_DISABLED": "true",
		"AWS_ENDPOINT_URL_DYNAMODB": ddb.Endpoint, "AWS_ENDPOINT_URL_S3": fq.Endpoint,
		"AWS_ENDPOINT_URL_SQS": fq.Endpoint, "AWS_ENDPOINT_URL_EVENTBRIDGE": bus.url,
		"S3_FORCE_PATH_STYLE": "true", "JOBS_TABLE": table, "UPLOADS_BUCKET": uploads,
		"OUTPUTS_BUCKET": outputs, "JOBS_QUEUE_URL": queueURL, "EVENT_BUS_NAME": "latentsync-test",
		"LATENTSYNC_WEBHOOK_SECRET": webhookSecret, "ALLOW_PRIVATE_WEBHOOKS": "true",
	}
	bin := t.TempDir()
	apiFn := startFunction(t, rie, buildLambda(t, bin, "api"), env)
	validateFn := startFunction(t, rie, buildLambda(t, bin, "validate"), env)
	notifyFn := startFunction(t, rie, buildLambda(t, bin, "notify"), env)

	// 1. Create the job through API Gateway's proxy event.
	video, audio := fileSize(t, sampleVideo), fileSize(t, sampleAudio)
	create := loadEvent[events.APIGatewayProxyRequest](t, "apigw-create-job.json")
	create.Body = fmt.Sprintf(`{"video":{"content_type":"video/mp4","size_bytes":%d},"audio":{"content_type":"audio/wav","size_bytes":%d},"webhook":{"url":%q}}`, video, audio, hooks.URL)
	var createResp events.APIGatewayProxyResponse
	invoke(t, apiFn, create, &createResp)
	if createResp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", createResp.StatusCode, createResp.Body)
	}
	var created apiclient.Created
	if err := json.Unmarshal([]byte(createResp.Body), &created); err != nil {
		t.Fatal(err)
	}

	// 2. Upload both files with plain HTTP PUTs to the presigned URLs.
	ctx := context.Background()
	for in, path := range map[job.Input]string{job.VideoInput: sampleVideo, job.AudioInput: sampleAudio} {
		if err := apiclient.Upload(ctx, nil, created.Uploads[in], path); err != nil {
			t.Fatal(err)
		}
	}

	// 3. S3 delivers ObjectCreated for each upload, the video one twice.
	for _, up := range []struct {
		file, key string
		size      int64
	}{
		{"s3-object-created-video.json", job.UploadKey(tenant, created.ID, job.VideoInput), video},
		{"s3-object-created-audio.json", job.UploadKey(tenant, created.ID, job.AudioInput), audio},
		{"s3-object-created-video.json", job.UploadKey(tenant, created.ID, job.VideoInput), video},
	} {
		ev := loadEvent[events.S3Event](t, up.file)
		ev.Records[0].S3.Bucket.Name = uploads
		ev.Records[0].S3.Object.Key = up.key
		ev.Records[0].S3.Object.Size = up.size
		var out any
		invoke(t, validateFn, ev, &out)
	}
	if got := getJob(t, apiFn, created.ID); got.Status != job.Queued {
		t.Fatalf("after validation: %s", got.Status)
	}
	if n := queueDepth(t, fq.SQS, queueURL); n != 1 {
		t.Fatalf("%d messages queued, want exactly 1", n)
	}

	// 4. A GPU worker (in process, real pipeline, AWS adapters) runs it.
	runWorker(t, fq, ddb, table, uploads, outputs, queueURL, bus.url)
	deadline := time.Now().Add(2 * time.Minute)
	var final job.View
	for final = getJob(t, apiFn, created.ID); !final.Status.Terminal(); final = getJob(t, apiFn, created.ID) {
		if time.Now().After(deadline) {
			t.Fatalf("job still %s", final.Status)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if final.Status != job.Succeeded || final.Metrics == nil || final.Metrics.Frames != 160 || final.Output == nil {
		t.Fatalf("job %+v", final)
	}
	out := filepath.Join(t.TempDir(), "result.mp4")
	if n, err := apiclient.Download(ctx, nil, final.Output.URL, out); err != nil || n == 0 {
		t.Fatalf("download result: %d bytes, %v", n, err)
	}

	// 5. EventBridge routes job.succeeded to notify, which signs the webhook.
	ev := bus.wait(t, job.EventSucceeded)
	var none any
	invoke(t, notifyFn, ev, &none)
	delivery := hooks.Next(t, 30*time.Second)
	if delivery["type"] != job.EventSucceeded || delivery["data"].(map[string]any)["id"] != created.ID {
		t.Fatalf("webhook %v", delivery)
	}
}

// rieBinary is the Runtime Interface Emulator the Makefile installs.
func rieBinary(t *testing.T) string {
	t.Helper()
	p := os.Getenv("LATENTSYNC_RIE")
	if p == "" {
		p = "../.deps/bin/aws-lambda-rie"
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("LATENTSYNC_REQUIRE_EMULATORS") != "" || os.Getenv("CI") != "" {
			t.Fatalf("Lambda Runtime Interface Emulator missing: %v (make test installs it)", err)
		}
		t.Skipf("Lambda Runtime Interface Emulator missing (%v): run make test", err)
	}
	abs, _ := filepath.Abs(p)
	return abs
}

func buildLambda(t *testing.T, dir, name string) string {
	t.Helper()
	out := filepath.Join(dir, name, "bootstrap")
	cmd := exec.Command("go", "build", "-o", out, "./"+name)
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, msg)
	}
	return out
}

// startFunction runs one function's bootstrap under the emulator.
func startFunction(t *testing.T, rie, bootstrap string, env map[string]string) string {
	t.Helper()
	addr, runtimeAPI := freeAddr(t), freeAddr(t)
	// Each emulator needs its own Runtime API port (9001 by default).
	cmd := exec.Command(rie, "--runtime-interface-emulator-address", addr, "--runtime-api-address", runtimeAPI, bootstrap)
	cmd.Dir = filepath.Dir(bootstrap)
	cmd.Env = append(os.Environ(), "AWS_LAMBDA_FUNCTION_TIMEOUT=300")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s log:\n%s", filepath.Base(filepath.Dir(bootstrap)), logs.String())
		}
	})
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "http://" + addr + "/2015-03-31/functions/function/invocations"
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("runtime emulator for %s did not listen", bootstrap)
	return ""
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func invoke(t *testing.T, url string, payload, out any) {
	t.Helper()
	body, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || bytes.Contains(raw, []byte(`"errorType"`)) {
		t.Fatalf("invoke: %d %s", resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("invoke response %s: %v", raw, err)
	}
}

func getJob(t *testing.T, apiFn, id string) job.View {
	t.Helper()
	req := loadEvent[events.APIGatewayProxyRequest](t, "apigw-get-job.json")
	req.Path = "/v1/jobs/" + id
	req.PathParameters = map[string]string{"proxy": "v1/jobs/" + id}
	var resp events.APIGatewayProxyResponse
	invoke(t, apiFn, req, &resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("get job: %d %s", resp.StatusCode, resp.Body)
	}
	var v job.View
	if err := json.Unmarshal([]byte(resp.Body), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func loadEvent[T any](t *testing.T, name string) T {
	t.Helper()
	var v T
	raw, err := os.ReadFile(filepath.Join("../events", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("%v (make test makes the sample)", err)
	}
	return st.Size()
}

func queueDepth(t *testing.T, c *sqs.Client, url string) int {
	t.Helper()
	out, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages},
	})
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)])
	return n
}

func runWorker(t *testing.T, fq *awstest.Fauxqs, ddb *awstest.DynamoDB, table, uploads, outputs, queueURL, busURL string) {
	t.Helper()
	b, err := bundle.Load(context.Background(), infertest.Runtime(t), "../testdata/bundle")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	p, err := pipeline.New(b, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var outputStore blob.Store = awsadapters.NewBlobStore(fq.S3, outputs)
	w, err := worker.New(worker.Config{
		Queue:   awsadapters.NewQueue(fq.SQS, queueURL),
		Jobs:    awsadapters.NewJobStore(ddb.Client, table),
		Inputs:  awsadapters.NewBlobStore(fq.S3, uploads),
		Outputs: outputStore,
		Events: awsadapters.NewPublisher(eventbridge.NewFromConfig(fq.Config, func(o *eventbridge.Options) {
			o.BaseEndpoint = aws.String(busURL)
		}), "latentsync-test"),
		Pipeline: p, Wait: time.Second, Visibility: time.Minute,
		WorkDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// eventCapture speaks just enough of EventBridge's PutEvents to stand in
// for the bus; EventBridge has no emulator here. Captured entries come back
// as the events an EventBridge rule hands the notify function.
type eventCapture struct {
	url    string
	mu     sync.Mutex
	events []events.CloudWatchEvent
}

func newEventCapture(t *testing.T) *eventCapture {
	c := &eventCapture{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") != "AWSEvents.PutEvents" {
			http.Error(w, "unsupported", http.StatusBadRequest)
			return
		}
		var in struct {
			Entries []struct{ Source, DetailType, Detail, EventBusName string }
		}
		json.NewDecoder(r.Body).Decode(&in)
		c.mu.Lock()
		var ids []string
		for i, e := range in.Entries {
			c.events = append(c.events, events.CloudWatchEvent{
				Version: "0", ID: fmt.Sprintf("evt-%d-%d", len(c.events), i), DetailType: e.DetailType,
				Source: e.Source, AccountID: "123456789012", Time: time.Now().UTC(), Region: "us-east-1",
				Resources: []string{}, Detail: json.RawMessage(e.Detail),
			})
			ids = append(ids, fmt.Sprintf(`{"EventId":"evt-%d"}`, i))
		}
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		fmt.Fprintf(w, `{"FailedEntryCount":0,"Entries":[%s]}`, strings.Join(ids, ","))
	}))
	t.Cleanup(srv.Close)
	c.url = srv.URL
	return c
}

func (c *eventCapture) wait(t *testing.T, detailType string) events.CloudWatchEvent {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		c.mu.Lock()
		for _, e := range c.events {
			if e.DetailType == detailType {
				c.mu.Unlock()
				return e
			}
		}
		c.mu.Unlock()
	}
	t.Fatalf("no %s event published", detailType)
	return events.CloudWatchEvent{}
}

func webhookKey(t *testing.T) []byte {
	t.Helper()
	key, err := webhook.ParseSecret(webhookSecret)
	if err != nil {
		t.Fatal(err)
	}
	return key
}
