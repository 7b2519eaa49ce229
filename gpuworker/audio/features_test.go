package audio

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"math"
	"strings"
	"testing"
)

// melKey fingerprints a mel window so a fake encoder can tell which window
// it was given.
func melKey(mel []float32) uint64 {
	h := fnv.New64a()
	var b [4]byte
	for _, v := range mel {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
		_, _ = h.Write(b[:])
	}
	return h.Sum64()
}

// tagEncoder outputs, for step j of window k: value 0 = k, value 1 = the
// absolute step k*hop+j, and l*1000+d at layer l, dim d elsewhere, so a test
// can see which window served each step and that the layout survived.
type tagEncoder struct {
	cfg     Config
	windows map[uint64]int // mel fingerprint -> window index
	calls   []int          // windows encoded, in order
}

func (e *tagEncoder) Encode(_ context.Context, mel []float32) ([]float32, error) {
	k, ok := e.windows[melKey(mel)]
	if !ok {
		return nil, errors.New("unknown mel window")
	}
	e.calls = append(e.calls, k)
	steps := e.cfg.WindowSeconds * e.cfg.StepsPerSecond
	hop := e.cfg.HopSeconds * e.cfg.StepsPerSecond
	out := make([]float32, steps*e.cfg.Layers*e.cfg.Dim)
	for j := range steps {
		for l := range e.cfg.Layers {
			for d := range e.cfg.Dim {
				out[(j*e.cfg.Layers+l)*e.cfg.Dim+d] = float32(l*1000 + d)
			}
		}
		out[j*e.cfg.Layers*e.cfg.Dim] = float32(k)
		out[j*e.cfg.Layers*e.cfg.Dim+1] = float32(k*hop + j)
	}
	return out, nil
}

// newTagEncoder fingerprints the mel of every window the audio can need:
// window k covers samples [k*20 s, k*20 s + 30 s).
func newTagEncoder(x []float32, cfg Config) *tagEncoder {
	e := &tagEncoder{cfg: cfg, windows: map[uint64]int{}}
	m := NewMel()
	hopSamples := cfg.HopSeconds * cfg.SampleRate
	for k := 0; k == 0 || k*hopSamples < len(x); k++ {
		seg := x[min(k*hopSamples, len(x)):min(k*hopSamples+WindowSamples, len(x))]
		e.windows[melKey(m.LogMel(nil, seg))] = k
	}
	return e
}

func smallConfig() Config {
	c := DefaultConfig()
	c.Layers, c.Dim = 3, 4
	return c
}

func TestFeaturesWindowSelection(t *testing.T) {
	cfg := smallConfig()
	for _, tc := range []struct {
		name    string
		samples int
		frames  int // ceil(samples / 640)
		windows int // windows needed to cover every step
	}{
		{"0.5 s", 8000, 13, 1},
		{"just under 25 s", 25*SampleRate - 1, 625, 1},
		{"25 s", 25 * SampleRate, 625, 1},
		{"25 s and a step", 25*SampleRate + 1, 626, 2},
		{"45 s and a step", 45*SampleRate + 1, 1126, 3},
		{"70.3 s", 70*SampleRate + 4800, 1758, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := noise(tc.samples, uint32(tc.samples), 0.2)
			enc := newTagEncoder(x, cfg)
			f := NewFeatures(x, enc, cfg)
			if got := f.NumFrames(); got != tc.frames {
				t.Fatalf("NumFrames = %d, want %d", got, tc.frames)
			}
			totalSteps := (tc.samples + 319) / 320
			stepFloats := cfg.Layers * cfg.Dim
			const chunk = 16 // the pipeline's chunk size
			for start := 0; start < f.NumFrames(); start += chunk {
				n := min(chunk, f.NumFrames()-start)
				got, err := f.Frames(context.Background(), start, n)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != n*f.FrameSize() || f.FrameSize() != 10*stepFloats {
					t.Fatalf("len %d, frame size %d", len(got), f.FrameSize())
				}
				if len(f.cache) > 2 {
					t.Fatalf("%d windows cached", len(f.cache))
				}
				for i := range n {
					for j := range 10 {
						// Spec: frame i takes steps [2i-4, 2i+6), clamped to
						// the audio; step s comes from window 0 below 1250,
						// else from window (s-250)/1000.
						s := min(max(2*(start+i)-4+j, 0), totalSteps-1)
						wantK := 0
						if s >= 1250 {
							wantK = (s - 250) / 1000
						}
						v := got[(i*10+j)*stepFloats:][:stepFloats]
						if int(v[0]) != wantK || int(v[1]) != s {
							t.Fatalf("frame %d slot %d: window %v step %v, want window %d step %d",
								start+i, j, v[0], v[1], wantK, s)
						}
						for l := range cfg.Layers {
							for d := range cfg.Dim {
								if l == 0 && d < 2 {
									continue
								}
								if v[l*cfg.Dim+d] != float32(l*1000+d) {
									t.Fatalf("frame %d slot %d layer %d dim %d = %v", start+i, j, l, d, v[l*cfg.Dim+d])
								}
							}
						}
					}
				}
			}
			// Streaming in order encodes each window exactly once.
			if len(enc.calls) != tc.windows {
				t.Errorf("encoded windows %v, want 0..%d once each", enc.calls, tc.windows-1)
			}
			for i, k := range enc.calls {
				if k != i {
					t.Errorf("encoded windows %v, want 0..%d in order", enc.calls, tc.windows-1)
					break
				}
			}
		})
	}
}

