package standin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/latentsync/latentsync-service/gpuworker/infer"
	"github.com/latentsync/latentsync-service/gpuworker/infer/infertest"
)

const (
	res      = DefaultResolution
	lat      = res / 8
	vaeScale = 0.18215
)

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// open loads one generated network into ONNX Runtime.
func open(t *testing.T, file string) *infer.Session {
	t.Helper()
	infertest.Runtime(t) // skip before generating the bundle when there is no library
	_, files := generated(t)
	return infertest.Open(t, files[file])
}

func run(t *testing.T, s *infer.Session, inputs map[string]infer.Tensor) map[string]infer.Tensor {
	t.Helper()
	out, err := s.Run(context.Background(), inputs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func rms(v []float32) float64 {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	return math.Sqrt(sum / float64(len(v)))
}

func diff(a, b []float32) []float32 {
	out := make([]float32, len(a))
	for i := range a {
		out[i] = a[i] - b[i]
	}
	return out
}

func maxAbs(v []float32) float64 {
	var m float64
	for _, x := range v {
		m = math.Max(m, math.Abs(float64(x)))
	}
	return m
}

func normal(rng *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64())
	}
	return out
}

// smoothImage is a [3,res,res] image of slow waves in [-0.8,0.8].
func smoothImage(phase float64) []float32 {
	img := make([]float32, 3*res*res)
	for c := range 3 {
		for y := range res {
			for x := range res {
				u, v := (float64(x)+0.5)/res, (float64(y)+0.5)/res
				img[(c*res+y)*res+x] = float32(0.8 * math.Sin(2*math.Pi*u+phase+float64(c)) * math.Cos(math.Pi*v+phase))
			}
		}
	}
	return img
}

func TestVAEEncoderPoolsColours(t *testing.T) {
	enc := open(t, "vae_encoder.onnx")
	tests := []struct {
		name    string
		rgb     [3]float32
		wantLat [4]float32
	}{
		{"black", [3]float32{-1, -1, -1}, [4]float32{-5, -5, -5, -5}},
		{"grey", [3]float32{0, 0, 0}, [4]float32{0, 0, 0, 0}},
		{"skin", [3]float32{0.6, 0.2, -0.1}, [4]float32{3, 1, -0.5, 3.5 / 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := make([]float32, 3*res*res)
			for i := range img {
				img[i] = tc.rgb[i/(res*res)]
			}
			got := run(t, enc, map[string]infer.Tensor{"image": {Shape: []int64{1, 3, res, res}, Float: img}})["latent"]
			if want := []int64{1, 4, lat, lat}; !equalShape(got.Shape, want) {
				t.Fatalf("latent shape %v, want %v", got.Shape, want)
			}
			for i, v := range got.Float {
				if want := tc.wantLat[i/(lat*lat)]; math.Abs(float64(v-want)) > 1e-5 {
					t.Fatalf("latent[%d] = %g, want %g", i, v, want)
				}
			}
		})
	}
}

func equalShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestVAERoundTrip runs the pipeline's encode, scale, unscale, decode on a
// batch of smooth images: the result is the image, slightly blurred.
func TestVAERoundTrip(t *testing.T) {
	enc, dec := open(t, "vae_encoder.onnx"), open(t, "vae_decoder.onnx")
	img := append(smoothImage(0), smoothImage(1)...)
	latent := run(t, enc, map[string]infer.Tensor{"image": {Shape: []int64{2, 3, res, res}, Float: img}})["latent"]
	for i := range latent.Float {
		latent.Float[i] = latent.Float[i] * vaeScale / vaeScale
	}
	back := run(t, dec, map[string]infer.Tensor{"latent": latent})["image"]
	if want := []int64{2, 3, res, res}; !equalShape(back.Shape, want) {
		t.Fatalf("image shape %v, want %v", back.Shape, want)
	}
	errs := diff(back.Float, img)
	if e := rms(errs); e > 0.01 {
		t.Errorf("round trip RMS error %.4f, want <= 0.01", e)
	}
	// The worst pixels are at the border, where half-pixel bilinear
	// upsampling holds the edge cell's mean for 4 pixels.
	if e := maxAbs(errs); e > 0.08 {
		t.Errorf("round trip max error %.4f, want <= 0.08", e)
	}
}

func TestVAEDecoderClips(t *testing.T) {
	dec := open(t, "vae_decoder.onnx")
	latent := make([]float32, 4*lat*lat)
	for i := range latent {
		latent[i] = 100 * float32(1-2*(i%2))
	}
	img := run(t, dec, map[string]infer.Tensor{"latent": {Shape: []int64{1, 4, lat, lat}, Float: latent}})["image"]
	if m := maxAbs(img.Float); m != 1 {
		t.Errorf("max |pixel| = %g, want clipped to 1", m)
	}
}

