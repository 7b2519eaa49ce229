package audio

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// refSignal is one entry of testdata/reference/logmel.json, written by
// logmel_ref.py (an independent numpy implementation).
type refSignal struct {
	Name    string      `json:"name"`
	Kind    string      `json:"kind"`
	Samples int         `json:"samples"`
	Freqs   []float64   `json:"freqs"`
	Amps    []float64   `json:"amps"`
	F0      float64     `json:"f0"`
	F1      float64     `json:"f1"`
	Amp     float64     `json:"amp"`
	Seed    uint32      `json:"seed"`
	Frames  []int       `json:"frames"`
	LogMel  [][]float64 `json:"logmel"` // [mel][index into Frames]
}

// makeSignal mirrors logmel_ref.py's make_signal: float64 arithmetic, then
// rounded to float32.
func makeSignal(t *testing.T, s refSignal) []float32 {
	t.Helper()
	x := make([]float32, s.Samples)
	dur := float64(s.Samples) / SampleRate
	seed := s.Seed
	for n := range x {
		tt := float64(n) / SampleRate
		var v float64
		switch s.Kind {
		case "tones":
			for i, f := range s.Freqs {
				v += s.Amps[i] * math.Sin(2*math.Pi*f*tt)
			}
		case "chirp":
			v = s.Amp * math.Sin(2*math.Pi*(s.F0*tt+(s.F1-s.F0)/(2*dur)*tt*tt))
		case "noise":
			v = s.Amp * lcgUnit(&seed)
		default:
			t.Fatalf("unknown signal kind %q", s.Kind)
		}
		x[n] = float32(v)
	}
	return x
}

func loadLogMelRef(t *testing.T) []refSignal {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "reference", "logmel.json"))
	if err != nil {
		t.Fatalf("read reference (regenerate with testdata/reference/logmel_ref.py): %v", err)
	}
	var ref struct {
		Signals []refSignal `json:"signals"`
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatalf("parse logmel.json: %v", err)
	}
	if len(ref.Signals) == 0 {
		t.Fatal("logmel.json has no signals")
	}
	return ref.Signals
}

func TestLogMelMatchesNumpyReference(t *testing.T) {
	m := NewMel()
	for _, s := range loadLogMelRef(t) {
		t.Run(s.Name, func(t *testing.T) {
			got := m.LogMel(nil, makeSignal(t, s))
			if len(got) != NMels*WindowFrames {
				t.Fatalf("len = %d, want %d", len(got), NMels*WindowFrames)
			}
			if len(s.LogMel) != NMels {
				t.Fatalf("reference has %d mel rows", len(s.LogMel))
			}
			maxErr, at := 0.0, [2]int{}
			for b := range NMels {
				for j, f := range s.Frames {
					d := math.Abs(float64(got[b*WindowFrames+f]) - s.LogMel[b][j])
					if d > maxErr {
						maxErr, at = d, [2]int{b, f}
					}
				}
			}
			t.Logf("max abs error %.2g at mel %d frame %d", maxErr, at[0], at[1])
			if maxErr > 1e-4 {
				t.Errorf("max abs error %g at mel %d frame %d (got %g, want %g)", maxErr, at[0], at[1],
					got[at[0]*WindowFrames+at[1]], s.LogMel[at[0]][indexOf(s.Frames, at[1])])
			}
		})
	}
}

func indexOf(xs []int, v int) int {
	for i, x := range xs {
		if x == v {
			return i
		}
	}
	return -1
}

// A pure tone's energy lands in the filter centred nearest to it. Tones are
// placed at a filter centre and a quarter of the spacing either side: exactly
// half-way between two centres the slaney normalisation (narrower filters are
// taller) decides, not distance.
func TestPureTonePeaksInNearestMelBin(t *testing.T) {
	m := NewMel()
	// Filter i is centred on edge i+1 of 82 edges equally spaced in slaney
	// mel between 0 Hz and 8 kHz (computed here from the scale's definition).
	melMax := 15 + math.Log(8000.0/1000)/(math.Log(6.4)/27)
	centre := func(i int) float64 {
		mm := melMax * float64(i+1) / (NMels + 1)
		if mm < 15 {
			return mm * 200 / 3
		}
		return 1000 * math.Exp(math.Log(6.4)/27*(mm-15))
	}
	for b := 1; b < NMels-1; b += 7 {
		for _, off := range []float64{-0.25, 0, 0.25} {
			f := centre(b) + off*(centre(b+1)-centre(b-1))/2
			x := make([]float32, SampleRate) // 1 s
			for n := range x {
				x[n] = float32(0.5 * math.Sin(2*math.Pi*f*float64(n)/SampleRate))
			}
			const frames, frame = 100, 50 // frame 50 is well inside the tone
			lm := m.LogMelFrames(nil, x, frames)
			best, bestV := -1, math.Inf(-1)
			for i := range NMels {
				if v := float64(lm[i*frames+frame]); v > bestV {
					best, bestV = i, v
				}
			}
			nearest := 0
			for i := range NMels {
				if math.Abs(centre(i)-f) < math.Abs(centre(nearest)-f) {
					nearest = i
				}
			}
			if best != nearest {
				t.Errorf("%.1f Hz: peak in mel bin %d (centre %.1f Hz), want %d (centre %.1f Hz)",
					f, best, centre(best), nearest, centre(nearest))
			}
		}
	}
}

