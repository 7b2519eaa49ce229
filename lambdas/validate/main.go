// Command validate is the upload-validation Lambda: S3 ObjectCreated events
// on the uploads bucket (a job whose two inputs are valid is queued once),
// GuardDuty malware scan results (MALWARE_SCANNING=guardduty: an upload is
// judged only once its verdict exists) and a schedule that expires jobs
// whose uploads never arrived.
package main

import (
	"context"
	"encoding/json"
	"log"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/latentsync/latentsync-service/internal/awsenv"
	"github.com/latentsync/latentsync-service/internal/validate"
	"github.com/latentsync/latentsync-service/internal/validate/s3event"
)

func main() {
	ctx := context.Background()
	env, err := awsenv.Load(ctx)
	if err != nil {
		log.Fatal(err)
	}
	v, err := env.Require(awsenv.JobsTable, awsenv.UploadsBucket, awsenv.JobsQueueURL, awsenv.EventBusName)
	if err != nil {
		log.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg := validate.Config{Bucket: v[awsenv.UploadsBucket], Bundle: env.Get(awsenv.ModelBundle), Logger: logger}
	switch scanning := env.Get(awsenv.MalwareScanning); scanning {
	case awsenv.ScanningGuardDuty:
		cfg.Screener = env.MalwareScreener()
	case "":
	default:
		// A typo must not silently turn scanning off.
		log.Fatalf("%s=%q: want %q or unset", awsenv.MalwareScanning, scanning, awsenv.ScanningGuardDuty)
	}
	validator := validate.New(
		env.Jobs(v[awsenv.JobsTable]),
		env.Bucket(v[awsenv.UploadsBucket]),
		env.Queue(v[awsenv.JobsQueueURL]),
		env.Events(v[awsenv.EventBusName]),
		cfg,
	)
	// S3 ObjectCreated notifications, GuardDuty scan results, and the
	// schedule that runs the expiry sweep.
	lambda.Start(func(ctx context.Context, raw json.RawMessage) error {
		return s3event.Invoke(ctx, logger, validator, raw)
	})
}
