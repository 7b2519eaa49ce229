package infra

import (
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

const (
	// JobSLA is the end-to-end time DESIGN.md section 6 alarms above (p95).
	JobSLA = 5 * time.Minute
	// JobVisibility is how long a received job stays hidden. Workers extend
	// it while they work, so it only bounds how long the job of a crashed
	// worker waits before another takes it: twice the SLA.
	JobVisibility = 2 * JobSLA
	// MaxReceives is how often a job message is delivered before it goes to
	// the dead-letter queue (a crash loop or poison message, not bad input).
	MaxReceives = 3
)

// Messaging is the jobs queue, its dead-letter queue, the queue that keeps
// failed asynchronous Lambda invocations, and the job event bus.
type Messaging struct {
	Jobs, JobsDLQ, AsyncFailures awssqs.Queue
	Bus                          awsevents.EventBus
}

func newMessaging(scope constructs.Construct, cfg Config, key awskms.IKey) *Messaging {
	c := constructs.NewConstruct(scope, jsii.String("Messaging"))
	m := &Messaging{}
	m.JobsDLQ = awssqs.NewQueue(c, jsii.String("JobsDLQ"), &awssqs.QueueProps{
		Encryption: awssqs.QueueEncryption_KMS, EncryptionMasterKey: key,
		EnforceSSL:      jsii.Bool(true),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
	})
	m.Jobs = awssqs.NewQueue(c, jsii.String("Jobs"), &awssqs.QueueProps{
		Encryption: awssqs.QueueEncryption_KMS, EncryptionMasterKey: key,
		// Reuse a data key for 5 minutes: a KMS call per message would cost more than SQS.
		DataKeyReuse:      awscdk.Duration_Minutes(jsii.Number(5)),
		EnforceSSL:        jsii.Bool(true),
		VisibilityTimeout: awscdk.Duration_Seconds(jsii.Number(JobVisibility.Seconds())),
		RetentionPeriod:   awscdk.Duration_Days(jsii.Number(4)),
		DeadLetterQueue:   &awssqs.DeadLetterQueue{Queue: m.JobsDLQ, MaxReceiveCount: jsii.Number(MaxReceives)},
	})
	m.AsyncFailures = awssqs.NewQueue(c, jsii.String("AsyncFailures"), &awssqs.QueueProps{
		Encryption: awssqs.QueueEncryption_KMS, EncryptionMasterKey: key,
		EnforceSSL:      jsii.Bool(true),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
	})
	cdknag.NagSuppressions_AddResourceSuppressions(m.AsyncFailures, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-SQS3"),
		Reason: jsii.String("This queue is itself the terminal store of failed asynchronous invocations " +
			"(Lambda on-failure destination and EventBridge target DLQ); it alarms when non-empty."),
	}}, jsii.Bool(true))
	m.Bus = awsevents.NewEventBus(c, jsii.String("JobEvents"), &awsevents.EventBusProps{
		EventBusName: jsii.String("latentsync-" + cfg.Environment),
	})
	return m
}
