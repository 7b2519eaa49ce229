package job

import (
	"fmt"
	"math"
)

// Options are the client's pipeline settings.
type Options struct {
	InferenceSteps int     `json:"inference_steps"`
	GuidanceScale  float64 `json:"guidance_scale"`
	Seed           int64   `json:"seed"`
	SyncMode       string  `json:"sync_mode"`
}

// Option defaults and bounds.
const (
	DefaultSteps    = 20
	DefaultGuidance = 1.5
	MaxSteps        = 100
	MaxGuidance     = 10
)

// Normalize fills defaults and validates; the error message is client-facing.
func (o *Options) Normalize() error {
	if o.InferenceSteps == 0 {
		o.InferenceSteps = DefaultSteps
	}
	if o.GuidanceScale == 0 {
		o.GuidanceScale = DefaultGuidance
	}
	if o.SyncMode == "" {
		o.SyncMode = "cut_off"
	}
	switch {
	case o.InferenceSteps < 1 || o.InferenceSteps > MaxSteps:
		return fmt.Errorf("options.inference_steps must be 1 to %d, got %d", MaxSteps, o.InferenceSteps)
	case math.IsNaN(o.GuidanceScale) || o.GuidanceScale < 1 || o.GuidanceScale > MaxGuidance:
		return fmt.Errorf("options.guidance_scale must be 1 to %g, got %g", float64(MaxGuidance), o.GuidanceScale)
	case o.Seed < 0:
		return fmt.Errorf("options.seed must not be negative, got %d", o.Seed)
	case o.SyncMode != "cut_off" && o.SyncMode != "loop" && o.SyncMode != "bounce":
		return fmt.Errorf("options.sync_mode must be cut_off, loop or bounce, got %q", o.SyncMode)
	}
	return nil
}
