package audio

import (
	"context"
	"errors"
	"fmt"
)

// Encoder runs the audio encoder (Whisper-tiny's encoder with every block's
// output kept) on one mel window. The pipeline implements it with ONNX
// Runtime.
//
// mel is NMels x (WindowSeconds*100) values, row-major [mel][frame] (an ONNX
// input [1, 80, 3000]). The result must be WindowSeconds*StepsPerSecond
// steps of Layers x Dim values laid out [step][layer][dim] (1500*5*384 for
// the default Config); a model that emits [layer][step][dim] must be
// transposed by the implementation. mel is reused after Encode returns, so
// the encoder must not keep it; the result is copied, so it may reuse its own.
type Encoder interface {
	Encode(ctx context.Context, mel []float32) ([]float32, error)
}

// Config sizes the features. Only DefaultConfig's sample rate and step rate
// fit the Whisper front end; the other sizes follow the model.
type Config struct {
	SampleRate     int // audio samples per second (16000, fixed by the mel front end)
	StepsPerSecond int // encoder steps per second (50: 20 ms, the encoder halves the 100 mel frames/s)
	WindowSeconds  int // encoder window (30)
	HopSeconds     int // distance between window starts (20); the 10 s overlap is split evenly
	Layers         int // values per step are Layers x Dim (5: embedding + 4 blocks)
	Dim            int // 384
	ContextBefore  int // steps before a video frame's centre step (4)
	ContextAfter   int // steps from the centre step on, centre included (6)
	FPS            int // video frames per second (25)
}

// DefaultConfig is LatentSync's: Whisper-tiny, 25 fps, steps [2i-4, 2i+6)
// for video frame i.
func DefaultConfig() Config {
	return Config{
		SampleRate: SampleRate, StepsPerSecond: 50, WindowSeconds: 30, HopSeconds: 20,
		Layers: 5, Dim: 384, ContextBefore: 4, ContextAfter: 6, FPS: 25,
	}
}

// FrameSize is the number of floats per video frame: (ContextBefore +
// ContextAfter) steps x Layers x Dim (50x384 by default).
func (c Config) FrameSize() int { return (c.ContextBefore + c.ContextAfter) * c.Layers * c.Dim }

func (c Config) validate() error {
	switch {
	case c.SampleRate != SampleRate:
		return fmt.Errorf("audio config: sample rate %d, the mel front end needs %d", c.SampleRate, SampleRate)
	case c.StepsPerSecond <= 0 || 2*HopLength*c.StepsPerSecond != SampleRate:
		return fmt.Errorf("audio config: %d steps/s, the encoder gives one step per 2 mel frames (%d/s)",
			c.StepsPerSecond, SampleRate/HopLength/2)
	case c.WindowSeconds <= 0 || c.HopSeconds <= 0 || c.HopSeconds > c.WindowSeconds:
		return fmt.Errorf("audio config: window %d s, hop %d s", c.WindowSeconds, c.HopSeconds)
	case (c.WindowSeconds-c.HopSeconds)*c.StepsPerSecond%2 != 0:
		return fmt.Errorf("audio config: window-hop overlap of %d steps does not split evenly",
			(c.WindowSeconds-c.HopSeconds)*c.StepsPerSecond)
	case c.Layers <= 0 || c.Dim <= 0 || c.FPS <= 0:
		return fmt.Errorf("audio config: layers %d, dim %d, fps %d", c.Layers, c.Dim, c.FPS)
	case c.ContextBefore < 0 || c.ContextAfter <= 0:
		return fmt.Errorf("audio config: context %d before, %d after", c.ContextBefore, c.ContextAfter)
	}
	return nil
}

