package awstest

import (
	"context"
	_ "embed"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// FauxqsDir is the install directory under .deps when LATENTSYNC_FAUXQS is
// unset (the Makefile's FAUXQS_DIR).
const FauxqsDir = "fauxqs-1.9.2"

// fauxqs's own CLI binds every interface; this launcher binds 127.0.0.1.
//
//go:embed fauxqs/serve.mjs
var fauxqsLauncher string

// Fauxqs is a running fauxqs: SQS (JSON protocol) and S3 on one endpoint.
// It checks no signatures, so presigned URLs are honoured whatever they
// bind.
type Fauxqs struct {
	Endpoint string
	Config   aws.Config
	SQS      *sqs.Client
	S3       *s3.Client // path-style: bucket names are not resolvable hosts here
}

// StartFauxqs starts fauxqs on a free 127.0.0.1 port for the rest of the test.
func StartFauxqs(t testing.TB) *Fauxqs {
	t.Helper()
	dir := installDir(t, "LATENTSYNC_FAUXQS", FauxqsDir)
	node := lookPath(t, "node")
	requireFile(t, filepath.Join(dir, "node_modules", "fauxqs", "dist", "app.js"), "fauxqs")
	port := start(t, "fauxqs", "fauxqs ready", func(port int) *exec.Cmd {
		cmd := exec.Command(node, "--input-type=module", "--eval", fauxqsLauncher, dir, strconv.Itoa(port))
		cmd.Dir = dir
		return cmd
	})
	f := &Fauxqs{Endpoint: endpoint(port)}
	f.Config = Config(t, f.Endpoint)
	f.SQS = sqs.NewFromConfig(f.Config)
	f.S3 = s3.NewFromConfig(f.Config, func(o *s3.Options) { o.UsePathStyle = true })
	return f
}

// CreateBucket creates a bucket and returns its name.
func (f *Fauxqs) CreateBucket(t testing.TB, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := f.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("CreateBucket %s: %v", name, err)
	}
	return name
}

// CreateQueues creates a queue whose messages move to a new dead-letter
// queue after maxReceives receives (the RedrivePolicy infrastructure sets
// in production) and returns both URLs.
func (f *Fauxqs) CreateQueues(t testing.TB, name string, maxReceives int) (queueURL, dlqURL string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dlqURL = f.createQueue(ctx, t, name+"-dlq", nil)
	attrs, err := f.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(dlqURL), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		t.Fatalf("dead-letter queue ARN: %v", err)
	}
	policy, err := json.Marshal(map[string]string{
		"deadLetterTargetArn": attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)],
		"maxReceiveCount":     strconv.Itoa(maxReceives),
	})
	if err != nil {
		t.Fatal(err)
	}
	queueURL = f.createQueue(ctx, t, name, map[string]string{
		string(sqstypes.QueueAttributeNameRedrivePolicy): string(policy),
	})
	return queueURL, dlqURL
}

func (f *Fauxqs) createQueue(ctx context.Context, t testing.TB, name string, attrs map[string]string) string {
	t.Helper()
	out, err := f.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		t.Fatalf("CreateQueue %s: %v", name, err)
	}
	return aws.ToString(out.QueueUrl)
}
