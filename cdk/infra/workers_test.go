package infra

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/latentsync/latentsync-service/internal/awsenv"
	"github.com/latentsync/latentsync-service/internal/metrics"
)

func TestMessaging(t *testing.T) {
	s := stackUnderTest(t)
	dlq, _ := s.one(t, "AWS::SQS::Queue", "MessagingJobsDLQ")
	var jobs resource
	for _, id := range s.ofType("AWS::SQS::Queue", "MessagingJobs") {
		if id != dlq {
			jobs = s.resources[id]
		}
	}
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"visibility timeout", jobs.Properties["VisibilityTimeout"], JobVisibility.Seconds()},
		{"redrive", get(jobs.Properties, "RedrivePolicy"), map[string]any{
			"deadLetterTargetArn": map[string]any{"Fn::GetAtt": []any{dlq, "Arn"}}, "maxReceiveCount": 3.0,
		}},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("jobs queue %s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if JobVisibility <= JobSLA {
		t.Errorf("visibility %v must exceed the job SLA %v", JobVisibility, JobSLA)
	}
	for _, id := range s.ofType("AWS::SQS::Queue", "Messaging") {
		if get(s.resources[id].Properties, "KmsMasterKeyId") == nil {
			t.Errorf("queue %s is not KMS-encrypted", id)
		}
	}
	notifyAlias, _ := s.one(t, "AWS::Lambda::Alias", "NotifyFunctionLive")
	failures, _ := s.one(t, "AWS::SQS::Queue", "MessagingAsyncFailures")
	has(t, "job events -> notify", func() {
		s.template.HasResourceProperties(jsii.String("AWS::Events::Rule"), map[string]any{
			"EventBusName": assertions.Match_AnyValue(),
			"EventPattern": map[string]any{"source": []any{"latentsync"}, "detail-type": []any{"job.succeeded", "job.failed", "job.canceled"}},
			"Targets": []any{assertions.Match_ObjectLike(&map[string]any{
				"Arn":              ref(notifyAlias),
				"DeadLetterConfig": map[string]any{"Arn": map[string]any{"Fn::GetAtt": []any{failures, "Arn"}}},
				"RetryPolicy":      assertions.Match_ObjectLike(&map[string]any{"MaximumRetryAttempts": 185}),
			})},
		})
	})
	validateAlias, _ := s.one(t, "AWS::Lambda::Alias", "ValidateFunctionLive")
	has(t, "schedule -> validate (upload sweep)", func() {
		s.template.HasResourceProperties(jsii.String("AWS::Events::Rule"), map[string]any{
			"ScheduleExpression": fmt.Sprintf("rate(%d minutes)", SweepMinutes),
			"Targets":            []any{assertions.Match_ObjectLike(&map[string]any{"Arn": ref(validateAlias)})},
		})
	})
}

func TestWorkerNetwork(t *testing.T) {
	s := stackUnderTest(t)
	if ids := s.ofType("AWS::EC2::NatGateway", ""); len(ids) != 0 {
		t.Errorf("NAT gateways %v: the data path uses endpoints", ids)
	}
	if ids := s.ofType("AWS::EC2::InternetGateway", ""); len(ids) != 0 {
		t.Errorf("internet gateway %v in an isolated VPC", ids)
	}
	endpoints := map[string]string{}
	for _, id := range s.ofType("AWS::EC2::VPCEndpoint", "") {
		p := s.resources[id].Properties
		parts := get(p, "ServiceName", "Fn::Join", 1).([]any)
		endpoints[strings.TrimPrefix(parts[len(parts)-1].(string), ".")] = p["VpcEndpointType"].(string)
	}
	for svc, typ := range map[string]string{
		"s3": "Gateway", "dynamodb": "Gateway", "sqs": "Interface", "ecr.api": "Interface", "ecr.dkr": "Interface",
		"logs": "Interface", "xray": "Interface", "ecs": "Interface", "ecs-agent": "Interface", "ecs-telemetry": "Interface",
		"events": "Interface",
	} {
		if endpoints[svc] != typ {
			t.Errorf("endpoint %s: %q, want %s", svc, endpoints[svc], typ)
		}
	}
	has(t, "flow logs", func() {
		s.template.HasResourceProperties(jsii.String("AWS::EC2::FlowLog"), map[string]any{"ResourceType": "VPC"})
	})
}

