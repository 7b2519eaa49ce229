// Command notify is the notification Lambda: EventBridge routes job events
// here; it delivers the signed webhook (with retries) and the email.
package main

import (
	"context"
	"log"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/latentsync/latentsync-service/internal/awsenv"
	"github.com/latentsync/latentsync-service/internal/notify"
	"github.com/latentsync/latentsync-service/internal/webhook"
)

func main() {
	ctx := context.Background()
	env, err := awsenv.Load(ctx)
	if err != nil {
		log.Fatal(err)
	}
	secret, err := webhook.ParseSecret(os.Getenv(notify.SecretEnv))
	if err != nil || len(secret) == 0 {
		log.Fatalf("%s: a webhook signing secret is required", notify.SecretEnv)
	}
	cfg := notify.Config{
		Secrets:      notify.StaticSecret(secret),
		AllowPrivate: env.Flag(awsenv.PrivateWebhook),
		Logger:       slog.New(slog.NewJSONHandler(os.Stderr, nil)),
	}
	if from := env.Get(awsenv.EmailFrom); from != "" {
		cfg.Mailer = env.Mailer(from)
	}
	lambda.Start(notify.New(cfg).HandleEventBridge)
}
