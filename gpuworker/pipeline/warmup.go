package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/latentsync/latentsync-service/gpuworker/audio"
	"github.com/latentsync/latentsync-service/gpuworker/ddim"
	"github.com/latentsync/latentsync-service/gpuworker/face"
	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/raster"
)

// Warmup runs every network of the pipeline once, through the code a job
// uses and with a job's tensor shapes (a full chunk, the default guidance),
// on a blank frame and one second of silence, with a single denoising step.
// The first real job then does not pay for the providers' lazy set-up
// (CUDA kernels, memory arenas), and a bundle whose networks load but fail
// to run is caught before the worker reports ready (MODEL_UNAVAILABLE).
// It returns the time each stage took.
func (pl *Pipeline) Warmup(ctx context.Context) ([]StageTiming, error) {
	clock := newStageClock()
	err := pl.warmup(ctx, clock)
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return nil, joberr.Wrap(joberr.ModelUnavailable, err, "warm-up inference of bundle %s failed: %v", pl.b.Dir, err)
	}
	return clock.timings(), err
}

func (pl *Pipeline) warmup(ctx context.Context, clock *stageClock) error {
	frame := raster.New(pl.res, pl.res)
	if err := clock.measure(StageDetectFaces, func() error {
		_, err := pl.detector.Follow(ctx, frame, nil)
		return err
	}); err != nil {
		return fmt.Errorf("face detector: %w", err)
	}
	var audioCtx []float32
	if err := clock.measure(StageAudioEncode, func() error {
		cfg := pl.audioConfig()
		feats := audio.NewFeatures(make([]float32, cfg.SampleRate), newAudioEncoder(pl.b.AudioEncoder, cfg), cfg)
		var err error
		audioCtx, err = feats.Frames(ctx, 0, 1)
		return err
	}); err != nil {
		return fmt.Errorf("audio encoder: %w", err)
	}
	sched, err := ddim.New(pl.p.Scheduler.Config, 1)
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	// The chunk runner times the VAE, UNet and blend stages itself.
	r := pl.newChunkRunner(sched, pl.p.Defaults.GuidanceScale, 0, clock)
	if err := r.run(ctx, []*raster.RGB{frame}, []face.Affine{face.Identity()}, audioCtx); err != nil {
		return fmt.Errorf("one chunk: %w", err)
	}
	if pl.sync != nil {
		if err := clock.measure(StageSync, func() error { return pl.sync.warm(ctx) }); err != nil {
			return fmt.Errorf("syncnet: %w", err)
		}
	}
	return nil
}
