package infra

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigateway"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/latentsync/latentsync-service/internal/metrics"
)

// Alarm thresholds of DESIGN.md section 6.
const (
	EndToEndP95Seconds = 300 // p95 end-to-end over 5 minutes
	FailureRatePercent = 5   // failed / finished over 15 minutes
	IdleGPUMinutes     = 30  // instances beyond the minimum with nothing queued
)

func newAlarmTopic(scope constructs.Construct, cfg Config, key awskms.IKey) awssns.Topic {
	topic := awssns.NewTopic(scope, jsii.String("Alarms"), &awssns.TopicProps{
		DisplayName: jsii.String("LatentSync " + cfg.Environment + " alarms"),
		MasterKey:   key,
		EnforceSSL:  jsii.Bool(true),
	})
	if cfg.AlarmEmail != "" {
		topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(cfg.AlarmEmail), nil))
	}
	return topic
}

type operationsDeps struct {
	topic     awssns.ITopic
	msg       *Messaging
	workers   *Workers
	api       awsapigateway.RestApi
	functions []*function
}

// newOperations creates the alarms of DESIGN.md section 6 and the dashboard.
func newOperations(scope constructs.Construct, cfg Config, d operationsDeps) {
	c := constructs.NewConstruct(scope, jsii.String("Operations"))
	ns := MetricsNamespace(cfg)
	metric := func(name, stat string, period awscdk.Duration) awscloudwatch.Metric {
		return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace: jsii.String(ns), MetricName: jsii.String(name), Statistic: jsii.String(stat), Period: period,
		})
	}
	minutes := func(n float64) awscdk.Duration { return awscdk.Duration_Minutes(jsii.Number(n)) }
	action := awscloudwatchactions.NewSnsAction(d.topic)
	alarm := func(id, description string, m awscloudwatch.IMetric, op awscloudwatch.ComparisonOperator, threshold, periods float64) awscloudwatch.Alarm {
		a := awscloudwatch.NewAlarm(c, jsii.String(id), &awscloudwatch.AlarmProps{
			AlarmDescription:   jsii.String(description),
			Metric:             m,
			ComparisonOperator: op,
			Threshold:          jsii.Number(threshold),
			EvaluationPeriods:  jsii.Number(periods),
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		a.AddAlarmAction(action)
		return a
	}
	above := awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD
	below := awscloudwatch.ComparisonOperator_LESS_THAN_THRESHOLD

	endToEnd := metric(metrics.EndToEndSeconds, "p95", minutes(5))
	alarm("EndToEndP95", "p95 end-to-end job time above 5 minutes for 15 minutes", endToEnd, above, EndToEndP95Seconds, 3)

	failureRate := awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression: jsii.String("IF(FILL(failed, 0) + FILL(succeeded, 0) > 0, 100 * FILL(failed, 0) / (FILL(failed, 0) + FILL(succeeded, 0)), 0)"),
		Label:      jsii.String("Job failure rate (%)"),
		Period:     minutes(15),
		UsingMetrics: &map[string]awscloudwatch.IMetric{
			"failed":    metric(metrics.JobsFailed, "Sum", minutes(15)),
			"succeeded": metric(metrics.JobsSucceeded, "Sum", minutes(15)),
		},
	})
	alarm("FailureRate", "more than 5 % of jobs failed in 15 minutes", failureRate, above, FailureRatePercent, 1)

	// The workers settle dead letters (fail their jobs) as they arrive, so a
	// dead letter is mostly in flight, not visible: count both.
	dead := awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression: jsii.String("FILL(visible, 0) + FILL(inflight, 0)"),
		Label:      jsii.String("Messages in the jobs dead-letter queue"),
		Period:     minutes(1),
		UsingMetrics: &map[string]awscloudwatch.IMetric{
			"visible":  d.msg.JobsDLQ.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Statistic: jsii.String("Maximum"), Period: minutes(1)}),
			"inflight": d.msg.JobsDLQ.MetricApproximateNumberOfMessagesNotVisible(&awscloudwatch.MetricOptions{Statistic: jsii.String("Maximum"), Period: minutes(1)}),
		},
	})
	alarm("JobsDLQ", "job messages in the dead-letter queue: an engineer is needed", dead, above, 0, 1)
	alarm("AsyncFailures", "asynchronous Lambda invocations or job events that failed past their retries",
		d.msg.AsyncFailures.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Statistic: jsii.String("Maximum"), Period: minutes(1)}),
		above, 0, 1)

	instances := awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace: jsii.String("AWS/AutoScaling"), MetricName: jsii.String("GroupInServiceInstances"),
		DimensionsMap: &map[string]*string{"AutoScalingGroupName": d.workers.Group.AutoScalingGroupName()},
		Statistic:     jsii.String("Minimum"), Period: minutes(5),
	})
	queued := d.msg.Jobs.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Statistic: jsii.String("Maximum"), Period: minutes(5)})
	inFlight := d.msg.Jobs.MetricApproximateNumberOfMessagesNotVisible(&awscloudwatch.MetricOptions{Statistic: jsii.String("Maximum"), Period: minutes(5)})
	idle := awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression: jsii.String(fmt.Sprintf("IF(FILL(queued, 0) + FILL(inflight, 0) == 0, FILL(instances, 0) - %d, 0)", cfg.MinWorkers)),
		Label:      jsii.String("GPU instances above the minimum with no job"),
		Period:     minutes(5),
		UsingMetrics: &map[string]awscloudwatch.IMetric{
			"instances": instances, "queued": queued, "inflight": inFlight,
		},
	})
	alarm("IdleGPUs", "GPU instances above the minimum idle for 30 minutes (scale-in is not happening)",
		idle, above, 0, IdleGPUMinutes/5)

	// Scaling explains at most MaxWorkers starts per half hour twice over;
	// more are tasks crashing and being replaced.
	alarm("WorkerRestarts", "worker tasks restarting more often than scaling explains",
		metric(metrics.WorkerStarts, "Sum", minutes(30)), above, float64(2*cfg.MaxWorkers), 1)

	syncConfidence := metric(metrics.SyncConfidence, "Average", minutes(30))
	alarm("SyncConfidence", "average lip-sync confidence fell below the floor for an hour",
		syncConfidence, below, cfg.MinSyncConfidence, 2)

	for _, f := range d.functions {
		f.Errors.AddAlarmAction(action)
	}

	dash := awscloudwatch.NewDashboard(c, jsii.String("Dashboard"), &awscloudwatch.DashboardProps{
		DashboardName: jsii.String("latentsync-" + cfg.Environment),
	})
	graph := func(title string, left ...awscloudwatch.IMetric) awscloudwatch.GraphWidget {
		return awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
			Title: jsii.String(title), Left: &left, Width: jsii.Number(12),
		})
	}
	dash.AddWidgets(
		graph("Queue depth", queued, inFlight,
			d.msg.JobsDLQ.MetricApproximateNumberOfMessagesVisible(nil)),
		graph("Workers", runningTasks(d.workers), instances),
	)
	dash.AddWidgets(
		graph("Job durations (s)", endToEnd, metric(metrics.EndToEndSeconds, "p50", minutes(5)),
			metric(metrics.QueueWaitSeconds, "p95", minutes(5)), metric(metrics.ProcessingSeconds, "p95", minutes(5))),
		graph("Failures by code", awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression: jsii.String(fmt.Sprintf(`SEARCH('{%s,%s} MetricName="%s"', 'Sum', 300)`, ns, metrics.DimErrorCode, metrics.JobsFailed)),
			Label:      jsii.String(""),
			Period:     minutes(5),
		}), failureRate),
	)
	dash.AddWidgets(
		graph("GPU use (%)", metric(metrics.GPUUtilization, "Average", minutes(5)), metric(metrics.GPUUtilization, "Maximum", minutes(5))),
		graph("Sync confidence", syncConfidence),
	)
	dash.AddWidgets(
		graph("API", d.api.MetricCount(nil), d.api.MetricClientError(nil), d.api.MetricServerError(nil)),
		graph("API latency (ms)", d.api.MetricLatency(&awscloudwatch.MetricOptions{Statistic: jsii.String("p95")})),
	)
}
