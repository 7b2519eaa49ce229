package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/latentsync/latentsync-service/gpuworker/bundle"
	"github.com/latentsync/latentsync-service/gpuworker/bundlecache"
	"github.com/latentsync/latentsync-service/gpuworker/ecsprotect"
	"github.com/latentsync/latentsync-service/gpuworker/health"
	"github.com/latentsync/latentsync-service/gpuworker/infer"
	"github.com/latentsync/latentsync-service/gpuworker/pipeline"
	"github.com/latentsync/latentsync-service/gpuworker/telemetry"
	"github.com/latentsync/latentsync-service/gpuworker/worker"
	"github.com/latentsync/latentsync-service/internal/awsenv"
	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/metrics"
	"github.com/latentsync/latentsync-service/internal/tracing"
)

// Exit codes. ExitBundle is distinct so that a task stopped for a bad
// model bundle is told apart from a crash in the ECS task events: the
// task never became healthy, ECS replaces it, and the deployment circuit
// breaker rolls back a deployment whose tasks keep failing this way.
const (
	ExitOK      = 0
	ExitFailure = 1  // configuration, ONNX Runtime, health port, anything but the bundle
	ExitBundle  = 78 // EX_CONFIG: the configured model bundle is missing, corrupt or does not run
)

// Startup stages, on the log lines of each step before the worker is ready.
const (
	stageDownload = "bundle-download"
	stageLoad     = "bundle-load"
	stageWarmup   = "warm-up"
)

// run is the worker process: args are the command-line arguments after
// the program name ("healthcheck" probes a running worker and exits).
// It returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	log := slog.New(slog.NewJSONHandler(stderr, nil)).With("service", "gpuworker")
	if len(args) == 1 && args[0] == "healthcheck" {
		addr := getenv(envHealthAddr)
		if addr == "" {
			addr = DefaultHealthAddr
		}
		if err := health.Probe(ctx, addr); err != nil {
			fmt.Fprintln(stderr, err)
			return ExitFailure
		}
		return ExitOK
	}
	if len(args) > 0 {
		fmt.Fprintf(stderr, "usage: gpuworker [healthcheck]; configured through the environment\n")
		return ExitFailure
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		log.Error("invalid configuration", "error", err.Error())
		return ExitFailure
	}
	base := log // bundlecache adds bundle_version itself
	log = log.With("bundle_version", cfg.BundleVersion)

	state := health.New(health.Config{})
	state.SetBundle(cfg.BundleVersion)
	l, err := health.Listen(cfg.HealthAddr)
	if err != nil {
		log.Error("health endpoint", "error", err.Error())
		return ExitFailure
	}
	hctx, stopHealth := context.WithCancel(context.WithoutCancel(ctx))
	healthDone := make(chan struct{})
	go func() {
		defer close(healthDone)
		if err := health.Serve(hctx, l, state.Handler(), log); err != nil {
			log.Error("health endpoint stopped", "error", err.Error())
		}
	}()
	defer func() { stopHealth(); <-healthDone }()

	return serve(ctx, cfg, getenv, stderr, state, base, log)
}

