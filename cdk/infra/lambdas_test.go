package infra

import (
	"reflect"
	"sort"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/latentsync/latentsync-service/internal/awsenv"
	"github.com/latentsync/latentsync-service/internal/notify"
)

func TestFunctions(t *testing.T) {
	s := stackUnderTest(t)
	failuresQueue, _ := s.one(t, "AWS::SQS::Queue", "MessagingAsyncFailures")
	for _, tc := range []struct {
		prefix   string
		env      []string
		reserved any // nil: no reservation
		async    bool
	}{
		{"ApiFunction", []string{awsenv.EventBusName, awsenv.JobsTable, awsenv.OutputsBucket, awsenv.UploadsBucket}, nil, false},
		{"ValidateFunction", []string{awsenv.EventBusName, awsenv.JobsQueueURL, awsenv.JobsTable, awsenv.ModelBundle, awsenv.UploadsBucket}, 20.0, true},
		{"NotifyFunction", []string{notify.SecretEnv}, 10.0, true},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			fnID, fn := s.one(t, "AWS::Lambda::Function", tc.prefix)
			p := fn.Properties
			for _, c := range []struct {
				what      string
				got, want any
			}{
				{"runtime", p["Runtime"], "provided.al2023"},
				{"architectures", p["Architectures"], []any{"arm64"}},
				{"handler", p["Handler"], "bootstrap"},
				{"tracing", get(p, "TracingConfig", "Mode"), "Active"},
				{"reserved concurrency", p["ReservedConcurrentExecutions"], tc.reserved},
			} {
				if !reflect.DeepEqual(c.got, c.want) {
					t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
				}
			}
			var env []string
			for k := range get(p, "Environment", "Variables").(map[string]any) {
				env = append(env, k)
			}
			sort.Strings(env)
			if !reflect.DeepEqual(env, tc.env) {
				t.Errorf("environment %v, want %v", env, tc.env)
			}
			logGroup := jsonRef(get(p, "LoggingConfig", "LogGroup"))
			if r := s.resources[logGroup]; r.Type != "AWS::Logs::LogGroup" || r.Properties["RetentionInDays"] == nil {
				t.Errorf("log group %q without retention", logGroup)
			}
			has(t, "alias on a published version", func() {
				s.template.HasResourceProperties(jsii.String("AWS::Lambda::Alias"), map[string]any{
					"FunctionName": ref(fnID), "Name": LiveAlias,
					"FunctionVersion": map[string]any{"Fn::GetAtt": []any{assertions.Match_StringLikeRegexp(jsii.String(tc.prefix + ".*CurrentVersion.*")), "Version"}},
				})
			})
			has(t, "canary deployment rolling back on alarm", func() {
				s.template.HasResource(jsii.String("AWS::Lambda::Alias"), map[string]any{
					"UpdatePolicy": map[string]any{"CodeDeployLambdaAliasUpdate": assertions.Match_AnyValue()},
				})
				s.template.HasResourceProperties(jsii.String("AWS::CodeDeploy::DeploymentGroup"), map[string]any{
					"DeploymentConfigName":      "CodeDeployDefault.LambdaCanary10Percent5Minutes",
					"AlarmConfiguration":        map[string]any{"Enabled": true, "Alarms": []any{map[string]any{"Name": ref(s.alarmID(t, tc.prefix+"Errors"))}}},
					"AutoRollbackConfiguration": map[string]any{"Enabled": true, "Events": assertions.Match_ArrayWith(&[]any{"DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"})},
				})
			})
			invoke := s.ofType("AWS::Lambda::EventInvokeConfig", tc.prefix)
			if !tc.async {
				if len(invoke) != 0 {
					t.Errorf("synchronous function has async config %v", invoke)
				}
				return
			}
			has(t, "failed async invocations go to the failures queue", func() {
				s.template.HasResourceProperties(jsii.String("AWS::Lambda::EventInvokeConfig"), map[string]any{
					"FunctionName":         ref(fnID),
					"MaximumRetryAttempts": 2,
					"DestinationConfig":    map[string]any{"OnFailure": map[string]any{"Destination": map[string]any{"Fn::GetAtt": []any{failuresQueue, "Arn"}}}},
				})
			})
		})
	}
}

func (s *synthesized) alarmID(t *testing.T, prefix string) string {
	id, _ := s.one(t, "AWS::CloudWatch::Alarm", prefix)
	return id
}
