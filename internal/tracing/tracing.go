// Package tracing sends the GPU worker's X-Ray trace of each job run: one
// segment per run, continuing the trace the API request started (its header
// travels in the queue message), with a subsegment for the download, each
// pipeline stage and the upload. Segments go over UDP to the X-Ray daemon
// (the ECS sidecar at AWS_XRAY_DAEMON_ADDRESS); without a daemon address
// tracing is off and costs nothing.
//
// The trace is built when the run ends, from the timings the worker
// measured, rather than live: the pipeline accounts its stages per chunk
// (a stage runs many times, interleaved with the others), so a live span
// per stage call would give hundreds of subsegments per job.
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-xray-sdk-go/header"
	"github.com/aws/aws-xray-sdk-go/strategy/sampling"
	"github.com/aws/aws-xray-sdk-go/xray"
	"github.com/aws/aws-xray-sdk-go/xraylog"

	"github.com/latentsync/latentsync-service/internal/traceheader"
)

// DaemonAddressEnv names the environment variable with the daemon's
// address, as the X-Ray SDKs and the ECS daemon sidecar document it.
const DaemonAddressEnv = "AWS_XRAY_DAEMON_ADDRESS"

// DefaultService is the segment name (the node in the X-Ray service map).
const DefaultService = "latentsync-worker"

// Config configures a Tracer.
type Config struct {
	// DaemonAddr is the daemon's address: "host:port" (UDP) or the SDKs'
	// "tcp:host:port udp:host:port" form. Empty turns tracing off.
	DaemonAddr string
	// Service names the segments [DefaultService].
	Service string
	// Sampling decides for runs whose trace header carries no decision
	// [X-Ray's default local rule: the first run each second, then 5 %].
	// A header with Sampled=1 or 0 is always followed.
	Sampling sampling.Strategy
}

// ConfigFromEnv reads the daemon address from getenv (os.Getenv).
func ConfigFromEnv(getenv func(string) string) Config {
	return Config{DaemonAddr: getenv(DaemonAddressEnv)}
}

// Tracer sends job traces; the zero value and a Tracer built without a
// daemon address send nothing.
type Tracer struct {
	service  string
	emitter  xray.Emitter
	sampling sampling.Strategy
}

// New returns a Tracer for cfg.
func New(cfg Config) (*Tracer, error) {
	if cfg.DaemonAddr == "" {
		return &Tracer{}, nil
	}
	addr, err := udpAddr(cfg.DaemonAddr)
	if err != nil {
		return nil, err
	}
	em, err := xray.NewDefaultEmitter(addr)
	if err != nil {
		return nil, fmt.Errorf("tracing: X-Ray emitter for %s: %w", addr, err)
	}
	t := &Tracer{service: cfg.Service, emitter: em, sampling: cfg.Sampling}
	if t.service == "" {
		t.service = DefaultService
	}
	if t.sampling == nil {
		if t.sampling, err = sampling.NewLocalizedStrategy(); err != nil {
			return nil, fmt.Errorf("tracing: default sampling rules: %w", err)
		}
	}
	return t, nil
}

// Enabled reports whether t sends anything.
func (t *Tracer) Enabled() bool { return t != nil && t.emitter != nil }

// udpAddr resolves the UDP address from either form of the daemon address.
func udpAddr(s string) (*net.UDPAddr, error) {
	hostport := s
	if fields := strings.Fields(s); len(fields) == 2 {
		hostport = ""
		for _, f := range fields {
			if rest, ok := strings.CutPrefix(f, "udp:"); ok {
				hostport = rest
			}
		}
	}
	a, err := net.ResolveUDPAddr("udp", hostport)
	if err != nil || hostport == "" {
		return nil, fmt.Errorf("tracing: invalid X-Ray daemon address %q: %v", s, err)
	}
	return a, nil
}

// Span is one timed part of a run.
type Span struct {
	Name     string
	Start    time.Time
	Duration time.Duration
	// Err marks the span as where the run failed.
	Err error
}

// Run is one finished run of a job, as the worker measured it.
type Run struct {
	JobID, Tenant, Bundle string
	// TraceHeader is the X-Amzn-Trace-Id value from the queue message ("" or
	// malformed: the run starts a trace of its own).
	TraceHeader string
	Start, End  time.Time
	Spans       []Span
	// Outcome annotates the segment (succeeded, failed, retry, ...).
	Outcome string
	// Err is why the run did not succeed. ClientError says the job's inputs
	// were at fault (X-Ray "error") rather than the service ("fault").
	Err         error
	ClientError bool
}