func TestLogMelProperties(t *testing.T) {
	m := NewMel()
	t.Run("silence is flat", func(t *testing.T) {
		// All mel values hit the 1e-10 floor: log -10, max -10, so every
		// value is (-10+4)/4 = -1.5.
		lm := m.LogMel(nil, nil)
		for i, v := range lm {
			if v != -1.5 {
				t.Fatalf("value %d = %g, want -1.5", i, v)
			}
		}
	})
	t.Run("dst reused and truncation", func(t *testing.T) {
		x := make([]float32, WindowSamples+5000)
		seed := uint32(7)
		for i := range x {
			x[i] = float32(0.1 * lcgUnit(&seed))
		}
		dst := make([]float32, NMels*WindowFrames)
		got := m.LogMel(dst, x)
		if &got[0] != &dst[0] {
			t.Error("dst not reused")
		}
		want := m.LogMel(nil, x[:WindowSamples])
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("value %d: %g with extra samples, %g trimmed", i, got[i], want[i])
			}
		}
	})
	t.Run("dynamic range is 8", func(t *testing.T) {
		x := make([]float32, SampleRate)
		for n := range x {
			x[n] = float32(math.Sin(2 * math.Pi * 1000 * float64(n) / SampleRate))
		}
		lm := m.LogMel(nil, x)
		lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
		for _, v := range lm {
			lo, hi = min(lo, v), max(hi, v)
		}
		// The clamp keeps log10 within 8 of the max: (x+4)/4 within 2.
		if d := hi - lo; math.Abs(float64(d)-2) > 1e-6 {
			t.Errorf("range of values = %g, want 2", d)
		}
	})
}

func TestLogMelConcurrentUse(t *testing.T) {
	m := NewMel()
	x := make([]float32, 3*SampleRate)
	seed := uint32(99)
	for i := range x {
		x[i] = float32(0.3 * lcgUnit(&seed))
	}
	want := m.LogMelFrames(nil, x, 300)
	var wg sync.WaitGroup
	errs := make(chan int, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := m.LogMelFrames(nil, x, 300)
			for i := range want {
				if got[i] != want[i] {
					errs <- i
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for i := range errs {
		t.Errorf("concurrent result differs at %d", i)
	}
}

func TestSlaneyFilterbank(t *testing.T) {
	fb := slaneyFilterbank(SampleRate, NFFT, NMels, 0, SampleRate/2)
	// Slaney normalisation makes each triangle's area (in Hz) 1: the
	// triangle of base edges[i]..edges[i+2] has height 2/base. On the 40 Hz
	// grid the Riemann sum approximates that area to a few per cent (the
	// narrow low filters are sampled by only two or three bins).
	for i := range fb {
		area := 0.0
		for _, w := range fb[i] {
			area += w * SampleRate / NFFT
		}
		if math.Abs(area-1) > 0.1 {
			t.Errorf("filter %d area %g, want ~1", i, area)
		}
	}
	// Every rfft bin belongs to at most two filters (the sparse form relies on it).
	for k := range nBins {
		c := 0
		for i := range fb {
			if fb[i][k] != 0 {
				c++
			}
		}
		if c > 2 {
			t.Errorf("bin %d in %d filters", k, c)
		}
	}
	for _, tc := range []struct{ hz, mel float64 }{
		{0, 0}, {500, 7.5}, {1000, 15}, {6400, 42},
	} {
		if got := hzToMelSlaney(tc.hz); math.Abs(got-tc.mel) > 1e-12 {
			t.Errorf("hzToMel(%g) = %g, want %g", tc.hz, got, tc.mel)
		}
		if got := melToHzSlaney(tc.mel); math.Abs(got-tc.hz) > 1e-9 {
			t.Errorf("melToHz(%g) = %g, want %g", tc.mel, got, tc.hz)
		}
	}
}

func BenchmarkLogMelWindow(b *testing.B) {
	m := NewMel()
	x := make([]float32, WindowSamples)
	seed := uint32(1)
	for i := range x {
		x[i] = float32(0.3 * lcgUnit(&seed))
	}
	dst := make([]float32, NMels*WindowFrames)
	b.ReportAllocs()
	for b.Loop() {
		m.LogMel(dst, x)
	}
}