// Features serves per-video-frame audio contexts from overlapping encoder
// windows, encoding windows lazily as frames are asked for.
//
// Windows of WindowSeconds start every HopSeconds (30 s every 20 s by
// default: window k starts at sample k*320000), and each contributes only its
// centre: window 0 keeps steps [0, hop+margin) and window k >= 1 keeps
// [k*hop+margin, (k+1)*hop+margin), margin = (window-hop)/2 = 250 steps.
// Every kept step thus has at least 5 s of real context on each side except
// near the file's ends, so there is no seam every 30 s (a step at 29.9 s is
// not encoded at the edge of a window). It costs window/hop = 1.5x the
// encoder runs of back-to-back windows.
//
// Memory is bounded: only the kept regions of the two most recently used
// windows are cached (about 19 MB by default), whatever the file's length.
// Requests in increasing frame order encode each window once; going
// backwards is correct but re-encodes. A chunk of frames spans far fewer
// steps than a hop, so it never needs more than two windows.
//
// Differences from LatentSync's reference (its whisper/transcribe.py), all
// deliberate: it runs back-to-back windows (the 30 s seam); it computes one
// mel over the whole file, so the max-8 clamp uses the file's peak where
// here each window uses its own (this only moves bins more than 80 dB below
// the peak, i.e. digital silence); and it zero-pads the last window's mel
// (value 0, a level of -40 dB) where here the audio is zero-padded before
// the mel, as current Whisper does.
//
// A Features is not safe for concurrent use.
type Features struct {
	samples []float32
	enc     Encoder
	cfg     Config
	err     error // invalid config, reported by Frames
	mel     *Mel
	melBuf  []float32

	stepSamples, winSteps, hopSteps, margin int
	stepFloats, totalSteps, numFrames       int

	cache []*keptWindow // most recently used first, at most 2
}

// keptWindow is the kept region of one encoded window.
type keptWindow struct {
	k     int       // window index
	first int       // absolute index of its first kept step
	data  []float32 // [step][layer][dim], kept steps only
}

// NewFeatures prepares features for 16 kHz mono samples (as from Decode).
// Nothing is encoded until Frames is called; an invalid cfg is reported by
// Frames. samples must not change while f is in use.
func NewFeatures(samples []float32, enc Encoder, cfg Config) *Features {
	f := &Features{samples: samples, enc: enc, cfg: cfg}
	if f.err = cfg.validate(); f.err != nil {
		return f
	}
	if enc == nil {
		f.err = errors.New("audio features: nil encoder")
		return f
	}
	f.mel = NewMel()
	f.stepSamples = cfg.SampleRate / cfg.StepsPerSecond
	f.winSteps = cfg.WindowSeconds * cfg.StepsPerSecond
	f.hopSteps = cfg.HopSeconds * cfg.StepsPerSecond
	f.margin = (f.winSteps - f.hopSteps) / 2
	f.stepFloats = cfg.Layers * cfg.Dim
	n := len(samples)
	// A step counts if it starts inside the audio: the last one may be
	// partly padding.
	f.totalSteps = (n + f.stepSamples - 1) / f.stepSamples
	f.numFrames = (n*cfg.FPS + cfg.SampleRate - 1) / cfg.SampleRate
	return f
}

// NumFrames is the number of video frames the audio covers: ceil(duration x
// FPS), every frame whose start time lies inside the audio (a 1 s clip gives
// 25 frames, 1.01 s gives 26). The pipeline loops or cuts the video to this
// length. (LatentSync's feature2chunks yields floor(steps/2)+1, one frame
// more when the duration is a whole number of frames; that extra frame is
// centred past the end of the audio.)
func (f *Features) NumFrames() int { return f.numFrames }

// FrameSize is the number of floats per frame Frames returns.
func (f *Features) FrameSize() int { return f.cfg.FrameSize() }

