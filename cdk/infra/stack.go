// Package infra defines the service's AWS infrastructure as one CDK stack,
// composed of small constructs: storage (buckets, malware scanning), data
// (job table), messaging (queues, event bus), functions (api, validate,
// notify behind canary-deployed aliases), the REST API with its WAF, the
// GPU workers (VPC, ECS on GPU instances, scaling) and operations (alarms,
// dashboard). Read it top to bottom like the design.
package infra

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3notifications"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	awsadapters "github.com/latentsync/latentsync-service/internal/adapters/aws"
	"github.com/latentsync/latentsync-service/internal/awsenv"
	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/notify"
	"github.com/latentsync/latentsync-service/internal/validate/s3event"
)

// NewStack builds the whole service for one environment.
func NewStack(scope constructs.Construct, id string, cfg Config, props *awscdk.StackProps) (awscdk.Stack, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	stack := awscdk.NewStack(scope, jsii.String(id), props)
	awscdk.Tags_Of(stack).Add(jsii.String("service"), jsii.String("latentsync"), nil)
	awscdk.Tags_Of(stack).Add(jsii.String("environment"), jsii.String(cfg.Environment), nil)

	key := newServiceKey(stack)
	topic := newAlarmTopic(stack, cfg, key)
	storage := newStorage(stack, cfg, key)
	table, err := newJobTable(stack, key)
	if err != nil {
		return nil, err
	}
	msg := newMessaging(stack, cfg, key)

	api := newFunction(stack, "ApiFunction", cfg, functionSpec{
		name: "api", description: "LatentSync HTTP API v1",
		env: map[string]*string{
			awsenv.JobsTable: table.TableName(), awsenv.UploadsBucket: storage.Uploads.BucketName(),
			awsenv.OutputsBucket: storage.Outputs.BucketName(), awsenv.EventBusName: msg.Bus.EventBusName(),
		},
		timeout: awscdk.Duration_Seconds(jsii.Number(20)), memoryMB: 512,
	}, msg)
	table.GrantReadWriteData(api.Fn)
	storage.Uploads.GrantPut(api.Fn, nil) // presigned PUT URLs sign as this role
	storage.Outputs.GrantRead(api.Fn, nil)
	msg.Bus.GrantPutEventsTo(api.Fn, nil)

	// validate runs ffprobe, which the zip runtime lacks: it is an image
	// with a static ffprobe beside its bootstrap.
	validate := newFunction(stack, "ValidateFunction", cfg, functionSpec{
		name: "validate", description: "Validates uploads and queues ready jobs",
		dockerfile: ValidateDockerfile,
		env: map[string]*string{
			awsenv.JobsTable: table.TableName(), awsenv.UploadsBucket: storage.Uploads.BucketName(),
			awsenv.JobsQueueURL: msg.Jobs.QueueUrl(), awsenv.EventBusName: msg.Bus.EventBusName(),
			awsenv.ModelBundle: jsii.String(cfg.ModelBundleVersion),
			// Judge an upload only once GuardDuty has tagged its verdict.
			awsenv.MalwareScanning: jsii.String(awsenv.ScanningGuardDuty),
		},
		timeout: awscdk.Duration_Minutes(jsii.Number(2)), memoryMB: 1024,
		// Uploads arrive in bursts; the job table and queue need no more.
		reserved: jsii.Number(20),
		async:    true,
	}, msg)
	table.GrantReadWriteData(validate.Fn)
	storage.Uploads.GrantRead(validate.Fn, nil) // includes GetObjectTagging: the malware verdict
	msg.Jobs.GrantSendMessages(validate.Fn)
	msg.Bus.GrantPutEventsTo(validate.Fn, nil)
	storage.Uploads.AddEventNotification(awss3.EventType_OBJECT_CREATED, awss3notifications.NewLambdaDestination(validate.Alias),
		&awss3.NotificationKeyFilter{Prefix: jsii.String(UploadsPrefix)})
	// GuardDuty reports each scan on the default bus. An upload whose scan
	// outlasts the notification's first try is validated again the moment
	// its verdict exists, rather than on a retry minutes later.
	awsevents.NewRule(stack, jsii.String("UploadScanResults"), &awsevents.RuleProps{
		Description: jsii.String("GuardDuty malware scan results of uploads to the validate function"),
		EventPattern: &awsevents.EventPattern{
			Source:     jsii.Strings(s3event.GuardDutySource),
			DetailType: jsii.Strings(s3event.ScanResultDetailType),
			Detail: &map[string]any{
				"s3ObjectDetails": map[string]any{
					"bucketName": []any{storage.Uploads.BucketName()},
					"objectKey":  []any{map[string]any{"prefix": UploadsPrefix}},
				},
			},
		},
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(validate.Alias, &awseventstargets.LambdaFunctionProps{
			DeadLetterQueue: msg.AsyncFailures,
			RetryAttempts:   jsii.Number(2),
		})},
	})
	// The same function expires jobs whose uploads never arrived and re-sends
	// a queue message lost between its send and the queued write.
	awsevents.NewRule(stack, jsii.String("UploadSweep"), &awsevents.RuleProps{
		Description: jsii.String("Expire abandoned uploads; recover lost queue messages"),
		Schedule:    awsevents.Schedule_Rate(awscdk.Duration_Minutes(jsii.Number(SweepMinutes))),
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(validate.Alias, &awseventstargets.LambdaFunctionProps{
			DeadLetterQueue: msg.AsyncFailures,
			RetryAttempts:   jsii.Number(2),
		})},
	})

	notifyFn := newNotify(stack, cfg, msg)

	restAPI := newAPI(stack, cfg, api.Alias)
	workers := newWorkers(stack, cfg, workerDeps{storage: storage, table: table, msg: msg, topic: topic})
	newOperations(stack, cfg, operationsDeps{
		topic: topic, msg: msg, workers: workers, api: restAPI,
		functions: []*function{api, validate, notifyFn},
	})

	for name, value := range map[string]*string{
		"ApiUrl":        restAPI.Url(),
		"UploadsBucket": storage.Uploads.BucketName(),
		"OutputsBucket": storage.Outputs.BucketName(),
		"ModelsBucket":  storage.Models.BucketName(),
		"JobsQueueUrl":  msg.Jobs.QueueUrl(),
		"JobsTable":     table.TableName(),
		"EventBusName":  msg.Bus.EventBusName(),
		"AlarmTopicArn": topic.TopicArn(),
	} {
		awscdk.NewCfnOutput(stack, jsii.String(name), &awscdk.CfnOutputProps{Value: value})
	}
	// CDK's own singleton functions (bucket notifications, log retention)
	// live at the stack root.
	cdknag.NagSuppressions_AddStackSuppressions(stack, &[]*cdknag.NagPackSuppression{
		{
			Id: jsii.String("AwsSolutions-IAM4"),
			Reason: jsii.String("CDK's BucketNotificationsHandler singleton uses AWSLambdaBasicExecutionRole " +
				"(log writing only) to configure the uploads bucket's notifications at deploy time."),
			AppliesTo: &[]interface{}{"Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"},
		},
		{
			Id: jsii.String("AwsSolutions-IAM5"),
			Reason: jsii.String("CDK's BucketNotificationsHandler needs s3:PutBucketNotification on buckets " +
				"it cannot name before they exist."),
			AppliesTo: &[]interface{}{"Resource::*"},
		},
	}, nil)
	return stack, nil
}

