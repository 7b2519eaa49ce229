package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/latentsync/latentsync-service/internal/awsenv"
)

// Variables only the worker reads; the shared names (tables, buckets,
// queues, bus, bundle version) are awsenv's.
const (
	envCacheDir      = "BUNDLE_CACHE_DIR"   // where bundles are cached across restarts [$TMPDIR/latentsync-bundles]
	envHealthAddr    = "HEALTH_ADDR"        // loopback address of the health endpoint [127.0.0.1:8081]
	envORTLib        = "ONNXRUNTIME_LIB"    // absolute path of libonnxruntime.so (required)
	envConcurrency   = "WORKER_CONCURRENCY" // jobs at once, each with its own sessions [1]
	envShutdownGrace = "SHUTDOWN_GRACE"     // how long a running job may finish after SIGTERM [25s]
)

// DefaultHealthAddr is where the health endpoint listens unless HEALTH_ADDR says otherwise.
const DefaultHealthAddr = "127.0.0.1:8081"

// config is the worker's environment.
type config struct {
	ModelBucket, BundleVersion, CacheDir    string
	QueueURL, DLQURL                        string // DLQURL optional: then another consumer settles dead letters
	JobsTable, UploadsBucket, OutputsBucket string
	EventBus                                string
	HealthAddr                              string
	ORTLib                                  string
	Concurrency                             int
	// ShutdownGrace stays under the task's stop timeout (ECS: 30 s by
	// default, at most 120 s; Spot gives 2 minutes' warning).
	ShutdownGrace time.Duration
}

// loadConfig reads the configuration and reports every missing or invalid
// variable at once.
func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		ModelBucket: getenv(awsenv.ModelBucket), BundleVersion: getenv(awsenv.ModelBundle),
		CacheDir: getenv(envCacheDir), QueueURL: getenv(awsenv.JobsQueueURL), DLQURL: getenv(awsenv.JobsDLQURL),
		JobsTable: getenv(awsenv.JobsTable), UploadsBucket: getenv(awsenv.UploadsBucket),
		OutputsBucket: getenv(awsenv.OutputsBucket), EventBus: getenv(awsenv.EventBusName),
		HealthAddr: getenv(envHealthAddr), ORTLib: getenv(envORTLib),
		Concurrency: 1, ShutdownGrace: 25 * time.Second,
	}
	var missing []string
	for _, v := range []struct{ name, value string }{
		{awsenv.ModelBucket, c.ModelBucket}, {awsenv.ModelBundle, c.BundleVersion},
		{awsenv.JobsQueueURL, c.QueueURL}, {awsenv.JobsTable, c.JobsTable},
		{awsenv.UploadsBucket, c.UploadsBucket}, {awsenv.OutputsBucket, c.OutputsBucket},
		{awsenv.EventBusName, c.EventBus}, {envORTLib, c.ORTLib},
	} {
		if v.value == "" {
			missing = append(missing, v.name)
		}
	}
	var problems []string
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("not set: %v", missing))
	}
	if c.ORTLib != "" && !filepath.IsAbs(c.ORTLib) {
		problems = append(problems, fmt.Sprintf("%s %q: must be an absolute path", envORTLib, c.ORTLib))
	}
	if c.CacheDir == "" {
		c.CacheDir = filepath.Join(os.TempDir(), "latentsync-bundles")
	}
	if c.HealthAddr == "" {
		c.HealthAddr = DefaultHealthAddr
	}
	if s := getenv(envConcurrency); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			problems = append(problems, fmt.Sprintf("%s %q: want a positive integer", envConcurrency, s))
		}
		c.Concurrency = n
	}
	if s := getenv(envShutdownGrace); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d > 2*time.Minute {
			problems = append(problems, fmt.Sprintf("%s %q: want a duration from 0s to 2m (the ECS stop timeout's maximum)", envShutdownGrace, s))
		}
		c.ShutdownGrace = d
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("worker configuration: %v", problems)
	}
	return c, nil
}
