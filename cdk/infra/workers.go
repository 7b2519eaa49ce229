package infra

import (
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapplicationautoscaling"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsautoscaling"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecr"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/latentsync/latentsync-service/internal/awsenv"
	"github.com/latentsync/latentsync-service/internal/metrics"
)

const (
	// BacklogPerTask is the target of the backlog scaling policy: queued jobs
	// per running worker. One worker runs one job at a time and a job takes
	// about a minute or two of GPU time, so two waiting jobs per worker keep
	// queue wait well inside the SLA.
	BacklogPerTask = 2
	// WorkerDockerfile builds the worker image, relative to the source dir.
	WorkerDockerfile = "gpuworker/Dockerfile"
)

// Workers is the GPU worker fleet.
type Workers struct {
	Vpc      awsec2.Vpc
	Cluster  awsecs.Cluster
	Group    awsautoscaling.AutoScalingGroup
	Service  awsecs.Ec2Service
	LogGroup awslogs.LogGroup
}

type workerDeps struct {
	storage *Storage
	table   awsdynamodb.Table
	msg     *Messaging
	topic   awssns.ITopic
}

func newWorkers(scope constructs.Construct, cfg Config, d workerDeps) *Workers {
	c := constructs.NewConstruct(scope, jsii.String("Workers"))
	w := &Workers{}
	w.Vpc = newWorkerVpc(c, cfg)
	w.Cluster = awsecs.NewCluster(c, jsii.String("Cluster"), &awsecs.ClusterProps{
		Vpc:                 w.Vpc,
		ContainerInsightsV2: awsecs.ContainerInsights_ENABLED,
	})

	sg := awsec2.NewSecurityGroup(c, jsii.String("InstanceSecurityGroup"), &awsec2.SecurityGroupProps{
		Vpc: w.Vpc, Description: jsii.String("GPU container instances: no inbound, outbound to VPC endpoints"),
		AllowAllOutbound: jsii.Bool(true),
	})
	instanceRole := awsiam.NewRole(c, jsii.String("InstanceRole"), &awsiam.RoleProps{
		AssumedBy: awsiam.NewServicePrincipal(jsii.String("ec2.amazonaws.com"), nil),
	})
	lt := awsec2.NewLaunchTemplate(c, jsii.String("LaunchTemplate"), &awsec2.LaunchTemplateProps{
		// The ECS-optimized AL2023 GPU AMI (NVIDIA driver, container toolkit,
		// ECS agent with GPU support), resolved from SSM at deploy time.
		MachineImage:  awsecs.EcsOptimizedImage_AmazonLinux2023(awsecs.AmiHardwareType_GPU, nil),
		InstanceType:  awsec2.NewInstanceType(jsii.String(cfg.GPUInstanceType)),
		RequireImdsv2: jsii.Bool(true),
		// Hop limit 1: containers cannot reach the instance's credentials.
		HttpPutResponseHopLimit: jsii.Number(1),
		BlockDevices: &[]*awsec2.BlockDevice{{
			DeviceName: jsii.String("/dev/xvda"),
			// Room for the worker image (CUDA layers) and the model cache.
			Volume: awsec2.BlockDeviceVolume_Ebs(jsii.Number(100), &awsec2.EbsDeviceOptions{
				Encrypted: jsii.Bool(true), VolumeType: awsec2.EbsDeviceVolumeType_GP3, DeleteOnTermination: jsii.Bool(true),
			}),
		}},
		Role:          instanceRole,
		SecurityGroup: sg,
		UserData:      awsec2.UserData_ForLinux(nil), // the capacity provider adds the cluster join
	})
	group := &awsautoscaling.AutoScalingGroupProps{
		Vpc:         w.Vpc,
		VpcSubnets:  &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED},
		MinCapacity: jsii.Number(float64(cfg.MinWorkers)),
		MaxCapacity: jsii.Number(float64(cfg.MaxWorkers)),
		// Instance counts feed the idle-GPU alarm.
		GroupMetrics:  &[]awsautoscaling.GroupMetrics{awsautoscaling.GroupMetrics_All()},
		Notifications: &[]*awsautoscaling.NotificationConfiguration{{Topic: d.topic, ScalingEvents: awsautoscaling.ScalingEvents_ERRORS()}},
	}
	if cfg.Spot {
		types := []*awsautoscaling.LaunchTemplateOverrides{}
		for _, t := range append([]string{cfg.GPUInstanceType}, cfg.SpotInstanceTypes...) {
			types = append(types, &awsautoscaling.LaunchTemplateOverrides{InstanceType: awsec2.NewInstanceType(jsii.String(t))})
		}
		group.MixedInstancesPolicy = &awsautoscaling.MixedInstancesPolicy{
			LaunchTemplate:          lt,
			LaunchTemplateOverrides: &types,
			// One On-Demand instance keeps the service alive through a Spot
			// reclaim wave; everything above it is Spot across several types.
			InstancesDistribution: &awsautoscaling.InstancesDistribution{
				OnDemandBaseCapacity:                jsii.Number(1),
				OnDemandPercentageAboveBaseCapacity: jsii.Number(0),
				SpotAllocationStrategy:              awsautoscaling.SpotAllocationStrategy_PRICE_CAPACITY_OPTIMIZED,
			},
		}
		group.CapacityRebalance = jsii.Bool(true)
	} else {
		group.LaunchTemplate = lt
	}
	w.Group = awsautoscaling.NewAutoScalingGroup(c, jsii.String("GpuInstances"), group)
	capacity := awsecs.NewAsgCapacityProvider(c, jsii.String("GpuCapacity"), &awsecs.AsgCapacityProviderProps{
		AutoScalingGroup: w.Group,
		// ECS never terminates an instance that still runs a worker task.
		EnableManagedTerminationProtection: jsii.Bool(true),
		EnableManagedScaling:               jsii.Bool(true),
		TargetCapacityPercent:              jsii.Number(100),
		EnableManagedDraining:              jsii.Bool(true),
		SpotInstanceDraining:               jsii.Bool(cfg.Spot),
	})
	w.Cluster.AddAsgCapacityProvider(capacity, nil)

	task := awsecs.NewEc2TaskDefinition(c, jsii.String("WorkerTask"), &awsecs.Ec2TaskDefinitionProps{
		NetworkMode: awsecs.NetworkMode_AWS_VPC,
	})
	w.LogGroup = awslogs.NewLogGroup(c, jsii.String("WorkerLogs"), &awslogs.LogGroupProps{
		Retention: retention(cfg.LogDays), RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	// The worker image is built from gpuworker/Dockerfile as an asset (CI
	// builds and pushes it on deploy); context "workerImage" pins a
	// prebuilt image instead.
	image := awsecs.ContainerImage_FromAsset(jsii.String(cfg.SourceDir), &awsecs.AssetImageProps{
		File: jsii.String(WorkerDockerfile), IgnoreMode: awscdk.IgnoreMode_DOCKER,
		// The validate function's image shares the allow-list; its sources
		// must not rebuild (and redeploy) the worker.
		Exclude: jsii.Strings("lambdas"),
	})
	if cfg.WorkerImage != "" {
		image = awsecs.ContainerImage_FromRegistry(jsii.String(cfg.WorkerImage), nil)
	}
	xrayEnv := map[string]*string{}
	if cfg.XRayDaemonImage != "" {
		xrayEnv["AWS_XRAY_DAEMON_ADDRESS"] = jsii.String("127.0.0.1:2000")
	}
	worker := task.AddContainer(jsii.String("worker"), &awsecs.ContainerDefinitionOptions{
		Image: image,
		// The worker's own probe of its health endpoint: ready (bundle
		// verified, sessions open, warm-up done) and polling.
		HealthCheck: &awsecs.HealthCheck{
			Command:     jsii.Strings("CMD", "/usr/local/bin/gpuworker", "healthcheck"),
			Interval:    awscdk.Duration_Seconds(jsii.Number(30)),
			Timeout:     awscdk.Duration_Seconds(jsii.Number(5)),
			Retries:     jsii.Number(3),
			StartPeriod: awscdk.Duration_Seconds(jsii.Number(300)),
		},
		GpuCount:             jsii.Number(1),
		MemoryReservationMiB: jsii.Number(12 * 1024),
		Essential:            jsii.Bool(true),
		// Time to finish the current chunk, release the message and exit.
		StopTimeout: awscdk.Duration_Seconds(jsii.Number(120)),
		Logging: awsecs.LogDrivers_AwsLogs(&awsecs.AwsLogDriverProps{
			StreamPrefix: jsii.String("worker"), LogGroup: w.LogGroup,
		}),
		Environment: &map[string]*string{
			awsenv.JobsTable:     d.table.TableName(),
			awsenv.UploadsBucket: d.storage.Uploads.BucketName(),
			awsenv.OutputsBucket: d.storage.Outputs.BucketName(),
			awsenv.JobsQueueURL:  d.msg.Jobs.QueueUrl(),
			awsenv.JobsDLQURL:    d.msg.JobsDLQ.QueueUrl(), // the worker fails the jobs of dead letters
			awsenv.EventBusName:  d.msg.Bus.EventBusName(),
			awsenv.ModelBundle:   jsii.String(cfg.ModelBundleVersion),
			awsenv.ModelBucket:   d.storage.Models.BucketName(),
			metrics.NamespaceEnv: jsii.String(MetricsNamespace(cfg)),
			// Tasks cannot reach instance metadata (hop limit 1), where the SDK
			// would otherwise look the region up.
			"AWS_REGION": awscdk.Aws_REGION(),
		},
	})
	for k, v := range xrayEnv {
		worker.AddEnvironment(jsii.String(k), v)
	}
	if cfg.XRayDaemonImage != "" {
		task.AddContainer(jsii.String("xray-daemon"), &awsecs.ContainerDefinitionOptions{
			Image:                awsecs.ContainerImage_FromRegistry(jsii.String(cfg.XRayDaemonImage), nil),
			MemoryReservationMiB: jsii.Number(64),
			Essential:            jsii.Bool(false),
			PortMappings:         &[]*awsecs.PortMapping{{ContainerPort: jsii.Number(2000), Protocol: awsecs.Protocol_UDP}},
			Logging: awsecs.LogDrivers_AwsLogs(&awsecs.AwsLogDriverProps{
				StreamPrefix: jsii.String("xray"), LogGroup: w.LogGroup,
			}),
		})
	}
	task.TaskRole().AddManagedPolicy(awsiam.ManagedPolicy_FromAwsManagedPolicyName(jsii.String("AWSXRayDaemonWriteAccess")))
	if repo, ok := ecrRepository(cfg.WorkerImage); ok {
		awsecr.Repository_FromRepositoryName(c, jsii.String("WorkerRepository"), jsii.String(repo)).GrantPull(task.ObtainExecutionRole())
	}
	grantWorker(task.TaskRole(), w.Cluster, d)

	w.Service = awsecs.NewEc2Service(c, jsii.String("Service"), &awsecs.Ec2ServiceProps{
		Cluster:        w.Cluster,
		TaskDefinition: task,
		DesiredCount:   jsii.Number(float64(cfg.MinWorkers)),
		CapacityProviderStrategies: &[]*awsecs.CapacityProviderStrategy{{
			CapacityProvider: capacity.CapacityProviderName(), Weight: jsii.Number(1),
		}},
		CircuitBreaker:    &awsecs.DeploymentCircuitBreaker{Enable: jsii.Bool(true), Rollback: jsii.Bool(true)},
		MinHealthyPercent: jsii.Number(100),
		MaxHealthyPercent: jsii.Number(200),
		VpcSubnets:        &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED},
	})
	newWorkerScaling(c, cfg, w, d.msg)

	cdknag.NagSuppressions_AddResourceSuppressions(c, &[]*cdknag.NagPackSuppression{
		{
			Id: jsii.String("AwsSolutions-IAM5"),
			Reason: jsii.String("Wildcards come from grants on this stack's resources (objects of one bucket, " +
				"KMS GenerateDataKey*/ReEncrypt* on the service key, task protection on this cluster's tasks), " +
				"the ECS agent's registration actions CDK adds to the instance role, ecr:GetAuthorizationToken " +
				"and X-Ray segments, which support no resource scoping."),
		},
		{
			Id: jsii.String("AwsSolutions-AS3"),
			Reason: jsii.String("Launch and termination errors notify the alarm topic; routine launches and " +
				"terminations are autoscaling at work and would page on every scale event (they are on the dashboard)."),
		},
		{
			Id: jsii.String("AwsSolutions-ECS2"),
			Reason: jsii.String("The environment holds resource names and the model bundle version, " +
				"no secrets; the worker's configuration contract is environment variables."),
		},
		{
			Id:     jsii.String("AwsSolutions-SNS2"),
			Reason: jsii.String("The capacity provider's draining topic carries only lifecycle notices (instance ids)."),
		},
		{
			Id:     jsii.String("AwsSolutions-SNS3"),
			Reason: jsii.String("The capacity provider's draining topic is published to by Auto Scaling only."),
		},
		{
			Id: jsii.String("AwsSolutions-L1"),
			Reason: jsii.String("The capacity provider's draining hook function is CDK-managed; its runtime " +
				"follows the CDK version."),
		},
		{
			Id:     jsii.String("AwsSolutions-IAM4"),
			Reason: jsii.String("AWSLambdaBasicExecutionRole on the CDK-managed draining hook function (log writing only)."),
		},
	}, jsii.Bool(true))
	return w
}

