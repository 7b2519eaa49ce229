package infra

import (
	"path/filepath"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscodedeploy"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecrassets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdadestinations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/interfaces/interfacesawscloudwatch"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// LiveAlias is the alias every trigger invokes; CodeDeploy shifts it from
// the previous version to the new one.
const LiveAlias = "live"

// function is one Lambda function behind its live alias.
type function struct {
	Fn    awslambda.Function
	Alias awslambda.Alias
	// Errors is the alarm CodeDeploy watches while it shifts traffic.
	Errors awscloudwatch.Alarm
}

type functionSpec struct {
	name        string // asset directory under cfg.LambdaAssets (zip functions)
	description string
	// dockerfile, when set, makes the function a container image built from
	// this Dockerfile (relative to cfg.SourceDir) instead of a zip of
	// cfg.LambdaAssets/<name>/bootstrap: for functions that need programs
	// the provided.al2023 runtime lacks.
	dockerfile string
	env        map[string]*string
	timeout    awscdk.Duration
	memoryMB   float64
	// reserved caps concurrency where a burst would hurt what is downstream
	// (nil: the account pool).
	reserved *float64
	// async: invoked asynchronously (S3, EventBridge); failures past the
	// retries land in the failures queue.
	async bool
}

func newFunction(scope constructs.Construct, id string, cfg Config, spec functionSpec, m *Messaging) *function {
	c := constructs.NewConstruct(scope, jsii.String(id))
	logs := awslogs.NewLogGroup(c, jsii.String("Logs"), &awslogs.LogGroupProps{
		Retention:     retention(cfg.LogDays),
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	code, runtime, handler := functionCode(cfg, spec)
	fn := awslambda.NewFunction(c, jsii.String("Function"), &awslambda.FunctionProps{
		Description:                  jsii.String(spec.description),
		Runtime:                      runtime,
		Architecture:                 awslambda.Architecture_ARM_64(),
		Handler:                      handler,
		Code:                         code,
		Environment:                  &spec.env,
		Timeout:                      spec.timeout,
		MemorySize:                   jsii.Number(spec.memoryMB),
		Tracing:                      awslambda.Tracing_ACTIVE,
		LogGroup:                     logs,
		ReservedConcurrentExecutions: spec.reserved,
	})
	aliasProps := &awslambda.AliasProps{AliasName: jsii.String(LiveAlias), Version: fn.CurrentVersion()}
	if spec.async {
		aliasProps.OnFailure = awslambdadestinations.NewSqsDestination(m.AsyncFailures)
		aliasProps.RetryAttempts = jsii.Number(2)
		aliasProps.MaxEventAge = awscdk.Duration_Hours(jsii.Number(6))
	}
	alias := awslambda.NewAlias(c, jsii.String("Live"), aliasProps)
	errors := awscloudwatch.NewAlarm(c, jsii.String("Errors"), &awscloudwatch.AlarmProps{
		AlarmDescription: jsii.String(spec.name + " function errors (rolls back a canary deployment)"),
		Metric: alias.MetricErrors(&awscloudwatch.MetricOptions{
			Period: awscdk.Duration_Minutes(jsii.Number(1)), Statistic: jsii.String("Sum"),
		}),
		Threshold:          jsii.Number(1),
		EvaluationPeriods:  jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	awscodedeploy.NewLambdaDeploymentGroup(c, jsii.String("Deployment"), &awscodedeploy.LambdaDeploymentGroupProps{
		Alias:            alias,
		DeploymentConfig: awscodedeploy.LambdaDeploymentConfig_CANARY_10PERCENT_5MINUTES(),
		Alarms:           &[]interfacesawscloudwatch.IAlarmRef{errors},
		AutoRollback: &awscodedeploy.AutoRollbackConfig{
			FailedDeployment: jsii.Bool(true), DeploymentInAlarm: jsii.Bool(true),
		},
	})
	cdknag.NagSuppressions_AddResourceSuppressions(c, &[]*cdknag.NagPackSuppression{
		{
			Id: jsii.String("AwsSolutions-IAM4"),
			Reason: jsii.String("AWSLambdaBasicExecutionRole (log writing only) on the function role and " +
				"AWSCodeDeployRoleForLambdaLimited on the deployment role are AWS's narrowest policies for those jobs."),
		},
		{
			Id: jsii.String("AwsSolutions-IAM5"),
			Reason: jsii.String("Wildcards come from CDK grants on this stack's own resources: objects of one bucket " +
				"(bucket/*), the KMS GenerateDataKey*/ReEncrypt* action families on the service key, and X-Ray " +
				"PutTraceSegments, which supports no resource scoping."),
		},
	}, jsii.Bool(true))
	return &function{Fn: fn, Alias: alias, Errors: errors}
}

// functionCode is a zip of the function's bootstrap for the provided.al2023
// runtime, or, with spec.dockerfile, an image asset for arm64 that carries
// its own runtime.
func functionCode(cfg Config, spec functionSpec) (awslambda.Code, awslambda.Runtime, *string) {
	if spec.dockerfile == "" {
		return awslambda.Code_FromAsset(jsii.String(filepath.Join(cfg.LambdaAssets, spec.name)), nil),
			awslambda.Runtime_PROVIDED_AL2023(), jsii.String("bootstrap")
	}
	return awslambda.Code_FromAssetImage(jsii.String(cfg.SourceDir), &awslambda.AssetImageCodeProps{
		File: jsii.String(spec.dockerfile),
		// The context is the repository root, allow-listed by .dockerignore
		// (which also sets the asset hash). The worker's sources are allowed
		// there for the worker image; leaving them out here keeps a worker
		// change from rebuilding and canary-deploying this function.
		IgnoreMode: awscdk.IgnoreMode_DOCKER,
		Exclude:    jsii.Strings("gpuworker"),
		Platform:   awsecrassets.Platform_LINUX_ARM64(),
	}), awslambda.Runtime_FROM_IMAGE(), awslambda.Handler_FROM_IMAGE()
}

func retention(days int) awslogs.RetentionDays {
	// RetentionDays are the values CloudWatch Logs accepts; round up to one.
	for _, d := range []struct {
		n int
		r awslogs.RetentionDays
	}{
		{1, awslogs.RetentionDays_ONE_DAY}, {3, awslogs.RetentionDays_THREE_DAYS}, {5, awslogs.RetentionDays_FIVE_DAYS},
		{7, awslogs.RetentionDays_ONE_WEEK}, {14, awslogs.RetentionDays_TWO_WEEKS}, {30, awslogs.RetentionDays_ONE_MONTH},
		{60, awslogs.RetentionDays_TWO_MONTHS}, {90, awslogs.RetentionDays_THREE_MONTHS}, {120, awslogs.RetentionDays_FOUR_MONTHS},
		{150, awslogs.RetentionDays_FIVE_MONTHS}, {180, awslogs.RetentionDays_SIX_MONTHS}, {365, awslogs.RetentionDays_ONE_YEAR},
	} {
		if days <= d.n {
			return d.r
		}
	}
	return awslogs.RetentionDays_TWO_YEARS
}
