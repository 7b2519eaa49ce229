// Command app is the CDK app (cdk.json runs it): one LatentSync stack for
// the environment named in the context.
package main

import (
	"log"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/latentsync/latentsync-service/cdk/infra"
)

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	cfg, err := infra.ConfigFromContext(app.Node())
	if err != nil {
		log.Fatal(err)
	}
	if _, err := infra.NewStack(app, infra.StackName(cfg), cfg, &awscdk.StackProps{
		// Environment-agnostic: account and region come from the CLI's
		// credentials at deploy time, so synth needs no AWS lookups.
		Description: jsii.String("LatentSync lip-sync service (" + cfg.Environment + ")"),
	}); err != nil {
		log.Fatal(err)
	}
	app.Synth(nil)
}
