package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/internal/syncbuf"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/latentsync/latentsync-service/gpuworker/bundlecache"
	"github.com/latentsync/latentsync-service/gpuworker/ecsprotect"
	"github.com/latentsync/latentsync-service/gpuworker/health"
	"github.com/latentsync/latentsync-service/gpuworker/infer/infertest"
	"github.com/latentsync/latentsync-service/internal/adapters/aws/awstest"
	"github.com/latentsync/latentsync-service/internal/awsenv"
)

func TestLoadConfig(t *testing.T) {
	full := map[string]string{
		awsenv.ModelBucket: "models", awsenv.ModelBundle: "v1", awsenv.JobsQueueURL: "http://q/jobs",
		awsenv.JobsTable: "jobs", awsenv.UploadsBucket: "up", awsenv.OutputsBucket: "out",
		awsenv.EventBusName: "bus", envORTLib: "/opt/ort/libonnxruntime.so",
	}
	with := func(changes map[string]string) func(string) string {
		m := map[string]string{}
		for k, v := range full {
			m[k] = v
		}
		for k, v := range changes {
			m[k] = v
		}
		return func(k string) string { return m[k] }
	}
	tests := []struct {
		name    string
		env     map[string]string
		wantErr []string // substrings; nil: valid
		check   func(t *testing.T, c config)
	}{
		{name: "defaults", check: func(t *testing.T, c config) {
			if c.Concurrency != 1 || c.ShutdownGrace != 25*time.Second || c.HealthAddr != DefaultHealthAddr ||
				c.CacheDir != filepath.Join(os.TempDir(), "latentsync-bundles") || c.DLQURL != "" {
				t.Errorf("defaults %+v", c)
			}
		}},
		{name: "all set", env: map[string]string{envConcurrency: "2", envShutdownGrace: "100s", envHealthAddr: "127.0.0.1:9000",
			envCacheDir: "/cache", awsenv.JobsDLQURL: "http://q/dlq"}, check: func(t *testing.T, c config) {
			if c.Concurrency != 2 || c.ShutdownGrace != 100*time.Second || c.HealthAddr != "127.0.0.1:9000" || c.CacheDir != "/cache" || c.DLQURL != "http://q/dlq" {
				t.Errorf("config %+v", c)
			}
		}},
		{name: "missing", env: map[string]string{awsenv.ModelBucket: "", awsenv.ModelBundle: "", envORTLib: ""},
			wantErr: []string{awsenv.ModelBucket, awsenv.ModelBundle, envORTLib}},
		{name: "relative library", env: map[string]string{envORTLib: "libonnxruntime.so"}, wantErr: []string{"absolute"}},
		{name: "bad numbers", env: map[string]string{envConcurrency: "0", envShutdownGrace: "3m"},
			wantErr: []string{envConcurrency, envShutdownGrace}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(with(tc.env))
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, c)
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
		})
	}
}

// logLines parses the JSON log, failing on any line that is not JSON.
func logLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		lines = append(lines, m)
	}
	return lines
}

// awsEnv points the worker at fauxqs with a models bucket, queues and every
// other variable it needs, and returns the models bucket's name.
func awsEnv(t *testing.T, f *awstest.Fauxqs, version string) string {
	t.Helper()
	models := f.CreateBucket(t, awstest.Name(t, "models"))
	queueURL, dlqURL := f.CreateQueues(t, awstest.Name(t, "jobs"), 3)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	healthAddr := l.Addr().String()
	l.Close()
	lib := infertest.LibraryPath()
	if lib == "" {
		lib = "/nonexistent/libonnxruntime.so"
	}
	for k, v := range awstest.Env(f.Endpoint, "S3", "SQS", "DYNAMODB", "EVENTBRIDGE") {
		t.Setenv(k, v)
	}
	for k, v := range map[string]string{
		awsenv.S3PathStyle: "true", awsenv.ModelBucket: models, awsenv.ModelBundle: version,
		awsenv.JobsQueueURL: queueURL, awsenv.JobsDLQURL: dlqURL, awsenv.JobsTable: "jobs",
		awsenv.UploadsBucket: "uploads", awsenv.OutputsBucket: "outputs", awsenv.EventBusName: "bus",
		envCacheDir: t.TempDir(), envHealthAddr: healthAddr, envORTLib: lib, ecsprotect.EnvAgentURI: "",
		envShutdownGrace: "1s",
	} {
		t.Setenv(k, v)
	}
	return models
}