// MetricsNamespace is the worker's CloudWatch namespace in this environment.
func MetricsNamespace(cfg Config) string { return metrics.DefaultNamespace + "/" + cfg.Environment }

// newWorkerVpc has only isolated subnets: the data path to every AWS
// service is a VPC endpoint, so there is no NAT gateway to pay for or to
// route job data through.
func newWorkerVpc(scope constructs.Construct, cfg Config) awsec2.Vpc {
	vpc := awsec2.NewVpc(scope, jsii.String("Vpc"), &awsec2.VpcProps{
		MaxAzs:      jsii.Number(2),
		NatGateways: jsii.Number(0),
		SubnetConfiguration: &[]*awsec2.SubnetConfiguration{{
			Name: jsii.String("workers"), SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED, CidrMask: jsii.Number(20),
		}},
	})
	flowLogs := awslogs.NewLogGroup(scope, jsii.String("FlowLogs"), &awslogs.LogGroupProps{
		Retention: retention(cfg.LogDays), RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	vpc.AddFlowLog(jsii.String("FlowLog"), &awsec2.FlowLogOptions{
		Destination: awsec2.FlowLogDestination_ToCloudWatchLogs(flowLogs, nil),
		TrafficType: awsec2.FlowLogTrafficType_REJECT,
	})
	isolated := &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED}
	vpc.AddGatewayEndpoint(jsii.String("S3"), &awsec2.GatewayVpcEndpointOptions{
		Service: awsec2.GatewayVpcEndpointAwsService_S3(), Subnets: &[]*awsec2.SubnetSelection{isolated},
	})
	vpc.AddGatewayEndpoint(jsii.String("DynamoDB"), &awsec2.GatewayVpcEndpointOptions{
		Service: awsec2.GatewayVpcEndpointAwsService_DYNAMODB(), Subnets: &[]*awsec2.SubnetSelection{isolated},
	})
	for _, e := range []struct {
		id  string
		svc awsec2.InterfaceVpcEndpointAwsService
	}{
		{"Sqs", awsec2.InterfaceVpcEndpointAwsService_SQS()},
		{"EcrApi", awsec2.InterfaceVpcEndpointAwsService_ECR()},
		{"EcrDocker", awsec2.InterfaceVpcEndpointAwsService_ECR_DOCKER()},
		{"Logs", awsec2.InterfaceVpcEndpointAwsService_CLOUDWATCH_LOGS()},
		{"XRay", awsec2.InterfaceVpcEndpointAwsService_XRAY()},
		// The ECS agent registers the instance and reports tasks through these.
		{"Ecs", awsec2.InterfaceVpcEndpointAwsService_ECS()},
		{"EcsAgent", awsec2.InterfaceVpcEndpointAwsService_ECS_AGENT()},
		{"EcsTelemetry", awsec2.InterfaceVpcEndpointAwsService_ECS_TELEMETRY()},
		// Workers publish job events.
		{"Events", awsec2.InterfaceVpcEndpointAwsService_EVENTBRIDGE()},
	} {
		vpc.AddInterfaceEndpoint(jsii.String(e.id), &awsec2.InterfaceVpcEndpointOptions{
			Service: e.svc, Subnets: isolated, PrivateDnsEnabled: jsii.Bool(true),
		})
	}
	return vpc
}

// grantWorker gives the task role exactly what a worker does: consume the
// queue, update jobs, read uploads and models, write outputs, publish
// events, protect its own task from scale-in, and send traces.
func grantWorker(role awsiam.IRole, cluster awsecs.Cluster, d workerDeps) {
	d.msg.Jobs.GrantConsumeMessages(role)
	d.msg.JobsDLQ.GrantConsumeMessages(role) // the worker settles dead letters (fails their jobs)
	d.table.GrantReadWriteData(role)
	d.storage.Uploads.GrantRead(role, nil)
	d.storage.Models.GrantRead(role, nil)
	d.storage.Outputs.GrantPut(role, nil)
	d.msg.Bus.GrantPutEventsTo(role, nil)
	// A worker protects its task while it holds a job, so neither scale-in
	// nor a deployment stops it mid-job.
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions: jsii.Strings("ecs:UpdateTaskProtection", "ecs:GetTaskProtection"),
		Resources: &[]*string{awscdk.Stack_Of(cluster).FormatArn(&awscdk.ArnComponents{
			Service: jsii.String("ecs"), Resource: jsii.String("task"),
			ResourceName: jsii.String(*cluster.ClusterName() + "/*"),
		})},
	}))
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions: jsii.Strings("xray:PutTraceSegments", "xray:PutTelemetryRecords"), Resources: jsii.Strings("*"),
	}))
}

