package pipeline

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/latentsync/latentsync-service/gpuworker/audio"
	"github.com/latentsync/latentsync-service/gpuworker/infer"
	"github.com/latentsync/latentsync-service/internal/media/mediatest"
)

// The sample run carries the SyncNet evaluation and SSIM, timed under their
// own stages after the existing ones.
func TestSampleQualityMetrics(t *testing.T) {
	_, res := sampleResult(t, 1)
	if res.SyncConfidence == nil || res.SyncOffset == nil {
		t.Fatalf("sync confidence %v, offset %v: want both (the stand-in bundle has a SyncNet)", res.SyncConfidence, res.SyncOffset)
	}
	t.Logf("sync confidence %.4f offset %d; SSIM preserved %.4f overall %.4f over %d frames",
		*res.SyncConfidence, *res.SyncOffset, res.SSIMPreserved, res.SSIMOverall, res.SSIMFrames)
	if o := *res.SyncOffset; o < -SyncMaxShift || o > SyncMaxShift {
		t.Errorf("sync offset %d outside +-%d", o, SyncMaxShift)
	}
	if c := *res.SyncConfidence; c < 0 || math.IsNaN(c) {
		t.Errorf("sync confidence %v: median minus minimum cannot be negative", c)
	}
	// 160 frames, every 8th: 0, 8, ..., 152.
	if want := (res.Frames + ssimEvery - 1) / ssimEvery; res.SSIMFrames != want {
		t.Errorf("SSIM over %d frames, want %d", res.SSIMFrames, want)
	}
	if res.SSIMPreserved < 0.95 || res.SSIMPreserved > 1 {
		t.Errorf("SSIM outside the mouth %.4f, want >= 0.95", res.SSIMPreserved)
	}
	// The mouth is regenerated, so the whole face scores lower.
	if !(res.SSIMOverall < res.SSIMPreserved) {
		t.Errorf("SSIM overall %.4f not below preserved %.4f", res.SSIMOverall, res.SSIMPreserved)
	}
	if len(res.Warnings) != 0 {
		t.Errorf("warnings %v on a healthy run", res.Warnings)
	}
	for _, s := range []string{StageSync, StageSSIM} {
		if !hasStage(res.Stages, s) {
			t.Errorf("no timing for stage %s in %v", s, res.Stages)
		}
	}
	labels := make([]string, len(res.Stages))
	for i, s := range res.Stages {
		labels[i] = s.Stage
	}
	if !sort.StringsAreSorted(labels) {
		t.Errorf("stages out of their numbered order: %v", labels)
	}
}