// A bundle version that was never published: the worker says so on one
// log line and exits with ExitBundle, never ready.
func TestMissingBundleExitsDistinctly(t *testing.T) {
	f := awstest.StartFauxqs(t)
	awsEnv(t, f, "v-not-published")
	var out syncbuf.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	code := run(ctx, nil, os.Getenv, &out)
	if code != ExitBundle || ExitBundle == ExitOK || ExitBundle == ExitFailure {
		t.Fatalf("exit code %d, want the distinct %d\n%s", code, ExitBundle, out.String())
	}
	var found map[string]any
	for _, l := range logLines(t, out.String()) {
		if l["msg"] == "model bundle unusable; worker not ready, exiting" {
			found = l
		}
		if l["msg"] == "worker ready" {
			t.Error("the worker reported ready")
		}
	}
	if found == nil {
		t.Fatalf("no bundle failure line in\n%s", out.String())
	}
	if found["level"] != "ERROR" || found["bundle_version"] != "v-not-published" || found["stage"] != stageDownload ||
		found["code"] != "MODEL_UNAVAILABLE" || found["exit_code"] != float64(ExitBundle) ||
		!strings.Contains(found["error"].(string), "v-not-published/manifest.json is missing") {
		t.Errorf("failure line %v", found)
	}
}

// The stand-in bundle published to the emulator: the worker downloads,
// loads and warms it up, reports ready, answers its own health check and
// stops cleanly on cancellation (SIGTERM).
func TestReadyThenStop(t *testing.T) {
	if infertest.LibraryPath() == "" {
		t.Skip("ONNX Runtime not available: set LATENTSYNC_ORT_LIB or run make deps")
	}
	f := awstest.StartFauxqs(t)
	const version = "standin-1" // the stand-in manifest's own version
	models := awsEnv(t, f, version)
	src := "../testdata/bundle"
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.S3.PutObject(t.Context(), &s3.PutObjectInput{
			Bucket: aws.String(models), Key: aws.String(bundlecache.Prefix + "/" + version + "/" + e.Name()), Body: bytes.NewReader(data),
		}); err != nil {
			t.Fatal(err)
		}
	}

	var out syncbuf.Buffer
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- run(ctx, nil, os.Getenv, &out) }()

	addr := os.Getenv(envHealthAddr)
	deadline := time.Now().Add(60 * time.Second)
	for health.Probe(t.Context(), addr) != nil {
		select {
		case code := <-done:
			t.Fatalf("worker exited with %d before ready\n%s", code, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not healthy after 60 s\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := http.Get("http://" + addr + health.Path)
	if err != nil {
		t.Fatal(err)
	}
	var st health.Status
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || !st.Ready || st.BundleVersion != version || st.Provider == "" {
		t.Errorf("health %+v, %v: want ready on %s with a provider", st, err, version)
	}
	if code := run(t.Context(), []string{"healthcheck"}, os.Getenv, &syncbuf.Buffer{}); code != ExitOK {
		t.Errorf("healthcheck exit code %d, want 0", code)
	}

	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("exit code %d after stop, want 0\n%s", code, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("worker did not stop\n%s", out.String())
	}
	if code := run(t.Context(), []string{"healthcheck"}, os.Getenv, &syncbuf.Buffer{}); code != ExitFailure {
		t.Errorf("healthcheck of a stopped worker: exit code %d, want %d", code, ExitFailure)
	}
	var warm bool
	for _, l := range logLines(t, out.String()) {
		if l["msg"] == "warm-up inference done" && l["stage"] == stageWarmup && l["bundle_version"] == version {
			warm = true
		}
	}
	if !warm {
		t.Errorf("no warm-up line in\n%s", out.String())
	}
}
