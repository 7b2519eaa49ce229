package quality

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// SyncOffset scores audio-visual synchronisation the way SyncNet's
// evaluation does. video[i] and audio[i] are the embeddings of the i-th
// window of the mouth crop and of the audio features aligned with it. For
// every shift s in [-maxShift, maxShift] it takes the mean, over the windows
// i for which audio[i+s] exists, of the Euclidean distance between video[i]
// and audio[i+s]; dists[s+maxShift] is that mean.
//
// offset is the shift with the smallest mean distance (the lowest such shift
// on a tie). Its sign: a clip whose audio lags the video by k frames
// (audio[i] matches video[i-k]) gives offset +k; audio that leads gives -k.
// confidence is median(dists) - min(dists): how far the best shift stands
// out from a typical one, near zero when audio and video are unrelated.
//
// Every shift must have at least one window, so both sequences need more
// than maxShift entries, all of one non-zero length.
func SyncOffset(video, audio [][]float32, maxShift int) (offset int, confidence float64, dists []float64, err error) {
	if maxShift < 0 {
		return 0, 0, nil, fmt.Errorf("sync offset: negative max shift %d", maxShift)
	}
	if len(video) <= maxShift || len(audio) <= maxShift {
		return 0, 0, nil, fmt.Errorf("sync offset: %d video and %d audio windows are too few for shifts of +-%d (need more than %d each)",
			len(video), len(audio), maxShift, maxShift)
	}
	dim := len(video[0])
	if dim == 0 {
		return 0, 0, nil, errors.New("sync offset: empty embeddings")
	}
	for _, seq := range []struct {
		name string
		emb  [][]float32
	}{{"video", video}, {"audio", audio}} {
		for i, e := range seq.emb {
			if len(e) != dim {
				return 0, 0, nil, fmt.Errorf("sync offset: %s embedding %d has %d values, video embedding 0 has %d", seq.name, i, len(e), dim)
			}
		}
	}

	dists = make([]float64, 2*maxShift+1)
	for s := -maxShift; s <= maxShift; s++ {
		lo, hi := max(0, -s), min(len(video), len(audio)-s)
		var sum float64
		for i := lo; i < hi; i++ {
			sum += euclidean(video[i], audio[i+s])
		}
		d := sum / float64(hi-lo)
		if math.IsNaN(d) || math.IsInf(d, 0) {
			return 0, 0, nil, fmt.Errorf("sync offset: distance at shift %d is not finite", s)
		}
		dists[s+maxShift] = d
	}

	best := 0
	for i, d := range dists {
		if d < dists[best] {
			best = i
		}
	}
	return best - maxShift, median(dists) - dists[best], dists, nil
}

func euclidean(a, b []float32) float64 {
	var sum float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		sum += d * d
	}
	return math.Sqrt(sum)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