func TestGPUCapacity(t *testing.T) {
	s := stackUnderTest(t)
	_, lt := s.one(t, "AWS::EC2::LaunchTemplate", "Workers")
	d := lt.Properties["LaunchTemplateData"]
	if get(d, "MetadataOptions", "HttpTokens") != "required" {
		t.Errorf("IMDSv2 not required: %v", get(d, "MetadataOptions"))
	}
	if get(d, "BlockDeviceMappings", 0, "Ebs", "Encrypted") != true {
		t.Errorf("root volume not encrypted: %v", get(d, "BlockDeviceMappings"))
	}
	if get(d, "InstanceType") != s.cfg.GPUInstanceType {
		t.Errorf("instance type %v, want %s", get(d, "InstanceType"), s.cfg.GPUInstanceType)
	}
	param := jsonRef(get(d, "ImageId"))
	has(t, "ECS-optimized AL2023 GPU AMI", func() {
		s.template.HasParameter(jsii.String(param), map[string]any{
			"Default": "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id",
		})
	})
	_, asg := s.one(t, "AWS::AutoScaling::AutoScalingGroup", "Workers")
	if asg.Properties["LaunchTemplate"] == nil || asg.Properties["MixedInstancesPolicy"] != nil {
		t.Errorf("Spot off: want the launch template alone, got %s", jsonString(asg.Properties))
	}
	if asg.Properties["NewInstancesProtectedFromScaleIn"] != true {
		t.Error("instances not protected from scale-in (managed termination protection needs it)")
	}
	has(t, "capacity provider with managed termination protection", func() {
		s.template.HasResourceProperties(jsii.String("AWS::ECS::CapacityProvider"), map[string]any{
			"AutoScalingGroupProvider": assertions.Match_ObjectLike(&map[string]any{
				"ManagedTerminationProtection": "ENABLED",
				"ManagedScaling":               assertions.Match_ObjectLike(&map[string]any{"Status": "ENABLED"}),
			}),
		})
	})
}

func TestWorkerService(t *testing.T) {
	s := stackUnderTest(t)
	_, td := s.one(t, "AWS::ECS::TaskDefinition", "Workers")
	c := get(td.Properties, "ContainerDefinitions", 0)
	if !reflect.DeepEqual(get(c, "ResourceRequirements"), []any{map[string]any{"Type": "GPU", "Value": "1"}}) {
		t.Errorf("resource requirements %v, want one GPU", get(c, "ResourceRequirements"))
	}
	if hc := get(c, "HealthCheck", "Command"); !reflect.DeepEqual(hc, []any{"CMD", "/usr/local/bin/gpuworker", "healthcheck"}) || get(c, "HealthCheck", "StartPeriod") != 300.0 {
		t.Errorf("health check %v", get(c, "HealthCheck"))
	}
	// Built from gpuworker/Dockerfile: an image in the CDK assets repository.
	if img := jsonString(get(c, "Image")); !strings.Contains(img, "container-assets") {
		t.Errorf("worker image %s is not the Dockerfile asset", img)
	}
	if n := len(get(td.Properties, "ContainerDefinitions").([]any)); n != 1 {
		t.Errorf("%d containers without an X-Ray daemon image", n)
	}
	var env []string
	for _, e := range get(c, "Environment").([]any) {
		env = append(env, get(e, "Name").(string))
	}
	sort.Strings(env)
	want := []string{"AWS_REGION", awsenv.EventBusName, awsenv.JobsQueueURL, awsenv.JobsTable, metrics.NamespaceEnv, awsenv.ModelBundle, awsenv.ModelBucket, awsenv.JobsDLQURL, awsenv.OutputsBucket, awsenv.UploadsBucket}
	sort.Strings(want)
	if !reflect.DeepEqual(env, want) {
		t.Errorf("worker environment %v, want %v", env, want)
	}
	taskRole := get(td.Properties, "TaskRoleArn", "Fn::GetAtt", 0).(string)
	has(t, "task may protect itself from scale-in", func() {
		s.template.HasResourceProperties(jsii.String("AWS::IAM::Policy"), map[string]any{
			"Roles": assertions.Match_ArrayWith(&[]any{ref(taskRole)}),
			"PolicyDocument": assertions.Match_ObjectLike(&map[string]any{
				"Statement": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
					"Action": assertions.Match_ArrayWith(&[]any{"ecs:UpdateTaskProtection"}), "Effect": "Allow",
				})}),
			}),
		})
	})
	has(t, "circuit breaker with rollback", func() {
		s.template.HasResourceProperties(jsii.String("AWS::ECS::Service"), map[string]any{
			"DeploymentConfiguration": assertions.Match_ObjectLike(&map[string]any{
				"DeploymentCircuitBreaker": map[string]any{"Enable": true, "Rollback": true},
			}),
			"CapacityProviderStrategy": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{"Weight": 1})}),
		})
	})
}