// newServiceKey is the customer managed key of the buckets, table, queues
// and alarm topic, with the service principals that must use it.
func newServiceKey(stack awscdk.Stack) awskms.Key {
	key := awskms.NewKey(stack, jsii.String("Key"), &awskms.KeyProps{
		Description:       jsii.String("LatentSync data at rest"),
		EnableKeyRotation: jsii.Bool(true),
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
	})
	// CloudWatch (alarms to the topic) and EventBridge (dead letters to a
	// queue) encrypt with this key on our behalf.
	key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("ServicesPublishEncrypted"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil), awsiam.NewServicePrincipal(jsii.String("events.amazonaws.com"), nil)},
		Actions:    jsii.Strings("kms:Decrypt", "kms:GenerateDataKey*"),
		Resources:  jsii.Strings("*"),
	}), nil)
	// Auto Scaling sends instance-launch error notifications to the topic
	// through its service-linked role.
	key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid: jsii.String("AutoScalingNotifications"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewArnPrincipal(stack.FormatArn(&awscdk.ArnComponents{
			Service: jsii.String("iam"), Region: jsii.String(""), Resource: jsii.String("role"),
			ResourceName: jsii.String("aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"),
		}))},
		Actions:   jsii.Strings("kms:Decrypt", "kms:GenerateDataKey*"),
		Resources: jsii.Strings("*"),
	}), nil)
	return key
}