// speechMel is a synthetic log-mel [80,3000] in Whisper's range, different for
// every voice.
func speechMel(voice float64) []float32 {
	mel := make([]float32, melBins*melFrames)
	for b := range melBins {
		for f := range melFrames {
			env := 0.5 + 0.5*math.Sin(float64(f)*0.02*voice)
			mel[b*melFrames+f] = float32(-0.3 + 0.8*env*math.Sin(float64(b)*0.21*voice+float64(f)*0.013))
		}
	}
	return mel
}

// audioFeatures runs the audio encoder on speechMel(voice).
func audioFeatures(t *testing.T, enc *infer.Session, voice float64) []float32 {
	t.Helper()
	out := run(t, enc, map[string]infer.Tensor{"mel": {Shape: []int64{1, melBins, melFrames}, Float: speechMel(voice)}})
	return out["features"].Float
}

func TestAudioEncoder(t *testing.T) {
	enc := open(t, "audio_encoder.onnx")
	out := run(t, enc, map[string]infer.Tensor{"mel": {Shape: []int64{1, melBins, melFrames}, Float: speechMel(1)}})
	f := out["features"]
	if want := []int64{1, audioSteps, audioLayers, audioDim}; !equalShape(f.Shape, want) {
		t.Fatalf("features shape %v, want %v", f.Shape, want)
	}
	if m := maxAbs(f.Float); m > 1.2 || math.IsNaN(m) {
		t.Errorf("max |feature| = %g, want bounded by tanh and small shifts", m)
	}
	other := audioFeatures(t, enc, 2.3)
	if d := rms(diff(f.Float, other)); d < 0.05 {
		t.Errorf("different audio changes features by RMS %.4f only", d)
	}
	// Layers are distinct views of the same step.
	step := f.Float[700*audioLayers*audioDim:]
	if d := rms(diff(step[:audioDim], step[audioDim:2*audioDim])); d < 0.01 {
		t.Errorf("layers 0 and 1 nearly equal (RMS diff %.4f)", d)
	}
}

// frameContext assembles the UNet's audio input for frames [first,
// first+16) the way the pipeline does: frame i takes encoder steps
// [2i-4, 2i+6), clamped to the window, each with its 5 layers.
func frameContext(features []float32, first int) []float32 {
	out := make([]float32, 0, framesPerCall*audioContext*audioDim)
	for i := first; i < first+framesPerCall; i++ {
		for s := 2*i - 4; s < 2*i+6; s++ {
			s := min(max(s, 0), audioSteps-1)
			out = append(out, features[s*audioLayers*audioDim:(s+1)*audioLayers*audioDim]...)
		}
	}
	return out
}

// latents is one chunk's UNet conditioning at latent resolution.
type latents struct {
	mask, masked, ref []float32 // [16,lat,lat] and [4,16,lat,lat]
}

const chunk = 4 * framesPerCall * lat * lat // one 4-channel latent tensor

func randomLatents(seed uint64) latents {
	rng := rand.New(rand.NewPCG(seed, 99))
	l := latents{mask: make([]float32, framesPerCall*lat*lat), masked: normal(rng, chunk), ref: normal(rng, chunk)}
	for f := range framesPerCall {
		for y := range lat {
			for x := range lat {
				keep := float32(1)
				if inMouth(y, x) {
					keep = 0
				}
				l.mask[(f*lat+y)*lat+x] = keep
			}
		}
	}
	return l
}

// inMouth reports whether latent cell (y, x) lies in the regenerated region:
// its centre pixel is inside rows 95-242, columns 9-247.
func inMouth(y, x int) bool {
	py, px := 8*y+4, 8*x+4
	return py >= 95 && py <= 242 && px >= 9 && px <= 247
}

// sample packs [x_t, mask, masked, ref] into the 13-channel UNet input.
func (l latents) sample(xt []float32) []float32 {
	out := make([]float32, 0, 13*framesPerCall*lat*lat)
	out = append(out, xt...)
	out = append(out, l.mask...)
	out = append(out, l.masked...)
	return append(out, l.ref...)
}

type unetRunner struct {
	t *testing.T
	s *infer.Session
}

// noise runs the UNet on a batch of one chunk.
func (u unetRunner) noise(l latents, xt []float32, timestep int64, audio []float32) []float32 {
	u.t.Helper()
	out := run(u.t, u.s, map[string]infer.Tensor{
		"sample":                {Shape: []int64{1, 13, framesPerCall, lat, lat}, Float: l.sample(xt)},
		"timestep":              {Shape: []int64{1}, Int: []int64{timestep}},
		"encoder_hidden_states": {Shape: []int64{framesPerCall, audioContext, audioDim}, Float: audio},
	})["noise_pred"]
	if want := []int64{1, 4, framesPerCall, lat, lat}; !equalShape(out.Shape, want) {
		u.t.Fatalf("noise_pred shape %v, want %v", out.Shape, want)
	}
	return out.Float
}