func TestWorkerScaling(t *testing.T) {
	s := stackUnderTest(t)
	target, _ := s.one(t, "AWS::ApplicationAutoScaling::ScalableTarget", "Workers")
	has(t, "scalable target min/max", func() {
		s.template.HasResourceProperties(jsii.String("AWS::ApplicationAutoScaling::ScalableTarget"), map[string]any{
			"MinCapacity": s.cfg.MinWorkers, "MaxCapacity": s.cfg.MaxWorkers, "ScalableDimension": "ecs:service:DesiredCount",
		})
	})
	var tracking, step []resource
	for _, id := range s.ofType("AWS::ApplicationAutoScaling::ScalingPolicy", "Workers") {
		r := s.resources[id]
		if jsonRef(r.Properties["ScalingTargetId"]) != target {
			continue
		}
		switch r.Properties["PolicyType"] {
		case "TargetTrackingScaling":
			tracking = append(tracking, r)
		case "StepScaling":
			step = append(step, r)
		}
	}
	if len(tracking) != 1 || len(step) != 1 {
		t.Fatalf("want one target tracking and one step policy, got %d and %d", len(tracking), len(step))
	}
	cfg := tracking[0].Properties["TargetTrackingScalingPolicyConfiguration"]
	if get(cfg, "TargetValue") != float64(BacklogPerTask) {
		t.Errorf("backlog target %v, want %d", get(cfg, "TargetValue"), BacklogPerTask)
	}
	var expr string
	var stats []string
	for _, m := range get(cfg, "CustomizedMetricSpecification", "Metrics").([]any) {
		if e, ok := get(m, "Expression").(string); ok && get(m, "ReturnData") == true {
			expr = e
		}
		if n, ok := get(m, "MetricStat", "Metric", "MetricName").(string); ok {
			stats = append(stats, n)
		}
	}
	if !strings.Contains(expr, "visible /") || !reflect.DeepEqual(stats, []string{"ApproximateNumberOfMessagesVisible", "RunningTaskCount"}) {
		t.Errorf("backlog per task: expression %q over %v", expr, stats)
	}
	adj := get(step[0].Properties, "StepScalingPolicyConfiguration", "StepAdjustments", 0, "ScalingAdjustment")
	if adj != 1.0 {
		t.Errorf("step policy adjustment %v, want +1 from zero", adj)
	}
	has(t, "step policy alarm on jobs waiting with no worker", func() {
		s.template.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), map[string]any{
			"Metrics": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
				"Expression": assertions.Match_StringLikeRegexp(jsii.String(`IF\(FILL\(tasks, 0\) == 0, visible, 0\)`)),
			})}),
			"AlarmActions": []any{ref(firstPolicyID(s, target, "StepScaling"))},
		})
	})
}

func firstPolicyID(s *synthesized, target, typ string) string {
	for _, id := range s.ofType("AWS::ApplicationAutoScaling::ScalingPolicy", "") {
		p := s.resources[id].Properties
		if jsonRef(p["ScalingTargetId"]) == target && p["PolicyType"] == typ {
			return id
		}
	}
	return ""
}

