package audio

import (
	"fmt"
	"math"
)

// Whisper's front end (openai/whisper audio.py), which LatentSync's audio
// encoder was trained on. These are properties of the model, not tunables.
const (
	SampleRate    = 16000                     // Hz
	NFFT          = 400                       // 25 ms STFT window
	HopLength     = 160                       // 10 ms: 100 mel frames per second
	NMels         = 80                        // mel bins
	WindowSamples = 30 * SampleRate           // one encoder window, 480000 samples
	WindowFrames  = WindowSamples / HopLength // 3000 mel frames per window
	nBins         = NFFT/2 + 1                // rfft bins
	melFloor      = 1e-10                     // clamp before log10
	dynamicRange  = 8.0                       // log10 units kept below the max (80 dB)
)

// Mel computes Whisper's log-mel spectrogram. It holds the precomputed
// tables (Hann window, FFT plan, sparse slaney filterbank) and is read-only
// after NewMel, so one Mel may serve any number of goroutines.
type Mel struct {
	fft     *fftPlan
	window  [NFFT]float64
	filters [NMels]melFilter
}

// melFilter is one triangular filter stored as its non-zero span: each
// rfft bin feeds at most two filters, so the sparse form does ~2 multiply-adds
// per bin instead of 80.
type melFilter struct {
	start int       // first rfft bin with a non-zero weight
	w     []float64 // weights for bins start, start+1, ...
}

// NewMel builds the tables.
func NewMel() *Mel {
	p, err := newFFTPlan(NFFT)
	if err != nil {
		panic(err) // NFFT is a positive constant
	}
	m := &Mel{fft: p}
	for n := range m.window {
		// Periodic Hann (torch.hann_window's default): the denominator is
		// NFFT, not NFFT-1.
		m.window[n] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(n)/NFFT)
	}
	fb := slaneyFilterbank(SampleRate, NFFT, NMels, 0, SampleRate/2)
	for i, row := range fb {
		lo, hi := -1, -1
		for k, w := range row {
			if w != 0 {
				if lo < 0 {
					lo = k
				}
				hi = k
			}
		}
		if lo < 0 { // cannot happen for Whisper's sizes; keep the row empty
			continue
		}
		m.filters[i] = melFilter{start: lo, w: append([]float64(nil), row[lo:hi+1]...)}
	}
	return m
}

// LogMel computes one encoder window: samples are truncated or zero-padded
// at the end to WindowSamples (Whisper's pad_or_trim on the audio), and the
// result is NMels x WindowFrames, row-major [mel][frame], the layout of an
// ONNX input [1, 80, 3000]. dst is reused when it has that length and
// allocated when nil; any other length panics.
func (m *Mel) LogMel(dst, samples []float32) []float32 {
	return m.LogMelFrames(dst, samples, WindowFrames)
}