// Frames returns the audio contexts of video frames [start, start+n), each
// FrameSize floats laid out [ContextBefore+ContextAfter steps][Layers][Dim].
// Frame i is centred on step c = i*StepsPerSecond/FPS (2i by default) and
// takes steps [c-ContextBefore, c+ContextAfter). Steps outside the audio,
// [0, total steps), are clamped to the nearest valid step, i.e. the first
// and last steps are repeated: that is edge padding the model saw in
// training (LatentSync clamps too, though its lower bound is step 1, a quirk
// that only touches the first three frames), whereas zeros would be a
// signal it never saw.
func (f *Features) Frames(ctx context.Context, start, n int) ([]float32, error) {
	if f.err != nil {
		return nil, f.err
	}
	if start < 0 || n < 0 || start+n > f.numFrames {
		return nil, fmt.Errorf("audio features: frames [%d, %d) outside [0, %d)", start, start+n, f.numFrames)
	}
	span := f.cfg.ContextBefore + f.cfg.ContextAfter
	out := make([]float32, n*span*f.stepFloats)
	for i := range n {
		c := (start + i) * f.cfg.StepsPerSecond / f.cfg.FPS
		for j := range span {
			s := min(max(c-f.cfg.ContextBefore+j, 0), f.totalSteps-1)
			step, err := f.step(ctx, s)
			if err != nil {
				return nil, err
			}
			copy(out[(i*span+j)*f.stepFloats:], step)
		}
	}
	return out, nil
}

// windowOf is the window whose kept region holds step s.
func (f *Features) windowOf(s int) int {
	if s < f.hopSteps+f.margin {
		return 0
	}
	return (s - f.margin) / f.hopSteps
}

// keptRange is window k's kept steps [first, end), absolute.
func (f *Features) keptRange(k int) (first, end int) {
	if k == 0 {
		return 0, f.hopSteps + f.margin
	}
	first = k*f.hopSteps + f.margin
	return first, first + f.hopSteps
}

// step returns step s's Layers x Dim values, encoding its window if needed.
func (f *Features) step(ctx context.Context, s int) ([]float32, error) {
	k := f.windowOf(s)
	for i, w := range f.cache {
		if w.k == k {
			if i != 0 { // move to front: most recently used
				f.cache[0], f.cache[i] = f.cache[i], f.cache[0]
			}
			return w.data[(s-w.first)*f.stepFloats:][:f.stepFloats], nil
		}
	}
	w, err := f.encode(ctx, k)
	if err != nil {
		return nil, err
	}
	return w.data[(s-w.first)*f.stepFloats:][:f.stepFloats], nil
}

// encode runs window k through the mel front end and the encoder and caches
// its kept region, evicting the least recently used window beyond two.
func (f *Features) encode(ctx context.Context, k int) (*keptWindow, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("audio window %d: %w", k, err)
	}
	from := min(k*f.hopSteps*f.stepSamples, len(f.samples))
	to := min(from+f.cfg.WindowSeconds*f.cfg.SampleRate, len(f.samples))
	melFrames := f.cfg.WindowSeconds * f.cfg.SampleRate / HopLength
	if f.melBuf == nil {
		f.melBuf = make([]float32, NMels*melFrames)
	}
	// The mel pads the window's tail with zeros past the end of the audio.
	mel := f.mel.LogMelFrames(f.melBuf, f.samples[from:to], melFrames)
	feat, err := f.enc.Encode(ctx, mel)
	if err != nil {
		return nil, fmt.Errorf("audio window %d: encode: %w", k, err)
	}
	if want := f.winSteps * f.stepFloats; len(feat) != want {
		return nil, fmt.Errorf("audio window %d: encoder returned %d values, want %d (%d steps x %d x %d)",
			k, len(feat), want, f.winSteps, f.cfg.Layers, f.cfg.Dim)
	}
	first, end := f.keptRange(k)
	var w *keptWindow
	if len(f.cache) < 2 {
		w = &keptWindow{}
		f.cache = append(f.cache, nil)
	} else {
		w = f.cache[len(f.cache)-1] // least recently used: reuse its buffer
	}
	copy(f.cache[1:], f.cache[:len(f.cache)-1])
	f.cache[0] = w
	w.k, w.first = k, first
	rel := first - k*f.hopSteps
	w.data = append(w.data[:0], feat[rel*f.stepFloats:(rel+end-first)*f.stepFloats]...)
	return w, nil
}