// serve prepares the pipelines and runs the worker until ctx ends.
func serve(ctx context.Context, cfg config, getenv func(string) string, stderr io.Writer, state *health.State, base, log *slog.Logger) int {
	bundleFailed := func(stage string, err error) int {
		if ctx.Err() != nil {
			log.Info("stopped before ready", "stage", stage, "error", err.Error())
			return ExitOK
		}
		state.SetFailed(joberr.MessageOf(err))
		// The line operators look for: not ready, and the task exits so ECS replaces it.
		log.Error("model bundle unusable; worker not ready, exiting", "stage", stage,
			"code", string(joberr.CodeOf(err)), "error", err.Error(), "exit_code", ExitBundle)
		return ExitBundle
	}
	env, err := awsenv.Load(ctx)
	if err != nil {
		log.Error("AWS configuration", "error", err.Error())
		return ExitFailure
	}

	cache, err := bundlecache.New(bundlecache.Config{Store: env.Bucket(cfg.ModelBucket), Dir: cfg.CacheDir, Logger: base.With("stage", stageDownload)})
	if err != nil {
		log.Error("bundle cache", "error", err.Error())
		return ExitFailure
	}
	dir, err := cache.Fetch(ctx, cfg.BundleVersion)
	if err != nil {
		if ctx.Err() == nil && joberr.CodeOf(err) != joberr.ModelUnavailable {
			log.Error("bundle cache", "stage", stageDownload, "error", err.Error()) // the disk, not the bundle
			return ExitFailure
		}
		return bundleFailed(stageDownload, err)
	}

	rt, err := infer.NewRuntime(infer.RuntimeOptions{LibraryPath: cfg.ORTLib, UseCUDA: true, Logger: log})
	if err != nil {
		log.Error("cannot load ONNX Runtime", "library", cfg.ORTLib, "error", err.Error())
		return ExitFailure
	}
	defer rt.Close()
	pipelines := make([]worker.Pipeline, 0, cfg.Concurrency)
	provider := ""
	for i := range cfg.Concurrency {
		start := time.Now()
		b, err := bundle.Load(ctx, rt, dir)
		if err != nil {
			return bundleFailed(stageLoad, err)
		}
		defer b.Close()
		p, err := pipeline.New(b, log)
		if err != nil {
			return bundleFailed(stageLoad, err)
		}
		log.Info("model bundle loaded", "stage", stageLoad, "slot", i, "provider", b.Provider(), "seconds", time.Since(start).Seconds())
		timings, err := p.Warmup(ctx)
		if err != nil {
			return bundleFailed(stageWarmup, err)
		}
		attrs := []any{"stage", stageWarmup, "slot", i}
		for _, t := range timings {
			attrs = append(attrs, t.Stage, t.Seconds)
		}
		log.Info("warm-up inference done", attrs...)
		pipelines = append(pipelines, p)
		provider = b.Provider()
	}

	protect, err := ecsprotect.New(ecsprotect.Config{AgentURI: getenv(ecsprotect.EnvAgentURI), Logger: log})
	if err != nil {
		log.Error("task protection", "error", err.Error())
		return ExitFailure
	}
	defer protect.Close()
	if !protect.Enabled() {
		log.Warn("no ECS agent endpoint: scale-in protection is off", "variable", ecsprotect.EnvAgentURI)
	}
	// Metrics go out as Embedded Metric Format lines in the task's log
	// stream (CloudWatch extracts them); traces to the X-Ray daemon when set.
	rec, err := metrics.NewRecorder(metrics.NewWriter(stderr, getenv(metrics.NamespaceEnv)))
	if err != nil {
		log.Error("metrics", "error", err.Error())
		return ExitFailure
	}
	tracing.RouteSDKLogs(log)
	tracer, err := tracing.New(tracing.ConfigFromEnv(getenv))
	if err != nil {
		log.Error("tracing", "error", err.Error())
		return ExitFailure
	}
	go func() {
		if err := rec.RunGPU(ctx, metrics.FindGPUProbe(), time.Minute, log); err != nil {
			log.Warn("no GPU metrics", "error", err.Error())
		}
	}()
	w, err := worker.New(worker.Config{
		Queue: env.Queue(cfg.QueueURL), Jobs: env.Jobs(cfg.JobsTable),
		Inputs: env.Bucket(cfg.UploadsBucket), Outputs: env.Bucket(cfg.OutputsBucket),
		Events: env.Events(cfg.EventBus), Pipeline: worker.Pool(pipelines...), Logger: log,
		Concurrency: cfg.Concurrency, ShutdownGrace: cfg.ShutdownGrace, BundleVersion: cfg.BundleVersion,
		Busy: protect.Busy, Polled: state.Polled, Running: state.Running,
		Observer: &telemetry.Observer{Metrics: rec, Tracer: tracer, Log: log},
	})
	if err != nil {
		log.Error("worker configuration", "error", err.Error())
		return ExitFailure
	}

	state.SetReady(cfg.BundleVersion, provider)
	if err := rec.WorkerStarted(); err != nil {
		log.Warn("metrics", "error", err.Error())
	}
	log.Info("worker ready", "provider", provider, "concurrency", cfg.Concurrency)
	var wg sync.WaitGroup
	wg.Go(func() { _ = w.Run(ctx) })
	if cfg.DLQURL != "" {
		wg.Go(func() { _ = w.RunDeadLetters(ctx, env.Queue(cfg.DLQURL)) })
	}
	<-ctx.Done()
	state.SetFailed("shutting down")
	log.Info("shutting down: polling stopped; running jobs finish within the grace or are released",
		"grace_s", cfg.ShutdownGrace.Seconds())
	wg.Wait()
	log.Info("worker stopped")
	return ExitOK
}