func TestFeaturesOutOfOrderRequests(t *testing.T) {
	cfg := smallConfig()
	x := noise(70*SampleRate, 5, 0.2)
	enc := newTagEncoder(x, cfg)
	f := NewFeatures(x, enc, cfg)
	stepFloats := cfg.Layers * cfg.Dim
	// Frame i needs steps [2i-4, 2i+6): frame 1700 window 3, frame 10
	// window 0, frame 700 window 1, frame 626 windows 0 and 1. Two windows
	// stay cached; a miss evicts the least recently used one.
	for _, tc := range []struct {
		frame     int
		wantCalls []int
	}{
		{1700, []int{3}},
		{10, []int{3, 0}},
		{1700, []int{3, 0}},         // still cached
		{700, []int{3, 0, 1}},       // evicts 0, the least recently used
		{1700, []int{3, 0, 1}},      // 3 survived
		{10, []int{3, 0, 1, 0}},     // 0 re-encoded
		{626, []int{3, 0, 1, 0, 1}}, // steps 1248..1257 straddle windows 0 and 1
	} {
		got, err := f.Frames(context.Background(), tc.frame, 1)
		if err != nil {
			t.Fatal(err)
		}
		if s := int(got[stepFloats+1]); s != 2*tc.frame-3 {
			t.Errorf("frame %d slot 1: step %d, want %d", tc.frame, s, 2*tc.frame-3)
		}
		if len(f.cache) > 2 {
			t.Fatalf("%d windows cached", len(f.cache))
		}
		if len(enc.calls) != len(tc.wantCalls) {
			t.Fatalf("after frame %d: encoded %v, want %v", tc.frame, enc.calls, tc.wantCalls)
		}
		for i := range enc.calls {
			if enc.calls[i] != tc.wantCalls[i] {
				t.Fatalf("after frame %d: encoded %v, want %v", tc.frame, enc.calls, tc.wantCalls)
			}
		}
	}
}

// melEncoder is translation invariant: step j's values are read from mel
// frames 2j and 2j+1 only (layer l, dim d = mel bin d%80 of frame 2j+l%2).
type melEncoder struct{ cfg Config }

func (e melEncoder) Encode(_ context.Context, mel []float32) ([]float32, error) {
	frames := len(mel) / NMels
	steps := frames / 2
	out := make([]float32, steps*e.cfg.Layers*e.cfg.Dim)
	for j := range steps {
		for l := range e.cfg.Layers {
			for d := range e.cfg.Dim {
				out[(j*e.cfg.Layers+l)*e.cfg.Dim+d] = mel[(d%NMels)*frames+2*j+l%2]
			}
		}
	}
	return out, nil
}