// traceIDPattern is X-Ray's trace id; anything else would be dropped by the
// daemon, so such a header starts a new trace instead.
var traceIDPattern = regexp.MustCompile(`^1-[0-9a-f]{8}-[0-9a-f]{24}$`)

// Record sends r's segment and returns its trace id ("" when tracing is
// off and r carries none). Sending is best effort: UDP to a local daemon.
func (t *Tracer) Record(ctx context.Context, r Run) string {
	in := traceheader.Parse(r.TraceHeader)
	if !traceIDPattern.MatchString(in.Root) {
		in = traceheader.Header{}
	}
	if !t.Enabled() || xray.SdkDisabled() {
		return in.Root
	}

	// The SDK takes its settings from the context; a context value of our
	// own keeps them per Tracer (xray.Configure would change a global).
	decision := in.Sampled == "1"
	if in.Sampled != "1" && in.Sampled != "0" {
		decision = t.sampling.ShouldTrace(&sampling.Request{ServiceName: t.service}).Sample
	}
	cfg := &xray.Config{Emitter: t.emitter, SamplingStrategy: fixed(decision), ContextMissingStrategy: ignoreMissing{}}
	ctx = context.WithValue(context.WithoutCancel(ctx), xray.RecorderContextKey{}, cfg)

	h := &header.Header{TraceID: in.Root, ParentID: in.Parent}
	ctx, seg := xray.NewSegmentFromHeader(ctx, t.service, nil, h)
	seg.Lock()
	seg.StartTime = seconds(r.Start)
	if r.Tenant != "" {
		seg.User = r.Tenant
	}
	traceID := seg.TraceID
	seg.Unlock()
	for k, v := range map[string]string{"job_id": r.JobID, "tenant": r.Tenant, "bundle": r.Bundle, "outcome": r.Outcome} {
		if v != "" {
			_ = seg.AddAnnotation(k, v) // string values are always accepted
		}
	}

	for _, s := range r.Spans {
		_, sub := xray.BeginSubsegment(ctx, s.Name)
		if sub == nil {
			continue
		}
		sub.Close(s.Err)
		// Close stamps the current time; the subsegment is sent with the
		// segment, so its measured times can still be set here.
		sub.Lock()
		sub.StartTime = seconds(s.Start)
		sub.EndTime = seconds(s.Start.Add(s.Duration))
		if s.Err != nil {
			markClient(sub, r.ClientError)
		}
		sub.Unlock()
	}

	if r.Err != nil {
		_ = seg.AddError(r.Err)
		seg.Lock()
		markClient(seg, r.ClientError)
		seg.Unlock()
	}
	seg.Close(nil) // sends it, end time = now, which is the run's end
	return traceID
}

// markClient turns the fault flag AddError/Close set into the error flag
// for failures caused by the client's inputs. Called with seg locked.
func markClient(seg *xray.Segment, client bool) {
	if client {
		seg.Fault, seg.Error = false, true
	}
}

func seconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// fixed is a sampling decision already taken.
type fixed bool

func (f fixed) ShouldTrace(*sampling.Request) *sampling.Decision {
	return &sampling.Decision{Sample: bool(f)}
}

// ignoreMissing: every subsegment here has its segment; the SDK's default
// strategy for a missing one is to panic.
type ignoreMissing struct{}

func (ignoreMissing) ContextMissing(any) {}

// RouteSDKLogs sends the X-Ray SDK's own log lines (emit failures) to log
// as JSON instead of plain text on stdout. The SDK keeps one logger per
// process, so this is for main to call once.
func RouteSDKLogs(log *slog.Logger) {
	xray.SetLogger(sdkLogger{log})
}

type sdkLogger struct{ log *slog.Logger }

func (l sdkLogger) Log(level xraylog.LogLevel, msg fmt.Stringer) {
	lv := slog.LevelDebug
	switch level {
	case xraylog.LogLevelInfo:
		lv = slog.LevelInfo
	case xraylog.LogLevelWarn:
		lv = slog.LevelWarn
	case xraylog.LogLevelError:
		lv = slog.LevelError
	}
	if l.log.Enabled(context.Background(), lv) {
		l.log.Log(context.Background(), lv, "x-ray sdk: "+msg.String())
	}
}

// Status describes t for a startup log line.
func (t *Tracer) Status() string {
	if !t.Enabled() {
		return "tracing off (" + DaemonAddressEnv + " not set)"
	}
	return "tracing to the X-Ray daemon as " + t.service
}
