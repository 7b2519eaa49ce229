package standin

import (
	"math"
	"math/rand/v2"

	"github.com/latentsync/latentsync-service/gpuworker/bundle"
	"github.com/latentsync/latentsync-service/internal/onnxbuild"
)

// The UNet stand-in predicts noise towards a target latent x0 (see unet):
// NoiseScale is its deliberate imperfection k, AudioGain scales the
// audio-driven mouth blob. Chosen by TestUNetDDIM: with k = 0.95 twenty DDIM
// steps land 4.6% RMS from a unit-variance x0 and two seeds differ by 6.4%
// (k = 1 would still leave 2.9%: set_alpha_to_one=false keeps some noise).
const (
	NoiseScale = 0.95
	AudioGain  = 1.0
)

// Scheduler constants of LatentSync (diffusers DDIMScheduler config).
const (
	trainTimesteps = 1000
	betaStart      = 0.00085
	betaEnd        = 0.012
)

// Fixed sizes of the contract: Whisper-tiny features and SyncNet crops.
const (
	melBins       = 80
	melFrames     = 3000 // 30 s at 100 frames/s
	audioSteps    = 1500 // 30 s at 50 steps/s
	audioLayers   = 5
	audioDim      = 384
	framesPerCall = 16
	contextSteps  = 10 // context_before + context_after
	audioContext  = contextSteps * audioLayers
	embeddingDim  = 128
)

// network is one generated model: its contract and how to build its body
// between the declared inputs and outputs.
type network struct {
	role    string // manifest key
	file    string
	inputs  []bundle.TensorSpec
	outputs []bundle.TensorSpec
	build   func(g *onnxbuild.Graph, w *weights, res int)
}

func tensor(name, dtype string, dims ...any) bundle.TensorSpec {
	t := bundle.TensorSpec{Name: name, DType: dtype}
	for _, d := range dims {
		switch d := d.(type) {
		case int:
			t.Shape = append(t.Shape, bundle.FixedDim(int64(d)))
		case string:
			t.Shape = append(t.Shape, bundle.SymbolicDim(d))
		}
	}
	return t
}

func networks(res int) []network {
	lat := res / 8
	return []network{
		{
			role:    "audio_encoder",
			file:    "audio_encoder.onnx",
			inputs:  []bundle.TensorSpec{tensor("mel", "float32", 1, melBins, melFrames)},
			outputs: []bundle.TensorSpec{tensor("features", "float32", 1, audioSteps, audioLayers, audioDim)},
			build:   audioEncoder,
		},
		{
			role:    "vae_encoder",
			file:    "vae_encoder.onnx",
			inputs:  []bundle.TensorSpec{tensor("image", "float32", "batch", 3, res, res)},
			outputs: []bundle.TensorSpec{tensor("latent", "float32", "batch", 4, lat, lat)},
			build:   vaeEncoder,
		},
		{
			role:    "vae_decoder",
			file:    "vae_decoder.onnx",
			inputs:  []bundle.TensorSpec{tensor("latent", "float32", "batch", 4, lat, lat)},
			outputs: []bundle.TensorSpec{tensor("image", "float32", "batch", 3, res, res)},
			build:   vaeDecoder,
		},
		{
			role: "unet",
			file: "unet.onnx",
			inputs: []bundle.TensorSpec{
				tensor("sample", "float32", "batch", 13, framesPerCall, lat, lat),
				tensor("timestep", "int64", 1),
				tensor("encoder_hidden_states", "float32", "audio_batch", audioContext, audioDim),
			},
			outputs: []bundle.TensorSpec{tensor("noise_pred", "float32", "batch", 4, framesPerCall, lat, lat)},
			build:   unet,
		},
		{
			role: "syncnet",
			file: "syncnet.onnx",
			inputs: []bundle.TensorSpec{
				tensor("video", "float32", "batch", 15, 48, 96),
				tensor("audio", "float32", "batch", 1, melBins, 20),
			},
			outputs: []bundle.TensorSpec{
				tensor("video_embedding", "float32", "batch", embeddingDim),
				tensor("audio_embedding", "float32", "batch", embeddingDim),
			},
			build: syncNet,
		},
	}
}

// weights draws reproducible parameters. Only integer output of the PCG
// source and plain IEEE arithmetic are used (explicit float64 conversions stop
// the compiler fusing multiply-adds), so every platform and Go release
// produces the same bits.
type weights struct {
	src *rand.PCG
}

func newWeights() *weights {
	return &weights{src: rand.NewPCG(1, 2)}
}

// uniform returns n values uniform in [-a, a).
func (w *weights) uniform(n int, a float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		u := float64(w.src.Uint64()>>11) / (1 << 53) // [0, 1)
		out[i] = float32(float64(2*u-1) * a)
	}
	return out
}

