package infra

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/latentsync/latentsync-service/internal/awsenv"
	"github.com/latentsync/latentsync-service/internal/notify"
	"github.com/latentsync/latentsync-service/internal/validate/s3event"
)

func TestFunctions(t *testing.T) {
	s := stackUnderTest(t)
	failuresQueue, _ := s.one(t, "AWS::SQS::Queue", "MessagingAsyncFailures")
	for _, tc := range []struct {
		prefix   string
		env      []string
		reserved any // nil: no reservation
		async    bool
		image    bool // a container image (it ships ffprobe), not a zip
	}{
		{"ApiFunction", []string{awsenv.EventBusName, awsenv.JobsTable, awsenv.OutputsBucket, awsenv.UploadsBucket}, nil, false, false},
		{"ValidateFunction", []string{awsenv.EventBusName, awsenv.JobsQueueURL, awsenv.JobsTable, awsenv.MalwareScanning, awsenv.ModelBundle, awsenv.UploadsBucket}, 20.0, true, true},
		{"NotifyFunction", []string{notify.SecretEnv}, 10.0, true, false},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			fnID, fn := s.one(t, "AWS::Lambda::Function", tc.prefix)
			p := fn.Properties
			// A zip runs on provided.al2023 with its bootstrap; an image
			// carries its runtime, so it names neither.
			runtime, handler, packageType := any("provided.al2023"), any("bootstrap"), any(nil)
			if tc.image {
				runtime, handler, packageType = nil, nil, "Image"
			}
			for _, c := range []struct {
				what      string
				got, want any
			}{
				{"package type", p["PackageType"], packageType},
				{"runtime", p["Runtime"], runtime},
				{"architectures", p["Architectures"], []any{"arm64"}},
				{"handler", p["Handler"], handler},
				{"tracing", get(p, "TracingConfig", "Mode"), "Active"},
				{"reserved concurrency", p["ReservedConcurrentExecutions"], tc.reserved},
			} {
				if !reflect.DeepEqual(c.got, c.want) {
					t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
				}
			}
			// An image from the CDK assets repository, or a zip from the
			// assets bucket.
			imageURI, bucket := get(p, "Code", "ImageUri"), get(p, "Code", "S3Bucket")
			if tc.image != strings.Contains(jsonString(imageURI), "container-assets") || tc.image != (bucket == nil) {
				t.Errorf("code %s, want image %v", jsonString(get(p, "Code")), tc.image)
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

// TestValidateImageAsset checks what `cdk deploy` hands Docker for the
// validate image: an arm64 build of ValidateDockerfile whose staged context
// holds every source file the function compiles and nothing it does not
// (tests, test data, the worker).
func TestValidateImageAsset(t *testing.T) {
	root := filepath.Join("..", "..")
	out := t.TempDir()
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(out)})
	stack := awscdk.NewStack(app, jsii.String("ImageAsset"), nil)
	cfg := DefaultConfig()
	cfg.SourceDir = root
	newFunction(stack, "ValidateFunction", cfg, functionSpec{
		name: "validate", description: "validate", dockerfile: ValidateDockerfile,
		timeout: awscdk.Duration_Minutes(jsii.Number(1)), memoryMB: 1024,
	}, nil)
	app.Synth(nil)

	raw, err := os.ReadFile(filepath.Join(out, "ImageAsset.assets.json"))
	if err != nil {
		t.Fatal(err)
	}
	var manifest struct {
		DockerImages map[string]struct {
			Source struct {
				Directory  string `json:"directory"`
				DockerFile string `json:"dockerFile"`
				Platform   string `json:"platform"`
			} `json:"source"`
		} `json:"dockerImages"`
	}
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatal(err)
	}
	if len(manifest.DockerImages) != 1 {
		t.Fatalf("docker image assets: %v, want one", manifest.DockerImages)
	}
	var context string
	for _, img := range manifest.DockerImages {
		if img.Source.DockerFile != ValidateDockerfile || img.Source.Platform != "linux/arm64" {
			t.Errorf("image source %+v, want %s for linux/arm64", img.Source, ValidateDockerfile)
		}
		context = filepath.Join(out, img.Source.Directory)
	}

	want := []string{"go.mod", "go.sum", ValidateDockerfile}
	list := exec.Command("go", "list", "-deps", "-f",
		`{{if .Module}}{{if .Module.Main}}{{.ImportPath}} {{join .GoFiles " "}} {{join .EmbedFiles " "}}{{end}}{{end}}`,
		"./lambdas/validate")
	list.Dir = root
	pkgs, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(pkgs)), "\n") {
		fields := strings.Fields(line)
		dir := strings.TrimPrefix(strings.TrimPrefix(fields[0], "github.com/latentsync/latentsync-service"), "/")
		for _, f := range fields[1:] {
			want = append(want, filepath.Join(dir, f))
		}
	}
	if len(want) < 10 {
		t.Fatalf("go list found only %v", want)
	}
	for _, f := range want {
		if _, err := os.Stat(filepath.Join(context, f)); err != nil {
			t.Errorf("build context lacks %s: %v", f, err)
		}
	}
	err = filepath.WalkDir(context, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(context, path)
		if strings.HasSuffix(rel, "_test.go") || d.Name() == "testdata" || rel == "gpuworker" || rel == filepath.Join("lambdas", "api") {
			t.Errorf("build context holds %s", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Validation judges an upload by GuardDuty's verdict, and GuardDuty's scan
// result for an upload re-runs validation as soon as the verdict exists.
func TestValidateWaitsForMalwareVerdict(t *testing.T) {
	s := stackUnderTest(t)
	_, fn := s.one(t, "AWS::Lambda::Function", "ValidateFunction")
	if got := get(fn.Properties, "Environment", "Variables", awsenv.MalwareScanning); got != awsenv.ScanningGuardDuty {
		t.Errorf("%s = %v, want %q", awsenv.MalwareScanning, got, awsenv.ScanningGuardDuty)
	}
	uploads, _ := s.one(t, "AWS::S3::Bucket", "StorageUploads")
	validateAlias, _ := s.one(t, "AWS::Lambda::Alias", "ValidateFunctionLive")
	failures, _ := s.one(t, "AWS::SQS::Queue", "MessagingAsyncFailures")
	var rules []string
	for _, id := range s.ofType("AWS::Events::Rule", "") {
		if get(s.resources[id].Properties, "EventPattern", "source", 0) == s3event.GuardDutySource {
			rules = append(rules, id)
		}
	}
	if len(rules) != 1 {
		t.Fatalf("rules on GuardDuty events %v, want exactly one", rules)
	}
	p := s.resources[rules[0]].Properties
	// GuardDuty publishes to the default bus only.
	if bus := p["EventBusName"]; bus != nil {
		t.Errorf("scan-result rule on bus %v, want the default bus", bus)
	}
	want := map[string]any{
		"source":      []any{s3event.GuardDutySource},
		"detail-type": []any{s3event.ScanResultDetailType},
		"detail": map[string]any{"s3ObjectDetails": map[string]any{
			"bucketName": []any{ref(uploads)},
			"objectKey":  []any{map[string]any{"prefix": UploadsPrefix}},
		}},
	}
	if got := p["EventPattern"]; !reflect.DeepEqual(got, want) {
		t.Errorf("event pattern %s, want %s", jsonString(got), jsonString(want))
	}
	has(t, "scan results -> validate alias, failures to the async-failure queue", func() {
		s.template.HasResourceProperties(jsii.String("AWS::Events::Rule"), map[string]any{
			"EventPattern": assertions.Match_ObjectLike(&map[string]any{"source": []any{s3event.GuardDutySource}}),
			"Targets": []any{assertions.Match_ObjectLike(&map[string]any{
				"Arn":              ref(validateAlias),
				"DeadLetterConfig": map[string]any{"Arn": map[string]any{"Fn::GetAtt": []any{failures, "Arn"}}},
			})},
		})
	})
	has(t, "EventBridge may invoke the validate alias for the rule", func() {
		s.template.HasResourceProperties(jsii.String("AWS::Lambda::Permission"), map[string]any{
			"Action":       "lambda:InvokeFunction",
			"FunctionName": ref(validateAlias),
			"Principal":    "events.amazonaws.com",
			"SourceArn":    map[string]any{"Fn::GetAtt": []any{rules[0], "Arn"}},
		})
	})
}