// A paste-back that overwrites the whole face crop (alpha 1 everywhere
// instead of only inside the mouth) changes what must be preserved: the job
// still succeeds but carries LOW_PRESERVATION.
func TestLowPreservationWarning(t *testing.T) {
	pl := testPipeline(t)
	short := mediatest.FFmpeg(t, "short.mp4", "-i", sampleVideo, "-t", "1.2", "-c:v", "libx264", "-g", "50", "-an")
	whole := make([]float32, pl.res*pl.res)
	for i := range whole {
		whole[i] = 1
	}
	cases := []struct {
		name  string
		alpha []float32
		floor float64
		warn  bool
	}{
		{"healthy blend", pl.alpha, 0, false},
		{"alpha over the whole crop", whole, 0, true},
		{"healthy blend, floor above any SSIM", pl.alpha, 1.5, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			run := *pl
			run.alpha = c.alpha
			res, err := run.Run(context.Background(), Request{
				VideoPath: short, AudioPath: sampleAudio, OutputPath: filepath.Join(t.TempDir(), "out.mp4"),
				Steps: 2, MinPreservedSSIM: c.floor,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("SSIM preserved %.4f overall %.4f, warnings %v", res.SSIMPreserved, res.SSIMOverall, res.Warnings)
			if got := slices.Contains(res.Warnings, WarnLowPreservation); got != c.warn {
				t.Errorf("LOW_PRESERVATION = %v, want %v (SSIM preserved %.4f)", got, c.warn, res.SSIMPreserved)
			}
			if c.warn && c.floor == 0 && res.SSIMPreserved >= DefaultMinPreservedSSIM {
				t.Errorf("SSIM preserved %.4f with the whole crop pasted", res.SSIMPreserved)
			}
		})
	}
}

// The meter embeds each window of 5 consecutive output frames with its
// 0.2 s of speech exactly as one SyncNet call on that window alone would,
// also for windows spanning two chunks, and holds only 4 crops between
// chunks besides the embeddings.
func TestSyncMeterWindows(t *testing.T) {
	pl := testPipeline(t)
	c := pl.sync
	if c == nil {
		t.Fatal("the stand-in bundle has no SyncNet")
	}
	const total = 22 // 18 windows: the fewest the +-15 search takes is 16
	chunk := pl.p.FramesPerChunk
	rng := rand.New(rand.NewPCG(5, 6))
	plane := 3 * pl.res * pl.res
	faces := make([]float32, total*plane)
	for i := range faces {
		faces[i] = float32(rng.Float64()*2.4 - 1.2) // some beyond [-1, 1]: clamped
	}
	samples := make([]float32, total*audio.SampleRate/pl.p.FPS)
	for i := range samples {
		samples[i] = float32(0.3 * math.Sin(float64(i)*0.05*(1+float64(i)/8000)))
	}
	m := newSyncMeter(c, pl.res, chunk, total, samples)
	if m == nil {
		t.Fatalf("no meter for %d frames", total)
	}
	if short := newSyncMeter(c, pl.res, chunk, c.frames+SyncMaxShift-1, samples); short != nil {
		t.Errorf("a meter for %d frames: too few windows for the offset search", c.frames+SyncMaxShift-1)
	}
	bufLen := len(m.crops)
	for start := 0; start < total; start += chunk {
		n := min(chunk, total-start)
		if err := m.add(context.Background(), faces[start*plane:(start+n)*plane], n); err != nil {
			t.Fatal(err)
		}
		if m.held != c.frames-1 || len(m.crops) != bufLen {
			t.Errorf("after frame %d: %d crops held in a buffer of %d floats, want %d in %d", start+n, m.held, len(m.crops), c.frames-1, bufLen)
		}
	}
	windows := total - c.frames + 1
	if len(m.video) != windows*c.dim || len(m.audio) != windows*c.dim {
		t.Fatalf("%d and %d embedding values, want %d windows of %d", len(m.video), len(m.audio), windows, c.dim)
	}

	mel := audio.NewMel().LogMelFrames(nil, samples, total*c.melPerFrame)
	melFrames := total * c.melPerFrame
	crop := 3 * c.h * c.w
	for _, k := range []int{0, 12, 14, windows - 1} { // 12-16 and 14-18 cross the chunk seam
		video := make([]float32, c.frames*crop)
		for f := range c.frames {
			mouthCrop(faces[(k+f)*plane:(k+f+1)*plane], pl.res, c.h, c.w, video[f*crop:(f+1)*crop])
		}
		au := make([]float32, audio.NMels*c.melLen)
		for b := range audio.NMels {
			copy(au[b*c.melLen:(b+1)*c.melLen], mel[b*melFrames+k*c.melPerFrame:])
		}
		out, err := c.s.Run(context.Background(), map[string]infer.Tensor{
			c.videoIn: {Shape: []int64{1, int64(3 * c.frames), int64(c.h), int64(c.w)}, Float: video},
			c.audioIn: {Shape: []int64{1, 1, audio.NMels, int64(c.melLen)}, Float: au},
		})
		if err != nil {
			t.Fatal(err)
		}
		for name, pair := range map[string][2][]float32{
			"video": {out[c.videoOut].Float, m.video[k*c.dim : (k+1)*c.dim]},
			"audio": {out[c.audioOut].Float, m.audio[k*c.dim : (k+1)*c.dim]},
		} {
			for i := range pair[0] {
				if math.Abs(float64(pair[0][i]-pair[1][i])) > 1e-5 {
					t.Errorf("window %d: %s embedding[%d] = %g, alone %g", k, name, i, pair[1][i], pair[0][i])
					break
				}
			}
		}
	}
	off, conf, err := m.result()
	if err != nil {
		t.Fatal(err)
	}
	if off < -SyncMaxShift || off > SyncMaxShift || conf < 0 {
		t.Errorf("offset %d confidence %v", off, conf)
	}
}

func TestMouthCrop(t *testing.T) {
	const res, h, w = 8, 2, 4
	face := make([]float32, 3*res*res)
	for c := range 3 {
		for y := range res {
			for x := range res {
				v := float32(x) / 10 // a ramp along x
				if y < res/2 {
					v = 9 // the upper half must not leak in
				}
				if c == 2 {
					v = -5 // clamped
				}
				face[(c*res+y)*res+x] = v
			}
		}
	}
	dst := make([]float32, 3*h*w)
	mouthCrop(face, res, h, w, dst)
	// Each output pixel averages a 2x2 block of the lower half: x = 2i, 2i+1.
	for c := range 3 {
		for y := range h {
			for x := range w {
				want := float32(2*x)/10 + 0.05
				if c == 2 {
					want = -1
				}
				if got := dst[(c*h+y)*w+x]; math.Abs(float64(got-want)) > 1e-6 {
					t.Errorf("channel %d (%d,%d) = %g, want %g", c, x, y, got, want)
				}
			}
		}
	}
}

// New refuses a bundle whose SyncNet does not have the contract the meter
// feeds (it would otherwise fail on every job, silently dropping the metric).
func TestSyncContract(t *testing.T) {
	pl := testPipeline(t)
	cases := []struct {
		name string
		s    *infer.Session
		fps  int
		ok   bool
	}{
		{"stand-in SyncNet at 25 fps", pl.b.SyncNet, 25, true},
		{"mel frames not a whole number per video frame", pl.b.SyncNet, 30, false},
		{"audio window spans other than 5 frames", pl.b.SyncNet, 50, false},
		{"not a SyncNet", pl.b.VAEEncoder, 25, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := newSyncContract(c.s, c.fps)
			if (err == nil) != c.ok {
				t.Fatalf("error %v, want ok %v", err, c.ok)
			}
			if c.ok && (got.frames != 5 || got.h != 48 || got.w != 96 || got.melLen != 20 || got.melPerFrame != 4 || got.dim != 128) {
				t.Errorf("contract %+v, want 5 frames of 48x96, 20 mel frames (4 per frame), 128-d embeddings", *got)
			}
		})
	}
}
