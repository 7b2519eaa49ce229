// Command api is the API Lambda: API Gateway (REST, API keys) proxies every
// /v1 route here; the tenant is the API key's id from the request context.
package main

import (
	"context"
	"log"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/latentsync/latentsync-service/internal/api"
	"github.com/latentsync/latentsync-service/internal/awsenv"
)

func main() {
	ctx := context.Background()
	env, err := awsenv.Load(ctx)
	if err != nil {
		log.Fatal(err)
	}
	v, err := env.Require(awsenv.JobsTable, awsenv.UploadsBucket, awsenv.OutputsBucket, awsenv.EventBusName)
	if err != nil {
		log.Fatal(err)
	}
	h, err := api.New(api.Config{
		Jobs:    env.Jobs(v[awsenv.JobsTable]),
		Blobs:   env.Bucket(v[awsenv.UploadsBucket]),
		Outputs: env.Bucket(v[awsenv.OutputsBucket]),
		Events:  env.Events(v[awsenv.EventBusName]),
		Auth:    api.GatewayAuth{},
		// Only the emulator tests set it: production refuses private receivers.
		LocalWebhooks: env.Flag(awsenv.PrivateWebhook),
		Logger:        slog.New(slog.NewJSONHandler(os.Stderr, nil)),
	})
	if err != nil {
		log.Fatal(err)
	}
	lambda.Start(httpadapter.New(h).ProxyWithContext)
}