// std returns n values of zero mean and standard deviation s (uniform, like
// PyTorch's default layer initialisation).
func (w *weights) std(n int, s float64) []float32 {
	return w.uniform(n, math.Sqrt(3)*s)
}

func scalar(g *onnxbuild.Graph, v float32) string {
	return g.Initializer("", nil, []float32{v})
}

func ints(g *onnxbuild.Graph, vs ...int64) string {
	return g.InitializerInt64("", []int64{int64(len(vs))}, vs)
}

// audioEncoder is Whisper-tiny-like: a stride-2 convolution turns 100 mel
// frames/s into 50 steps/s of 384 features, and five "layers" are scaled and
// shifted copies of them. mel [1,80,3000] -> features [1,1500,5,384].
func audioEncoder(g *onnxbuild.Graph, w *weights, _ int) {
	const fanIn = melBins * 3
	kernel := g.Initializer("conv.weight", []int64{audioDim, melBins, 3}, w.std(audioDim*fanIn, 1/math.Sqrt(fanIn)))
	bias := g.Initializer("conv.bias", []int64{audioDim}, w.std(audioDim, 0.1))
	conv := g.Op("Conv", []string{"mel", kernel, bias},
		onnxbuild.Ints("kernel_shape", 3), onnxbuild.Ints("strides", 2), onnxbuild.Ints("pads", 1, 1))
	act := g.Op("Tanh", []string{conv})                                        // [1,384,1500]
	steps := g.Op("Transpose", []string{act}, onnxbuild.Ints("perm", 0, 2, 1)) // [1,1500,384]
	layered := g.Op("Unsqueeze", []string{steps, ints(g, 2)})                  // [1,1500,1,384]
	scales := g.Initializer("layer.scale", []int64{audioLayers, 1}, []float32{1, 0.9, 0.8, 0.7, 0.6})
	shifts := g.Initializer("layer.shift", []int64{audioLayers, audioDim}, w.std(audioLayers*audioDim, 0.05))
	scaled := g.Op("Mul", []string{layered, scales})
	g.Node("Add", []string{scaled, shifts}, []string{"features"})
}

// vaeEncoder: 8x8 average pooling times 5 for RGB, channel 3 their mean.
// image [batch,3,R,R] in [-1,1] -> latent [batch,4,R/8,R/8].
func vaeEncoder(g *onnxbuild.Graph, _ *weights, _ int) {
	pooled := g.Op("AveragePool", []string{"image"},
		onnxbuild.Ints("kernel_shape", 8, 8), onnxbuild.Ints("strides", 8, 8))
	rgb := g.Op("Mul", []string{pooled, scalar(g, 5)})
	mean := g.Op("ReduceMean", []string{rgb}, onnxbuild.Ints("axes", 1), onnxbuild.IntAttr("keepdims", 1))
	g.Node("Concat", []string{rgb, mean}, []string{"latent"}, onnxbuild.IntAttr("axis", 1))
}

// vaeDecoder inverts vaeEncoder up to blur: RGB latents / 5, bilinear x8,
// clipped to [-1,1]. latent [batch,4,R/8,R/8] -> image [batch,3,R,R].
func vaeDecoder(g *onnxbuild.Graph, _ *weights, _ int) {
	rgb := g.Op("Slice", []string{"latent", ints(g, 0), ints(g, 3), ints(g, 1)})
	small := g.Op("Mul", []string{rgb, scalar(g, 0.2)})
	scales := g.Initializer("", []int64{4}, []float32{1, 1, 8, 8})
	big := g.Op("Resize", []string{small, "", scales},
		onnxbuild.StringAttr("mode", "linear"),
		onnxbuild.StringAttr("coordinate_transformation_mode", "half_pixel"))
	g.Node("Clip", []string{big, scalar(g, -1), scalar(g, 1)}, []string{"image"})
}

