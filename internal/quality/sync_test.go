package quality

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestSyncOffsetWorkedExample checks the distance curve itself on a case
// small enough to do by hand: 1-D embeddings, video all 0, audio 1, 2, 4.
//
//	shift -1: pairs (v1,a0), (v2,a1) -> (1+2)/2   = 1.5
//	shift  0: (v0,a0), (v1,a1), (v2,a2) -> 7/3
//	shift +1: (v0,a1), (v1,a2)       -> (2+4)/2   = 3
//
// so offset -1 and confidence median - min = 7/3 - 3/2 = 5/6.
func TestSyncOffsetWorkedExample(t *testing.T) {
	video := [][]float32{{0}, {0}, {0}}
	audio := [][]float32{{1}, {2}, {4}}
	offset, conf, dists, err := SyncOffset(video, audio, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{1.5, 7.0 / 3, 3}
	for i := range want {
		if math.Abs(dists[i]-want[i]) > 1e-12 {
			t.Errorf("dists = %v, want %v", dists, want)
			break
		}
	}
	if offset != -1 || math.Abs(conf-5.0/6) > 1e-12 {
		t.Errorf("offset, confidence = %d, %g; want -1, %g", offset, conf, 5.0/6)
	}
}

// embeddings returns n random dim-dimensional unit-variance vectors, the
// stand-in for SyncNet's per-window embeddings.
func embeddings(rng *rand.Rand, n, dim int) [][]float32 {
	out := make([][]float32, n)
	for i := range out {
		out[i] = make([]float32, dim)
		for j := range out[i] {
			out[i][j] = float32(rng.NormFloat64())
		}
	}
	return out
}

// delayed returns audio whose window i carries video window i-k plus noise
// (audio lagging video by k frames; k < 0 means it leads); windows with no
// matching video window get unrelated embeddings.
func delayed(rng *rand.Rand, video [][]float32, k int, noise float64) [][]float32 {
	audio := embeddings(rng, len(video), len(video[0]))
	for i := range audio {
		if j := i - k; j >= 0 && j < len(video) {
			for d, v := range video[j] {
				audio[i][d] = v + float32(noise*rng.NormFloat64())
			}
		}
	}
	return audio
}

func TestSyncOffsetFindsShift(t *testing.T) {
	const frames, dim, maxShift = 100, 64, 15
	for _, k := range []int{-5, 0, 3, 7, -15, 15} {
		for seed := uint64(0); seed < 3; seed++ {
			rng := rand.New(rand.NewPCG(seed, uint64(k+100)))
			video := embeddings(rng, frames, dim)
			audio := delayed(rng, video, k, 0.1)
			offset, conf, dists, err := SyncOffset(video, audio, maxShift)
			if err != nil {
				t.Fatal(err)
			}
			if offset != k {
				t.Errorf("k=%d seed=%d: offset %d, want %d (dists %v)", k, seed, offset, k, dists)
			}
			if len(dists) != 2*maxShift+1 || slices.Min(dists) != dists[k+maxShift] {
				t.Errorf("k=%d seed=%d: minimum of the %d-point curve is not at index %d", k, seed, len(dists), k+maxShift)
			}
			// A clear match stands out by most of a typical distance.
			if med := median(dists); conf < 0.5*med {
				t.Errorf("k=%d seed=%d: confidence %.3f, want at least half the median distance %.3f", k, seed, conf, med)
			}
		}
	}
}

func TestSyncOffsetConfidenceSeparatesMatchFromNoise(t *testing.T) {
	const frames, dim, maxShift = 100, 64, 15
	rng := rand.New(rand.NewPCG(7, 7))
	video := embeddings(rng, frames, dim)
	shuffled := slices.Clone(video)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })

	tests := []struct {
		name    string
		audio   [][]float32
		matched bool
	}{
		{"perfect match", video, true},
		{"noisy match", delayed(rng, video, 0, 0.3), true},
		{"unrelated", embeddings(rng, frames, dim), false},
		{"shuffled windows", shuffled, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, conf, dists, err := SyncOffset(video, tc.audio, maxShift)
			if err != nil {
				t.Fatal(err)
			}
			// Relative to a typical distance, so the bound does not depend
			// on the embedding scale: unrelated curves are flat up to the
			// sampling noise of a mean over ~90 windows (a few percent).
			rel := conf / median(dists)
			if tc.matched && rel < 0.5 {
				t.Errorf("confidence/median = %.3f, want >= 0.5 for matching streams", rel)
			}
			if !tc.matched && rel > 0.1 {
				t.Errorf("confidence/median = %.3f, want <= 0.1 for unrelated streams", rel)
			}
		})
	}

	// A perfect match has distance exactly 0 at shift 0, so its confidence
	// is the median distance itself.
	_, conf, dists, err := SyncOffset(video, video, maxShift)
	if err != nil {
		t.Fatal(err)
	}
	if dists[maxShift] != 0 || conf != median(dists) {
		t.Errorf("perfect match: distance at 0 = %g, confidence %g, median %g", dists[maxShift], conf, median(dists))
	}
}

func TestSyncOffsetRejectsBadInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	ten := embeddings(rng, 10, 4)
	tests := []struct {
		name         string
		video, audio [][]float32
		maxShift     int
		want         string
	}{
		{"negative shift", ten, ten, -1, "negative max shift"},
		{"video too short", ten[:5], ten, 5, "too few"},
		{"audio too short", ten, ten[:3], 5, "too few"},
		{"empty", nil, nil, 0, "too few"},
		{"empty embeddings", [][]float32{{}}, [][]float32{{}}, 0, "empty embeddings"},
		{"ragged audio", ten, append(slices.Clone(ten[:9]), []float32{1}), 2, "audio embedding 9 has 1 values"},
		{"non-finite", ten, append(slices.Clone(ten[:9]), []float32{float32(math.Inf(1)), 0, 0, 0}), 2, "not finite"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := SyncOffset(tc.video, tc.audio, tc.maxShift)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
