package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// GPUSample is one GPU's state at one moment.
type GPUSample struct {
	Index              int
	UtilizationPercent float64
	MemoryUsedBytes    float64
}

// GPUProbe reads GPU utilisation and memory through nvidia-smi, which the
// NVIDIA container runtime mounts into GPU containers ("utility"
// capability). Going through the CLI rather than NVML bindings keeps the
// worker free of a second cgo library and works the same on any driver.
type GPUProbe struct {
	path string
}

// FindGPUProbe returns a probe when nvidia-smi is on PATH, else nil (a CPU
// host: no GPU metrics).
func FindGPUProbe() *GPUProbe {
	p, err := exec.LookPath("nvidia-smi")
	if err != nil {
		return nil
	}
	return NewGPUProbe(p)
}

// NewGPUProbe uses the nvidia-smi at path.
func NewGPUProbe(path string) *GPUProbe { return &GPUProbe{path: path} }

// Sample queries every GPU once. On a host without a working driver
// nvidia-smi exits non-zero: that is an error, not zero utilisation.
func (p *GPUProbe) Sample(ctx context.Context) ([]GPUSample, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second) // a wedged driver must not stall the loop
	defer cancel()
	cmd := exec.CommandContext(ctx, p.path, "--query-gpu=index,utilization.gpu,memory.used", "--format=csv,noheader,nounits")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("nvidia-smi: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return parseGPUCSV(string(out))
}

// parseGPUCSV reads "index, utilization %, memory MiB" lines.
func parseGPUCSV(out string) ([]GPUSample, error) {
	var samples []GPUSample
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) != 3 {
			return nil, fmt.Errorf("nvidia-smi: unexpected line %q", line)
		}
		idx, err1 := strconv.Atoi(strings.TrimSpace(f[0]))
		util, err2 := strconv.ParseFloat(strings.TrimSpace(f[1]), 64)
		mib, err3 := strconv.ParseFloat(strings.TrimSpace(f[2]), 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			// "[N/A]" on GPUs that do not report a field: better no data than a wrong 0.
			return nil, fmt.Errorf("nvidia-smi: line %q: %w", line, err)
		}
		samples = append(samples, GPUSample{Index: idx, UtilizationPercent: util, MemoryUsedBytes: mib * (1 << 20)})
	}
	if len(samples) == 0 {
		return nil, errors.New("nvidia-smi: no GPU listed")
	}
	return samples, nil
}

// RecordGPU writes one record per GPU sample.
func (r *Recorder) RecordGPU(samples []GPUSample) error {
	at := r.now()
	var errs []error
	for _, s := range samples {
		errs = append(errs, r.w.Write(Record{
			Time: at,
			Directives: []Directive{{DimensionSets: noDims, Metrics: []Metric{
				{GPUUtilization, Percent, s.UtilizationPercent},
				{GPUMemoryUsedBytes, Bytes, s.MemoryUsedBytes},
			}}},
			Properties: map[string]any{PropGPUIndex: s.Index},
		}))
	}
	return errors.Join(errs...)
}

// RunGPU samples the probe every interval and records the samples until ctx
// ends. A nil probe (CPU host) returns at once. When the first sample fails
// there is no usable GPU: RunGPU returns that error (log it; the worker goes
// on without GPU metrics). Later failures are logged and sampling goes on,
// so one slow nvidia-smi does not end GPU metrics for the task's life.
func (r *Recorder) RunGPU(ctx context.Context, p *GPUProbe, every time.Duration, log *slog.Logger) error {
	if p == nil {
		return nil
	}
	if every <= 0 {
		return fmt.Errorf("metrics: GPU sampling interval %v", every)
	}
	if log == nil {
		log = slog.Default()
	}
	s, err := p.Sample(ctx)
	if err != nil {
		return fmt.Errorf("GPU metrics unavailable: %w", err)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := r.RecordGPU(s); err != nil {
			log.Warn("record GPU metrics", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if s, err = p.Sample(ctx); err != nil && ctx.Err() == nil {
			log.Warn("sample GPU", "error", err.Error())
		}
	}
}