// target recovers the x0 the stand-in aims at from one prediction at x_t = 0:
// eps = -k*sqrt(abar)*x0/sqrt(1-abar).
func (u unetRunner) target(l latents, audio []float32) []float32 {
	const t = 501
	abar := alphasCumprod()[t]
	eps := u.noise(l, make([]float32, chunk), t, audio)
	x0 := make([]float32, chunk)
	for i, e := range eps {
		x0[i] = float32(-float64(e) * math.Sqrt(1-abar) / (NoiseScale * math.Sqrt(abar)))
	}
	return x0
}

// region splits a latent tensor into its keep and mouth cells.
func region(v []float32) (keep, mouth []float32) {
	for i, x := range v {
		cell := i % (lat * lat)
		if inMouth(cell/lat, cell%lat) {
			mouth = append(mouth, x)
		} else {
			keep = append(keep, x)
		}
	}
	return keep, mouth
}

func TestUNetTarget(t *testing.T) {
	u := unetRunner{t, open(t, "unet.onnx")}
	enc := open(t, "audio_encoder.onnx")
	l := randomLatents(1)
	keepMasked, _ := region(l.masked)
	_, mouthRef := region(l.ref)
	tests := []struct {
		name      string
		audio     []float32
		wantAudio bool // whether the mouth moves away from the reference
	}{
		{"zero audio (unconditional)", make([]float32, framesPerCall*audioContext*audioDim), false},
		{"voice 1", frameContext(audioFeatures(t, enc, 1), 100), true},
		{"voice 2", frameContext(audioFeatures(t, enc, 2.3), 100), true},
	}
	var previous []float32
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x0 := u.target(l, tc.audio)
			keep, mouth := region(x0)
			if e := maxAbs(diff(keep, keepMasked)); e > 1e-3 {
				t.Errorf("outside the mouth x0 strays %.4g from the masked latent", e)
			}
			term := diff(mouth, mouthRef)
			t.Logf("audio term: RMS %.3f, max %.3f", rms(term), maxAbs(term))
			switch {
			case !tc.wantAudio && maxAbs(term) > 1e-3:
				t.Errorf("zero audio moves the mouth by up to %.4g", maxAbs(term))
			case tc.wantAudio && maxAbs(term) < 0.1:
				t.Errorf("audio moves the mouth by only %.4g", maxAbs(term))
			case maxAbs(term) > AudioGain+1e-3:
				t.Errorf("audio term %.4g exceeds the gain", maxAbs(term))
			}
			if tc.wantAudio && previous != nil && maxAbs(diff(mouth, previous)) < 0.05 {
				t.Error("two voices give nearly the same mouth")
			}
			previous = mouth
		})
	}
}

// TestUNetFollowsSchedule checks the prediction at several timesteps against
// k*(x_t - sqrt(abar_t)*x0)/sqrt(1-abar_t), which exercises the table lookup.
func TestUNetFollowsSchedule(t *testing.T) {
	u := unetRunner{t, open(t, "unet.onnx")}
	enc := open(t, "audio_encoder.onnx")
	l := randomLatents(2)
	audio := frameContext(audioFeatures(t, enc, 1), 0)
	x0 := u.target(l, audio)
	xt := normal(rand.New(rand.NewPCG(3, 3)), chunk)
	ac := alphasCumprod()
	var previous []float32
	for _, ts := range []int64{1, 251, 501, 951, 999} {
		eps := u.noise(l, xt, ts, audio)
		want := make([]float32, chunk)
		for i := range want {
			want[i] = float32(NoiseScale * (float64(xt[i]) - math.Sqrt(ac[ts])*float64(x0[i])) / math.Sqrt(1-ac[ts]))
		}
		if e := rms(diff(eps, want)) / rms(want); e > 1e-4 {
			t.Errorf("t=%d: prediction off the formula by relative RMS %.2g", ts, e)
		}
		if previous != nil && rms(diff(eps, previous)) < 0.01 {
			t.Errorf("t=%d: prediction does not depend on the timestep", ts)
		}
		previous = eps
	}
}