var spotSynth = sync.OnceValues(func() (*synthesized, error) {
	return synth(map[string]any{
		CtxEnvironment: "prod", CtxSpot: "true", CtxMinWorkers: "1", CtxMaxWorkers: "8",
		CtxAlarmEmail: "oncall@example.com", CtxEmailFrom: "jobs@example.com",
		CtxUsagePlans:      `[{"name":"bulk","rateLimit":50,"burstLimit":100,"quotaPerDay":100000}]`,
		CtxWorkerImage:     "123456789012.dkr.ecr.eu-west-1.amazonaws.com/latentsync-worker:1.4.0",
		CtxXRayDaemonImage: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/xray-daemon:3.3",
	})
})

// spotStack is a second environment: Spot on, alarm email, one custom plan.
func spotStack(t *testing.T) *synthesized {
	t.Helper()
	s, err := spotSynth()
	if err != nil {
		t.Fatalf("synth: %v", err)
	}
	return s
}

func TestPrebuiltImageAndXRayDaemon(t *testing.T) {
	s := spotStack(t)
	_, td := s.one(t, "AWS::ECS::TaskDefinition", "Workers")
	cs := get(td.Properties, "ContainerDefinitions").([]any)
	if len(cs) != 2 {
		t.Fatalf("containers %v, want the worker and the X-Ray daemon", cs)
	}
	if img := get(cs[0], "Image"); img != "123456789012.dkr.ecr.eu-west-1.amazonaws.com/latentsync-worker:1.4.0" {
		t.Errorf("worker image %v", img)
	}
	var xrayAddr any
	for _, e := range get(cs[0], "Environment").([]any) {
		if get(e, "Name") == "AWS_XRAY_DAEMON_ADDRESS" {
			xrayAddr = get(e, "Value")
		}
	}
	if xrayAddr != "127.0.0.1:2000" || get(cs[1], "Essential") != false {
		t.Errorf("daemon address %v, daemon essential %v", xrayAddr, get(cs[1], "Essential"))
	}
}

func TestSpotEnvironment(t *testing.T) {
	s := spotStack(t)
	_, asg := s.one(t, "AWS::AutoScaling::AutoScalingGroup", "Workers")
	mip := asg.Properties["MixedInstancesPolicy"]
	if get(mip, "InstancesDistribution", "OnDemandBaseCapacity") != 1.0 || get(mip, "InstancesDistribution", "OnDemandPercentageAboveBaseCapacity") != 0.0 {
		t.Errorf("instances distribution %v: want 1 On-Demand, Spot above", get(mip, "InstancesDistribution"))
	}
	var types []string
	for _, o := range get(mip, "LaunchTemplate", "Overrides").([]any) {
		types = append(types, get(o, "InstanceType").(string))
	}
	if want := append([]string{s.cfg.GPUInstanceType}, s.cfg.SpotInstanceTypes...); !reflect.DeepEqual(types, want) {
		t.Errorf("instance types %v, want %v", types, want)
	}
	has(t, "alarm email subscription", func() {
		s.template.HasResourceProperties(jsii.String("AWS::SNS::Subscription"), map[string]any{
			"Protocol": "email", "Endpoint": "oncall@example.com",
		})
	})
	has(t, "custom usage plan", func() {
		s.template.HasResourceProperties(jsii.String("AWS::ApiGateway::UsagePlan"), map[string]any{
			"UsagePlanName": "latentsync-prod-bulk",
			"Throttle":      map[string]any{"RateLimit": 50, "BurstLimit": 100},
		})
	})
	if n := len(s.ofType("AWS::ApiGateway::UsagePlan", "")); n != 1 {
		t.Errorf("%d usage plans, want only the configured one", n)
	}
	if ids := s.ofType("AWS::SNS::Subscription", ""); len(ids) != 1 {
		t.Errorf("subscriptions %v", ids)
	}
	if d := stackUnderTest(t); len(d.ofType("AWS::SNS::Subscription", "")) != 0 {
		t.Error(fmt.Sprint("default stack subscribes an email without alarmEmail"))
	}
}