// LogMelFrames is LogMel for a signal of frames*HopLength samples (frames >= 2).
//
// The definition, step by step: reflect-pad NFFT/2 samples on each side
// (torch.stft center=True), frames of NFFT samples every HopLength times the
// periodic Hann window, power |X|², drop the last STFT frame (Whisper's
// stft[..., :-1]), slaney mel filterbank, log10(max(mel, 1e-10)), clamp to
// max-8, then (x+4)/4. The max is taken over this call's frames only, so each
// 30 s window is normalised on its own, as Whisper does for a padded clip.
func (m *Mel) LogMelFrames(dst, samples []float32, frames int) []float32 {
	if frames < 2 {
		panic(fmt.Sprintf("audio: LogMelFrames needs at least 2 frames, got %d", frames))
	}
	if dst == nil {
		dst = make([]float32, NMels*frames)
	}
	if len(dst) != NMels*frames {
		panic(fmt.Sprintf("audio: LogMelFrames dst has %d values, want %d", len(dst), NMels*frames))
	}
	n := frames * HopLength // padded/truncated signal length
	if len(samples) > n {
		samples = samples[:n]
	}
	// sample returns x[i] of the reflect-padded signal, i relative to the
	// unpadded start; beyond len(samples) the signal is the zero padding.
	sample := func(i int) float64 {
		if i < 0 {
			i = -i
		} else if i >= n {
			i = 2*(n-1) - i
		}
		if i < len(samples) {
			return float64(samples[i])
		}
		return 0
	}

	var (
		z, spec [NFFT]complex128
		pw      [2][nBins]float64
	)
	maxLog := math.Inf(-1)
	for t := 0; t < frames; t += 2 {
		// Two real frames per complex FFT: frame t in the real part, t+1 in
		// the imaginary part, separated afterwards by conjugate symmetry.
		pair := min(2, frames-t)
		for j := range NFFT {
			a := sample(t*HopLength - NFFT/2 + j)
			b := 0.0
			if pair == 2 {
				b = sample((t+1)*HopLength - NFFT/2 + j)
			}
			z[j] = complex(a*m.window[j], b*m.window[j])
		}
		m.fft.transform(spec[:], z[:])
		for k := range nBins {
			zk := spec[k]
			zc := spec[(NFFT-k)%NFFT]
			zc = complex(real(zc), -imag(zc)) // conj(Z[N-k])
			xa := (zk + zc) / 2               // DFT of the real part
			d := zk - zc
			xb := complex(imag(d)/2, -real(d)/2) // (zk - zc)/2i: DFT of the imaginary part
			pw[0][k] = real(xa)*real(xa) + imag(xa)*imag(xa)
			pw[1][k] = real(xb)*real(xb) + imag(xb)*imag(xb)
		}
		for f := range pair {
			for i := range m.filters {
				flt := &m.filters[i]
				acc := 0.0
				for j, w := range flt.w {
					acc += w * pw[f][flt.start+j]
				}
				v := math.Log10(max(acc, melFloor))
				maxLog = max(maxLog, v)
				dst[i*frames+t+f] = float32(v)
			}
		}
	}
	floor := maxLog - dynamicRange
	for i, v := range dst {
		dst[i] = float32((max(float64(v), floor) + 4) / 4)
	}
	return dst
}

// slaneyFilterbank is librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax,
// htk=False, norm='slaney'): triangles equally spaced on the Slaney mel
// scale (linear below 1 kHz, logarithmic above), each scaled to unit area
// (2 / bandwidth in Hz). Rows are mel bins, columns rfft bins.
func slaneyFilterbank(sr, nfft, nmels int, fmin, fmax float64) [][]float64 {
	nb := nfft/2 + 1
	lo, hi := hzToMelSlaney(fmin), hzToMelSlaney(fmax)
	edges := make([]float64, nmels+2) // filter i spans edges[i]..edges[i+2]
	for i := range edges {
		edges[i] = melToHzSlaney(lo + (hi-lo)*float64(i)/float64(nmels+1))
	}
	fb := make([][]float64, nmels)
	for i := range fb {
		fb[i] = make([]float64, nb)
		enorm := 2 / (edges[i+2] - edges[i])
		for k := range nb {
			f := float64(k) * float64(sr) / float64(nfft)
			up := (f - edges[i]) / (edges[i+1] - edges[i])
			down := (edges[i+2] - f) / (edges[i+2] - edges[i+1])
			fb[i][k] = max(0, min(up, down)) * enorm
		}
	}
	return fb
}

// Slaney's Auditory Toolbox mel scale, librosa's default (htk=False).
const (
	melFSP       = 200.0 / 3 // Hz per mel in the linear part
	melMinLogHz  = 1000.0
	melMinLogMel = melMinLogHz / melFSP
)

// melLogStep is ln(6.4)/27: the log part spans 1 kHz..6.4 kHz in 27 mels.
func melLogStep() float64 { return math.Log(6.4) / 27 }

func hzToMelSlaney(f float64) float64 {
	if f < melMinLogHz {
		return f / melFSP
	}
	return melMinLogMel + math.Log(f/melMinLogHz)/melLogStep()
}

func melToHzSlaney(m float64) float64 {
	if m < melMinLogMel {
		return m * melFSP
	}
	return melMinLogHz * math.Exp(melLogStep()*(m-melMinLogMel))
}