// TestUNetBatchesLikeGuidance runs the classifier-free guidance batch
// (zero audio, then real audio; audio_batch = 2*16) and checks each half
// matches its own batch-of-one run.
func TestUNetBatchesLikeGuidance(t *testing.T) {
	u := unetRunner{t, open(t, "unet.onnx")}
	enc := open(t, "audio_encoder.onnx")
	l := randomLatents(4)
	xt := normal(rand.New(rand.NewPCG(5, 5)), chunk)
	silent := make([]float32, framesPerCall*audioContext*audioDim)
	voice := frameContext(audioFeatures(t, enc, 1), 40)
	sample := append(l.sample(xt), l.sample(xt)...)
	out := run(t, u.s, map[string]infer.Tensor{
		"sample":                {Shape: []int64{2, 13, framesPerCall, lat, lat}, Float: sample},
		"timestep":              {Shape: []int64{1}, Int: []int64{501}},
		"encoder_hidden_states": {Shape: []int64{2 * framesPerCall, audioContext, audioDim}, Float: append(silent, voice...)},
	})["noise_pred"].Float
	uncond, cond := u.noise(l, xt, 501, silent), u.noise(l, xt, 501, voice)
	if e := maxAbs(diff(out[:chunk], uncond)); e > 1e-4 {
		t.Errorf("unconditional half differs by %.3g", e)
	}
	if e := maxAbs(diff(out[chunk:], cond)); e > 1e-4 {
		t.Errorf("conditional half differs by %.3g", e)
	}
	keep, mouth := region(diff(cond, uncond))
	if maxAbs(keep) > 1e-4 || maxAbs(mouth) < 0.01 {
		t.Errorf("guidance difference: %.3g outside the mouth (want 0), %.3g inside (want > 0)", maxAbs(keep), maxAbs(mouth))
	}
}

// ddimSample runs diffusers' DDIMScheduler (eta 0, leading spacing, offset 1,
// set_alpha_to_one false) for 20 steps from x_T = N(0,1) noise of seed.
func ddimSample(u unetRunner, l latents, audio []float32, seed uint64) []float32 {
	ac := alphasCumprod()
	x := normal(rand.New(rand.NewPCG(seed, 7)), chunk)
	for i := 19; i >= 0; i-- {
		ts := i*50 + 1
		at := ac[ts]
		ap := ac[0]
		if ts-50 >= 0 {
			ap = ac[ts-50]
		}
		eps := u.noise(l, x, int64(ts), audio)
		for j := range x {
			x0 := (float64(x[j]) - math.Sqrt(1-at)*float64(eps[j])) / math.Sqrt(at)
			x[j] = float32(math.Sqrt(ap)*x0 + math.Sqrt(1-ap)*float64(eps[j]))
		}
	}
	return x
}

// TestUNetDDIM is what chose NoiseScale: sampling must land within a few
// percent of the target, yet the initial noise must still show in the mouth.
func TestUNetDDIM(t *testing.T) {
	u := unetRunner{t, open(t, "unet.onnx")}
	enc := open(t, "audio_encoder.onnx")
	l := randomLatents(6)
	audio := frameContext(audioFeatures(t, enc, 1), 200)
	x0 := u.target(l, audio)
	a, b := ddimSample(u, l, audio, 1), ddimSample(u, l, audio, 2)
	for _, got := range [][]float32{a, b} {
		if e := rms(diff(got, x0)) / rms(x0); e > 0.06 {
			t.Errorf("final latent is %.1f%% RMS away from the target, want <= 6%%", 100*e)
		} else {
			t.Logf("final latent %.1f%% RMS from the target", 100*e)
		}
	}
	_, mouthA := region(a)
	_, mouthB := region(b)
	_, mouthX0 := region(x0)
	d := rms(diff(mouthA, mouthB)) / rms(mouthX0)
	t.Logf("seeds differ in the mouth by %.1f%% RMS", 100*d)
	if d < 0.02 {
		t.Errorf("different seeds differ by only %.2f%% RMS in the mouth", 100*d)
	}
}

func TestSyncNet(t *testing.T) {
	s := open(t, "syncnet.onnx")
	rng := rand.New(rand.NewPCG(8, 8))
	video := make([]float32, 2*15*48*96)
	for i := range video[:len(video)/2] {
		video[i] = float32(2*rng.Float64() - 1)
	}
	audio := normal(rng, 2*melBins*20)
	out := run(t, s, map[string]infer.Tensor{
		"video": {Shape: []int64{2, 15, 48, 96}, Float: video}, // second item all zero
		"audio": {Shape: []int64{2, 1, melBins, 20}, Float: audio},
	})
	for _, name := range []string{"video_embedding", "audio_embedding"} {
		e := out[name]
		if want := []int64{2, embeddingDim}; !equalShape(e.Shape, want) {
			t.Fatalf("%s shape %v, want %v", name, e.Shape, want)
		}
		first, second := e.Float[:embeddingDim], e.Float[embeddingDim:]
		for i, v := range [][]float32{first, second} {
			if n := rms(v) * math.Sqrt(embeddingDim); math.Abs(n-1) > 1e-4 {
				t.Errorf("%s[%d] has norm %.6f, want 1", name, i, n)
			}
		}
		if rms(diff(first, second)) < 1e-3 {
			t.Errorf("%s: different inputs give the same embedding", name)
		}
	}
}