// newWorkerScaling scales the service on backlog per task (target
// tracking on metric math) and starts the first task from zero (a step
// policy: target tracking multiplies the current count, which stays zero).
func newWorkerScaling(scope constructs.Construct, cfg Config, w *Workers, msg *Messaging) {
	target := awsapplicationautoscaling.NewScalableTarget(scope, jsii.String("ServiceScaling"), &awsapplicationautoscaling.ScalableTargetProps{
		ServiceNamespace:  awsapplicationautoscaling.ServiceNamespace_ECS,
		ScalableDimension: jsii.String("ecs:service:DesiredCount"),
		ResourceId: awscdk.Fn_Join(jsii.String("/"), &[]*string{
			jsii.String("service"), w.Cluster.ClusterName(), w.Service.ServiceName(),
		}),
		MinCapacity: jsii.Number(float64(cfg.MinWorkers)),
		MaxCapacity: jsii.Number(float64(cfg.MaxWorkers)),
	})
	dims := func(kv ...string) interface{} {
		var out []interface{}
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, &awsapplicationautoscaling.CfnScalingPolicy_TargetTrackingMetricDimensionProperty{
				Name: jsii.String(kv[i]), Value: jsii.String(kv[i+1]),
			})
		}
		return &out
	}
	awsapplicationautoscaling.NewCfnScalingPolicy(scope, jsii.String("BacklogPerTask"), &awsapplicationautoscaling.CfnScalingPolicyProps{
		PolicyName:      jsii.String("backlog-per-task"),
		PolicyType:      jsii.String("TargetTrackingScaling"),
		ScalingTargetId: target.ScalableTargetId(),
		TargetTrackingScalingPolicyConfiguration: &awsapplicationautoscaling.CfnScalingPolicy_TargetTrackingScalingPolicyConfigurationProperty{
			TargetValue:      jsii.Number(BacklogPerTask),
			ScaleOutCooldown: jsii.Number(60),
			// GPU instances take minutes to start: do not give one back on a lull.
			ScaleInCooldown: jsii.Number(600),
			CustomizedMetricSpecification: &awsapplicationautoscaling.CfnScalingPolicy_CustomizedMetricSpecificationProperty{
				Metrics: &[]interface{}{
					&awsapplicationautoscaling.CfnScalingPolicy_TargetTrackingMetricDataQueryProperty{
						Id: jsii.String("visible"), ReturnData: jsii.Bool(false),
						MetricStat: &awsapplicationautoscaling.CfnScalingPolicy_TargetTrackingMetricStatProperty{
							Stat: jsii.String("Sum"),
							Metric: &awsapplicationautoscaling.CfnScalingPolicy_TargetTrackingMetricProperty{
								Namespace: jsii.String("AWS/SQS"), MetricName: jsii.String("ApproximateNumberOfMessagesVisible"),
								Dimensions: dims("QueueName", *msg.Jobs.QueueName()),
							},
						},
					},
					&awsapplicationautoscaling.CfnScalingPolicy_TargetTrackingMetricDataQueryProperty{
						Id: jsii.String("tasks"), ReturnData: jsii.Bool(false),
						MetricStat: &awsapplicationautoscaling.CfnScalingPolicy_TargetTrackingMetricStatProperty{
							Stat: jsii.String("Average"),
							Metric: &awsapplicationautoscaling.CfnScalingPolicy_TargetTrackingMetricProperty{
								Namespace: jsii.String("ECS/ContainerInsights"), MetricName: jsii.String("RunningTaskCount"),
								Dimensions: dims("ClusterName", *w.Cluster.ClusterName(), "ServiceName", *w.Service.ServiceName()),
							},
						},
					},
					&awsapplicationautoscaling.CfnScalingPolicy_TargetTrackingMetricDataQueryProperty{
						Id: jsii.String("backlog"), ReturnData: jsii.Bool(true), Label: jsii.String("Jobs waiting per running worker"),
						Expression: jsii.String("visible / IF(tasks > 0, tasks, 1)"),
					},
				},
			},
		},
	})
	target.ScaleOnMetric(jsii.String("StartFromZero"), &awsapplicationautoscaling.BasicStepScalingPolicyProps{
		Metric: awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression: jsii.String("IF(FILL(tasks, 0) == 0, visible, 0)"),
			Label:      jsii.String("Jobs waiting while no worker runs"),
			Period:     awscdk.Duration_Minutes(jsii.Number(1)),
			UsingMetrics: &map[string]awscloudwatch.IMetric{
				"visible": msg.Jobs.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Statistic: jsii.String("Maximum")}),
				"tasks":   runningTasks(w),
			},
		}),
		AdjustmentType: awsapplicationautoscaling.AdjustmentType_CHANGE_IN_CAPACITY,
		ScalingSteps: &[]*awsapplicationautoscaling.ScalingInterval{
			{Upper: jsii.Number(0), Change: jsii.Number(0)},
			{Lower: jsii.Number(1), Change: jsii.Number(1)},
		},
		Cooldown: awscdk.Duration_Minutes(jsii.Number(1)),
	})
}

// runningTasks is Container Insights' count of the service's running tasks.
func runningTasks(w *Workers) awscloudwatch.Metric {
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace: jsii.String("ECS/ContainerInsights"), MetricName: jsii.String("RunningTaskCount"),
		DimensionsMap: &map[string]*string{"ClusterName": w.Cluster.ClusterName(), "ServiceName": w.Service.ServiceName()},
		Statistic:     jsii.String("Average"), Period: awscdk.Duration_Minutes(jsii.Number(1)),
	})
}

// ecrRepository returns the repository name of a prebuilt ECR image URI so
// the execution role can be granted the pull (the asset image's repository
// is granted by CDK itself).
func ecrRepository(image string) (string, bool) {
	host, path, ok := strings.Cut(image, "/")
	if !ok || !strings.Contains(host, ".dkr.ecr.") {
		return "", false
	}
	if i := strings.IndexAny(path, ":@"); i >= 0 {
		path = path[:i]
	}
	return path, path != ""
}
