// Package ddim implements the DDIM sampler (Song et al. 2021) with eta 0, the
// way diffusers' DDIMScheduler does for LatentSync: scaled_linear betas, leading
// timestep spacing with an offset, epsilon prediction.
package ddim

import (
	"fmt"
	"math"
)

// Config is the scheduler section of a model bundle manifest.
type Config struct {
	NumTrainTimesteps int     `json:"num_train_timesteps"`
	BetaStart         float64 `json:"beta_start"`
	BetaEnd           float64 `json:"beta_end"`
	BetaSchedule      string  `json:"beta_schedule"`    // scaled_linear | linear
	StepsOffset       int     `json:"steps_offset"`     // added to leading timesteps
	SetAlphaToOne     bool    `json:"set_alpha_to_one"` // alpha_bar before t=0
	PredictionType    string  `json:"prediction_type"`  // epsilon
	TimestepSpacing   string  `json:"timestep_spacing"` // leading | trailing | linspace
}

// Scheduler holds the noise schedule and the timesteps of one sampling run.
type Scheduler struct {
	alphasCumprod []float64
	finalAlpha    float64
	timesteps     []int
	stepRatio     int
}

// New prepares a sampling run of steps denoising steps.
func New(cfg Config, steps int) (*Scheduler, error) {
	n := cfg.NumTrainTimesteps
	if n <= 0 || steps <= 0 || steps > n {
		return nil, fmt.Errorf("ddim: %d inference steps over %d train timesteps", steps, n)
	}
	if cfg.PredictionType != "" && cfg.PredictionType != "epsilon" {
		return nil, fmt.Errorf("ddim: prediction type %q not supported", cfg.PredictionType)
	}
	betas := make([]float64, n)
	switch cfg.BetaSchedule {
	case "scaled_linear":
		a, b := math.Sqrt(cfg.BetaStart), math.Sqrt(cfg.BetaEnd)
		for i := range betas {
			v := a + (b-a)*float64(i)/float64(n-1)
			betas[i] = v * v
		}
	case "linear":
		for i := range betas {
			betas[i] = cfg.BetaStart + (cfg.BetaEnd-cfg.BetaStart)*float64(i)/float64(n-1)
		}
	default:
		return nil, fmt.Errorf("ddim: beta schedule %q not supported", cfg.BetaSchedule)
	}
	s := &Scheduler{alphasCumprod: make([]float64, n), stepRatio: n / steps}
	prod := 1.0
	for i, beta := range betas {
		prod *= 1 - beta
		s.alphasCumprod[i] = prod
	}
	s.finalAlpha = s.alphasCumprod[0]
	if cfg.SetAlphaToOne {
		s.finalAlpha = 1
	}
	s.timesteps = make([]int, steps)
	switch cfg.TimestepSpacing {
	case "", "leading":
		for i := range steps {
			s.timesteps[steps-1-i] = i*s.stepRatio + cfg.StepsOffset
		}
	case "trailing":
		ratio := float64(n) / float64(steps)
		for i := range steps {
			s.timesteps[i] = int(math.Round(float64(n)-float64(i)*ratio)) - 1
		}
	case "linspace":
		for i := range steps {
			s.timesteps[steps-1-i] = int(math.Round(float64(i) * float64(n-1) / float64(steps-1)))
		}
	default:
		return nil, fmt.Errorf("ddim: timestep spacing %q not supported", cfg.TimestepSpacing)
	}
	return s, nil
}

// Timesteps are the model timesteps of the run, noisiest first.
func (s *Scheduler) Timesteps() []int { return s.timesteps }

// AlphaCumprod is alpha_bar at timestep t; t < 0 is the step before the data.
func (s *Scheduler) AlphaCumprod(t int) float64 {
	if t < 0 {
		return s.finalAlpha
	}
	return s.alphasCumprod[t]
}

// Step moves latents x from timestep t to the previous timestep in place,
// given the predicted noise eps (eta 0: deterministic).
func (s *Scheduler) Step(x, eps []float32, t int) {
	at := s.AlphaCumprod(t)
	ap := s.AlphaCumprod(t - s.stepRatio)
	sqrtAt, sqrt1At := math.Sqrt(at), math.Sqrt(1-at)
	sqrtAp, sqrt1Ap := math.Sqrt(ap), math.Sqrt(1-ap)
	for i, xi := range x {
		e := float64(eps[i])
		x0 := (float64(xi) - sqrt1At*e) / sqrtAt
		x[i] = float32(sqrtAp*x0 + sqrt1Ap*e)
	}
}

// Guide combines the unconditional and conditional noise predictions with
// classifier-free guidance, writing into dst (which may alias either input).
func Guide(dst, uncond, cond []float32, scale float32) {
	for i := range dst {
		dst[i] = uncond[i] + scale*(cond[i]-uncond[i])
	}
}