// unet is an imperfect epsilon predictor towards a target latent:
//
//	a          = tanh(mean over the 50 context vectors of each frame @ W)  [batch,4,16,1,1]
//	x0         = masked*m + (ref + AudioGain*a*blob)*(1-m)
//	noise_pred = NoiseScale * (x_t - sqrt(abar_t)*x0) / sqrt(1-abar_t)
//
// where the sample channels are x_t (0-3), m (4, 1 = keep), the masked-image
// latent (5-8) and the reference latent (9-12), and blob is a Gaussian where
// the mouth sits. Zero audio gives a = 0: the unconditional branch.
func unet(g *onnxbuild.Graph, w *weights, res int) {
	lat := res / 8
	parts := []string{"x_t", "mask", "masked", "ref"}
	g.Node("Split", []string{"sample", ints(g, 4, 1, 4, 4)}, parts, onnxbuild.IntAttr("axis", 1))

	// Audio: [batch*16,50,384] -> [batch,16,384] -> [batch,16,4] -> [batch,4,16,1,1].
	perFrame := g.Op("Reshape", []string{"encoder_hidden_states", ints(g, -1, framesPerCall, audioContext, audioDim)})
	ctx := g.Op("ReduceMean", []string{perFrame}, onnxbuild.Ints("axes", 2), onnxbuild.IntAttr("keepdims", 0))
	proj := g.Initializer("audio.proj", []int64{audioDim, 4}, w.std(audioDim*4, 1/math.Sqrt(audioDim)))
	act := g.Op("Tanh", []string{g.Op("MatMul", []string{ctx, proj})})
	perChannel := g.Op("Transpose", []string{act}, onnxbuild.Ints("perm", 0, 2, 1))
	amp := g.Op("Unsqueeze", []string{perChannel, ints(g, 3, 4)})

	blob := g.Initializer("mouth.blob", []int64{1, 1, 1, int64(lat), int64(lat)}, mouthBlob(lat, AudioGain))
	mouth := g.Op("Add", []string{"ref", g.Op("Mul", []string{amp, blob})})
	regen := g.Op("Sub", []string{scalar(g, 1), "mask"})
	x0 := g.Op("Add", []string{
		g.Op("Mul", []string{"masked", "mask"}),
		g.Op("Mul", []string{mouth, regen}),
	})

	table := g.Initializer("alphas_cumprod", []int64{trainTimesteps}, float32s(alphasCumprod()))
	abar := g.Op("Gather", []string{table, "timestep"}, onnxbuild.IntAttr("axis", 0)) // [1]
	signal := g.Op("Sqrt", []string{abar})
	noise := g.Op("Sqrt", []string{g.Op("Sub", []string{scalar(g, 1), abar})})
	residual := g.Op("Sub", []string{"x_t", g.Op("Mul", []string{signal, x0})})
	eps := g.Op("Div", []string{residual, noise})
	g.Node("Mul", []string{eps, scalar(g, NoiseScale)}, []string{"noise_pred"})
}

// mouthBlob is gain times a Gaussian of sigma 0.12 lat centred at x = 0.5,
// y = 0.75 of the latent (pixel centres at (i+0.5)/lat): the mouth in the
// aligned crop.
func mouthBlob(lat int, gain float64) []float32 {
	const cx, cy, sigma = 0.5, 0.75, 0.12
	out := make([]float32, lat*lat)
	for y := range lat {
		dy := float64(float64(y)+0.5)/float64(lat) - cy
		for x := range lat {
			dx := float64(float64(x)+0.5)/float64(lat) - cx
			d2 := float64(dx*dx) + float64(dy*dy)
			out[y*lat+x] = float32(gain * math.Exp(-d2/(2*sigma*sigma)))
		}
	}
	return out
}

// alphasCumprod is diffusers' scaled_linear schedule: betas =
// linspace(sqrt(start), sqrt(end), n)^2, alpha_bar = cumprod(1 - beta).
func alphasCumprod() []float64 {
	a, b := math.Sqrt(betaStart), math.Sqrt(betaEnd)
	out := make([]float64, trainTimesteps)
	prod := 1.0
	for i := range out {
		step := float64(float64(b-a) * float64(i) / float64(trainTimesteps-1))
		beta := a + step
		prod = float64(prod * float64(1-float64(beta*beta)))
		out[i] = prod
	}
	return out
}

func float32s(vs []float64) []float32 {
	out := make([]float32, len(vs))
	for i, v := range vs {
		out[i] = float32(v)
	}
	return out
}

// syncNet embeds 5 stacked mouth crops and 0.2 s of log-mel into unit
// vectors with pooled linear projections: the SyncNet contract, not its
// skill.
func syncNet(g *onnxbuild.Graph, w *weights, _ int) {
	embed := func(input string, pool int64, features int, out string) {
		pooled := g.Op("AveragePool", []string{input},
			onnxbuild.Ints("kernel_shape", pool, pool), onnxbuild.Ints("strides", pool, pool))
		flat := g.Op("Flatten", []string{pooled}, onnxbuild.IntAttr("axis", 1))
		proj := g.Initializer(input+".proj", []int64{int64(features), embeddingDim},
			w.std(features*embeddingDim, 1/math.Sqrt(float64(features))))
		bias := g.Initializer(input+".bias", []int64{embeddingDim}, w.std(embeddingDim, 0.1))
		v := g.Op("Add", []string{g.Op("MatMul", []string{flat, proj}), bias})
		norm := g.Op("ReduceL2", []string{v}, onnxbuild.Ints("axes", 1), onnxbuild.IntAttr("keepdims", 1))
		g.Node("Div", []string{v, g.Op("Max", []string{norm, scalar(g, 1e-12)})}, []string{out})
	}
	embed("video", 8, 15*(48/8)*(96/8), "video_embedding")   // [batch,15,6,12]
	embed("audio", 4, (melBins/4)*(20/4), "audio_embedding") // [batch,1,20,5]
}
