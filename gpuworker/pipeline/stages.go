package pipeline

import (
	"time"
)

// Stage labels keep the numbered form of the team's profiling logs so old and
// new timings line up.
const (
	StageProbe       = "01|probe-inputs"
	StageLoadAudio   = "02|decode-audio"
	StageDetectFaces = "03|detect-faces"
	StageDecode      = "04|decode-video"
	StageAudioEncode = "05|audio-encoder"
	StageWarp        = "06|align-faces"
	StageVAEEncode   = "07|vae-encode"
	StageDenoise     = "08|denoise-unet"
	StageVAEDecode   = "09|vae-decode"
	StageBlend       = "10|blend-back"
	StageEncode      = "11|encode-video"
	StageSync        = "12|sync-metrics"
	StageSSIM        = "13|ssim"
)

// StageTiming is the wall time spent in one stage over the whole job.
type StageTiming struct {
	Stage   string  `json:"stage"`
	Seconds float64 `json:"seconds"`
}

// stageClock accumulates time per stage across chunks, keeping first-use order.
type stageClock struct {
	order []string
	total map[string]time.Duration
}

func newStageClock() *stageClock { return &stageClock{total: map[string]time.Duration{}} }

func (c *stageClock) add(stage string, d time.Duration) {
	if _, ok := c.total[stage]; !ok {
		c.order = append(c.order, stage)
	}
	c.total[stage] += d
}

// measure runs f and charges its time to stage.
func (c *stageClock) measure(stage string, f func() error) error {
	start := time.Now()
	err := f()
	c.add(stage, time.Since(start))
	return err
}

func (c *stageClock) timings() []StageTiming {
	out := make([]StageTiming, len(c.order))
	for i, s := range c.order {
		out[i] = StageTiming{Stage: s, Seconds: c.total[s].Seconds()}
	}
	return out
}