// newNotify is the notification function, triggered by job events on the bus.
func newNotify(stack awscdk.Stack, cfg Config, msg *Messaging) *function {
	secret := awssecretsmanager.NewSecret(stack, jsii.String("WebhookSecret"), &awssecretsmanager.SecretProps{
		Description: jsii.String("Signing secret of job webhooks (Standard Webhooks)"),
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			PasswordLength: jsii.Number(48), ExcludePunctuation: jsii.Bool(true),
		},
	})
	cdknag.NagSuppressions_AddResourceSuppressions(secret, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-SMG4"),
		Reason: jsii.String("Receivers verify webhooks with this secret; rotating it without a dual-secret " +
			"window would break every receiver's verification. Rotated by a planned procedure."),
	}}, nil)
	env := map[string]*string{
		// The notify binary reads the secret from its environment; the
		// template holds only a dynamic reference, resolved at deploy.
		notify.SecretEnv: secret.SecretValue().UnsafeUnwrap(),
	}
	if cfg.EmailFrom != "" {
		env[awsenv.EmailFrom] = jsii.String(cfg.EmailFrom)
	}
	fn := newFunction(stack, "NotifyFunction", cfg, functionSpec{
		name: "notify", description: "Delivers signed webhooks and emails for job events",
		env:     env,
		timeout: awscdk.Duration_Minutes(jsii.Number(1)), memoryMB: 256,
		// Caps the burst that receivers' endpoints and SES see.
		reserved: jsii.Number(10),
		async:    true,
	}, msg)
	if cfg.EmailFrom != "" {
		fn.Fn.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Actions: jsii.Strings("ses:SendEmail"),
			Resources: &[]*string{stack.FormatArn(&awscdk.ArnComponents{
				Service: jsii.String("ses"), Resource: jsii.String("identity"), ResourceName: jsii.String("*"),
			})},
		}))
	}
	awsevents.NewRule(stack, jsii.String("JobEventsToNotify"), &awsevents.RuleProps{
		Description: jsii.String("Terminal job events to the notify function"),
		EventBus:    msg.Bus,
		EventPattern: &awsevents.EventPattern{
			Source:     jsii.Strings(awsadapters.EventSource),
			DetailType: jsii.Strings(job.EventSucceeded, job.EventFailed, job.EventCanceled),
		},
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(fn.Alias, &awseventstargets.LambdaFunctionProps{
			DeadLetterQueue: msg.AsyncFailures,
			RetryAttempts:   jsii.Number(185),
			MaxEventAge:     awscdk.Duration_Hours(jsii.Number(24)),
		})},
	})
	return fn
}

// ValidateDockerfile builds the validate function's image, relative to the
// source dir.
const ValidateDockerfile = "lambdas/validate/Dockerfile"

// SweepMinutes is how often the upload sweep runs.
const SweepMinutes = 5

// StackName is the stack's name for an environment.
func StackName(cfg Config) string { return fmt.Sprintf("LatentSync-%s", cfg.Environment) }