// With a translation-invariant encoder the windowing must be invisible: every
// step's features equal those computed from one mel over the whole file, on
// both sides of each window seam (25 s and 45 s here).
func TestFeaturesNoSeamAtWindowBoundaries(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Layers, cfg.Dim = 2, NMels
	const samples = 47*SampleRate + 3200 // a whole number of 20 ms steps
	x := noise(samples, 77, 0.1)         // broadband: no mel bin is clamped
	for n := range x {
		x[n] += float32(0.2 * math.Sin(2*math.Pi*(200*float64(n)/SampleRate+3*math.Pow(float64(n)/SampleRate, 2))))
	}
	f := NewFeatures(x, melEncoder{cfg}, cfg)
	// Reference: the whole signal zero-padded to the end of the last window
	// (window 2 ends at 40 s + 30 s), so the tail sees the same padding.
	const padded = 70 * SampleRate
	whole := NewMel().LogMelFrames(nil, x, padded/HopLength)
	wholeFrames := padded / HopLength
	totalSteps := samples / 320

	got, err := f.Frames(context.Background(), 0, f.NumFrames())
	if err != nil {
		t.Fatal(err)
	}
	stepFloats := cfg.Layers * cfg.Dim
	checked := map[int]bool{}
	for i := range f.NumFrames() {
		for j := range 10 {
			s := min(max(2*i-4+j, 0), totalSteps-1)
			v := got[(i*10+j)*stepFloats:][:stepFloats]
			for l := range cfg.Layers {
				for d := range cfg.Dim {
					want := whole[d*wholeFrames+2*s+l]
					if v[l*cfg.Dim+d] != want {
						t.Fatalf("step %d layer %d bin %d: %v from the windows, %v from the whole file",
							s, l, d, v[l*cfg.Dim+d], want)
					}
				}
			}
			checked[s] = true
		}
	}
	for _, s := range []int{1249, 1250, 2249, 2250, totalSteps - 1} {
		if !checked[s] {
			t.Errorf("step %d around a seam was not checked", s)
		}
	}
}

type failEncoder struct{ err error }

func (e failEncoder) Encode(context.Context, []float32) ([]float32, error) { return nil, e.err }

type sizeEncoder struct{ n int }

func (e sizeEncoder) Encode(context.Context, []float32) ([]float32, error) {
	return make([]float32, e.n), nil
}

func TestFeaturesErrors(t *testing.T) {
	x := noise(SampleRate, 1, 0.1)
	cfg := smallConfig()
	boom := errors.New("boom")
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	bad := func(mod func(*Config)) Config { c := cfg; mod(&c); return c }
	for _, tc := range []struct {
		name     string
		ctx      context.Context
		enc      Encoder
		cfg      Config
		start, n int
		is       error
		contains string
	}{
		{name: "encoder error", enc: failEncoder{boom}, cfg: cfg, n: 1, is: boom, contains: "audio window 0"},
		{name: "wrong output size", enc: sizeEncoder{7}, cfg: cfg, n: 1, contains: "returned 7 values"},
		{name: "canceled", ctx: canceled, enc: sizeEncoder{}, cfg: cfg, n: 1, is: context.Canceled},
		{name: "past the end", enc: sizeEncoder{}, cfg: cfg, start: 20, n: 6, contains: "outside [0, 25)"},
		{name: "negative start", enc: sizeEncoder{}, cfg: cfg, start: -1, n: 1, contains: "outside"},
		{name: "nil encoder", cfg: cfg, n: 1, contains: "nil encoder"},
		{name: "sample rate", enc: sizeEncoder{}, cfg: bad(func(c *Config) { c.SampleRate = 44100 }), n: 1, contains: "sample rate"},
		{name: "step rate", enc: sizeEncoder{}, cfg: bad(func(c *Config) { c.StepsPerSecond = 100 }), n: 1, contains: "steps/s"},
		{name: "hop", enc: sizeEncoder{}, cfg: bad(func(c *Config) { c.HopSeconds = 31 }), n: 1, contains: "hop"},
		{name: "dim", enc: sizeEncoder{}, cfg: bad(func(c *Config) { c.Dim = 0 }), n: 1, contains: "dim"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			_, err := NewFeatures(x, tc.enc, tc.cfg).Frames(ctx, tc.start, tc.n)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %q does not mention %q", err, tc.contains)
			}
		})
	}
}

func TestFeaturesNumFrames(t *testing.T) {
	for _, tc := range []struct{ samples, frames int }{
		{0, 0}, {1, 1}, {640, 1}, {641, 2}, {SampleRate, 25}, {SampleRate + 1, 26}, {180 * SampleRate, 4500},
	} {
		f := NewFeatures(make([]float32, tc.samples), sizeEncoder{}, DefaultConfig())
		if got := f.NumFrames(); got != tc.frames {
			t.Errorf("%d samples: NumFrames = %d, want %d", tc.samples, got, tc.frames)
		}
	}
	if got := DefaultConfig().FrameSize(); got != 50*384 {
		t.Errorf("default FrameSize = %d, want %d", got, 50*384)
	}
}

// The default sizes end to end: an encoder of the real output size.
func TestFeaturesDefaultConfigSizes(t *testing.T) {
	cfg := DefaultConfig()
	f := NewFeatures(noise(2*SampleRate, 9, 0.1), sizeEncoder{1500 * 5 * 384}, cfg)
	got, err := f.Frames(context.Background(), 0, 16)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 16*50*384 {
		t.Errorf("len = %d, want %d", len(got), 16*50*384)
	}
}
