// Package awsenv reads a function's configuration from its environment (set
// by the CDK app) and builds the AWS adapters from SDK v2 clients. Endpoints
// come from the SDK's standard variables (AWS_ENDPOINT_URL_*), so the same
// binaries run against AWS and against the emulators in tests.
package awsenv

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	awsadapters "github.com/latentsync/latentsync-service/internal/adapters/aws"
)

// Variable names; the CDK app sets them on every function and task.
const (
	JobsTable      = "JOBS_TABLE"
	UploadsBucket  = "UPLOADS_BUCKET"
	OutputsBucket  = "OUTPUTS_BUCKET"
	JobsQueueURL   = "JOBS_QUEUE_URL"
	JobsDLQURL     = "JOBS_DLQ_URL" // the jobs queue's dead-letter queue
	ModelBucket    = "MODEL_BUCKET" // model bundles under models/latentsync/{version}/
	EventBusName   = "EVENT_BUS_NAME"
	EmailFrom      = "EMAIL_FROM"
	ModelBundle    = "MODEL_BUNDLE_VERSION"
	S3PathStyle    = "S3_FORCE_PATH_STYLE"    // emulators only
	PrivateWebhook = "ALLOW_PRIVATE_WEBHOOKS" // tests only: the notify function never does in production
	// MalwareScanning names the scanner whose verdict validation waits for:
	// ScanningGuardDuty, or unset for none.
	MalwareScanning = "MALWARE_SCANNING"
)

// ScanningGuardDuty is MalwareScanning's value when GuardDuty Malware
// Protection for S3 scans the uploads bucket.
const ScanningGuardDuty = "guardduty"

// Env is the loaded configuration.
type Env struct {
	AWS    aws.Config
	lookup func(string) string
}

// Load reads the SDK configuration (region, credentials, endpoints).
func Load(ctx context.Context) (*Env, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	return &Env{AWS: cfg, lookup: os.Getenv}, nil
}

// Require returns the named variables or an error naming every missing one.
func (e *Env) Require(names ...string) (map[string]string, error) {
	out := map[string]string{}
	var missing []string
	for _, n := range names {
		v := e.lookup(n)
		if v == "" {
			missing = append(missing, n)
		}
		out[n] = v
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("environment variables not set: %v", missing)
	}
	return out, nil
}

// Get returns an optional variable.
func (e *Env) Get(name string) string { return e.lookup(name) }

// Flag reads an optional boolean variable (false when unset or unparsable).
func (e *Env) Flag(name string) bool {
	b, _ := strconv.ParseBool(e.lookup(name))
	return b
}

// Jobs is the DynamoDB job store.
func (e *Env) Jobs(table string) *awsadapters.JobStore {
	return awsadapters.NewJobStore(dynamodb.NewFromConfig(e.AWS), table)
}

// Bucket is an S3 blob store.
func (e *Env) Bucket(name string) *awsadapters.BlobStore {
	pathStyle := e.Flag(S3PathStyle)
	return awsadapters.NewBlobStore(s3.NewFromConfig(e.AWS, func(o *s3.Options) { o.UsePathStyle = pathStyle }), name)
}

// Queue is an SQS queue.
func (e *Env) Queue(url string) *awsadapters.Queue {
	return awsadapters.NewQueue(sqs.NewFromConfig(e.AWS), url)
}

// Events publishes job events to EventBridge.
func (e *Env) Events(bus string) *awsadapters.Publisher {
	return awsadapters.NewPublisher(eventbridge.NewFromConfig(e.AWS), bus)
}

// MalwareScreener reads GuardDuty's scan verdicts from object tags.
func (e *Env) MalwareScreener() *awsadapters.MalwareScreener {
	pathStyle := e.Flag(S3PathStyle)
	return awsadapters.NewMalwareScreener(s3.NewFromConfig(e.AWS, func(o *s3.Options) { o.UsePathStyle = pathStyle }))
}

// Mailer sends email through SES.
func (e *Env) Mailer(from string) *awsadapters.Mailer {
	return awsadapters.NewMailer(sesv2.NewFromConfig(e.AWS), from, "")
}
