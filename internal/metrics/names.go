// Package metrics writes the GPU worker's CloudWatch metrics as Embedded
// Metric Format (EMF) log lines: one JSON object per line on stdout, which
// the awslogs driver ships to CloudWatch Logs, where they become metrics
// without any PutMetricData call. The names below are the contract with the
// CDK app's alarms and dashboard: both sides import them from here.
package metrics

// The namespace separates environments (the stack sets NamespaceEnv to
// "LatentSync/<environment>"), so two environments in one account never
// share an alarm's metric and no metric needs an Environment dimension.
const (
	// NamespaceEnv is the environment variable holding the namespace.
	NamespaceEnv = "METRICS_NAMESPACE"
	// DefaultNamespace is used when NamespaceEnv is unset (local runs).
	DefaultNamespace = "LatentSync"
)

// Dimension names. Every metric is published without dimensions (the
// dimension set [], what alarms read) and, where noted, once more with a
// dimension (what the dashboard breaks down by); Definitions is exact.
const (
	// DimErrorCode splits JobsFailed by job error code (joberr.Code).
	DimErrorCode = "ErrorCode"
	// DimStage splits StageSeconds by pipeline stage label ("08|denoise-unet").
	DimStage = "Stage"
)

// Metric names.
const (
	// EndToEndSeconds: job created -> completed, succeeded jobs only (what a
	// client waited for its result, uploads included).
	EndToEndSeconds = "EndToEndSeconds"
	// QueueWaitSeconds: message queued -> job started, every started job.
	QueueWaitSeconds = "QueueWaitSeconds"
	// ProcessingSeconds: the worker's time on a succeeded job.
	ProcessingSeconds = "ProcessingSeconds"
	// StageSeconds: wall time of one stage over a succeeded job, only with
	// dimension Stage.
	StageSeconds = "StageSeconds"
	// FramesPerSecond: output frames per second of the job's processing time.
	FramesPerSecond = "FramesPerSecond"
	// JobsSucceeded and JobsFailed count terminal outcomes; JobsFailed is
	// emitted both per ErrorCode and in total, so a failure-rate alarm needs
	// no SEARCH expression.
	JobsSucceeded = "JobsSucceeded"
	JobsFailed    = "JobsFailed"
	// SyncConfidence is SyncNet's confidence on the output; emitted only when
	// the bundle has a SyncNet (no data point otherwise, never a fake 0).
	SyncConfidence = "SyncConfidence"
	// GPUUtilization (percent) and GPUMemoryUsedBytes are sampled periodically
	// on GPU hosts, one data point per GPU per sample; nothing on CPU hosts.
	GPUUtilization     = "GPUUtilization"
	GPUMemoryUsedBytes = "GPUMemoryUsedBytes"
	// WorkerStarts counts worker processes that became ready; more starts
	// than scaling explains means tasks crash and restart.
	WorkerStarts = "WorkerStarts"
)

// Unit is a CloudWatch unit name.
type Unit string

const (
	Seconds        Unit = "Seconds"
	Count          Unit = "Count"
	CountPerSecond Unit = "Count/Second"
	Percent        Unit = "Percent"
	Bytes          Unit = "Bytes"
	None           Unit = "None"
)

// Definition is one metric as the worker emits it: its unit and the exact
// dimension sets it is published under (an alarm must use one of them).
type Definition struct {
	Name          string
	Unit          Unit
	DimensionSets [][]string
}

// Definitions lists every metric the worker emits (a fresh slice per call).
func Definitions() []Definition {
	none := [][]string{{}}
	return []Definition{
		{EndToEndSeconds, Seconds, none},
		{QueueWaitSeconds, Seconds, none},
		{ProcessingSeconds, Seconds, none},
		{StageSeconds, Seconds, [][]string{{DimStage}}},
		{FramesPerSecond, CountPerSecond, none},
		{JobsSucceeded, Count, none},
		{JobsFailed, Count, [][]string{{}, {DimErrorCode}}},
		{SyncConfidence, None, none},
		{GPUUtilization, Percent, none},
		{GPUMemoryUsedBytes, Bytes, none},
		{WorkerStarts, Count, none},
	}
}

// Property names put beside the metrics in each record: not dimensions
// (their cardinality is unbounded), but searchable with Logs Insights under
// the same names the worker's log lines use.
const (
	PropJobID    = "job_id"
	PropTenant   = "tenant"
	PropTraceID  = "trace_id"
	PropBundle   = "bundle"
	PropGPUIndex = "gpu_index"
)
