package pipeline

import (
	"context"
	"errors"
	"testing"

	"github.com/latentsync/latentsync-service/internal/joberr"
)

func TestWarmupRunsEveryNetwork(t *testing.T) {
	pl := testPipeline(t)
	stages, err := pl.Warmup(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	took := map[string]float64{}
	for _, s := range stages {
		took[s.Stage] = s.Seconds
	}
	for _, s := range []string{StageDetectFaces, StageAudioEncode, StageVAEEncode, StageDenoise, StageVAEDecode, StageSync} {
		if took[s] <= 0 {
			t.Errorf("stage %s not run (timings %v)", s, stages)
		}
	}
}

// A stopped warm-up is the caller ending it, not a bad bundle.
func TestWarmupStopsWithContext(t *testing.T) {
	pl := testPipeline(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := pl.Warmup(ctx)
	if !errors.Is(err, context.Canceled) || joberr.CodeOf(err) == joberr.ModelUnavailable {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// Networks that load but cannot run with the manifest's parameters (here a
// chunk length the UNet does not take) make the bundle unusable.
func TestWarmupFailureIsModelUnavailable(t *testing.T) {
	broken := *testPipeline(t)
	broken.p.FramesPerChunk = 7
	_, err := broken.Warmup(t.Context())
	if joberr.CodeOf(err) != joberr.ModelUnavailable {
		t.Errorf("err = %v, want MODEL_UNAVAILABLE", err)
	}
}
