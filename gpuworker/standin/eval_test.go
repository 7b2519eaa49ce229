package standin

import (
	"bytes"
	"context"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/latentsync/latentsync-service/gpuworker/bundle"
	"github.com/latentsync/latentsync-service/gpuworker/evalbundle"
	"github.com/latentsync/latentsync-service/gpuworker/infer"
	"github.com/latentsync/latentsync-service/gpuworker/infer/infertest"
)

func TestBuildEvalIsDeterministicAndSmall(t *testing.T) {
	_, a, err := BuildEval()
	if err != nil {
		t.Fatal(err)
	}
	_, b, err := BuildEval()
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].Data, b[i].Data) {
			t.Errorf("%s differs between two generations", a[i].Name)
		}
		total += len(a[i].Data)
	}
	if a[len(a)-1].Name != evalbundle.ManifestFile {
		t.Errorf("last file %s, want the manifest last", a[len(a)-1].Name)
	}
	if total >= 1<<20 {
		t.Errorf("evaluation bundle is %d bytes, want under 1 MiB", total)
	}
}

// TestEvalNetworksSeparateNoiseFromImages checks the property FID and FVD
// rest on: features follow image content, a slightly changed image stays
// near the original and noise lands far from both.
func TestEvalNetworksSeparateNoiseFromImages(t *testing.T) {
	infertest.Runtime(t)
	_, files, err := BuildEval()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string][]byte{}
	for _, f := range files {
		byName[f.Name] = f.Data
	}
	rng := rand.New(rand.NewPCG(7, 8))
	noise := func(n int) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = float32(2*rng.Float64() - 1)
		}
		return out
	}
	// smooth is a slow wave pattern, side x side per frame, frames frames.
	smooth := func(side, frames int, phase float64) []float32 {
		out := make([]float32, 0, 3*frames*side*side)
		for c := range 3 {
			for f := range frames {
				for y := range side {
					for x := range side {
						v := math.Sin(float64(x)/9+phase+float64(c)) * math.Cos(float64(y)/13+float64(f)/20)
						out = append(out, float32(0.7*v))
					}
				}
			}
		}
		return out
	}
	tests := []struct {
		file  string
		input string
		shape []int64
		make  func(phase float64) []float32
	}{
		{"inception.onnx", "image", []int64{1, 3, EvalImageSide, EvalImageSide},
			func(p float64) []float32 { return smooth(EvalImageSide, 1, p) }},
		{"i3d.onnx", "video", []int64{1, 3, EvalClipFrames, EvalClipSide, EvalClipSide},
			func(p float64) []float32 { return smooth(EvalClipSide, EvalClipFrames, p) }},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			s := infertest.Open(t, byName[tc.file])
			features := func(x []float32) []float32 {
				out, err := s.Run(context.Background(), map[string]infer.Tensor{tc.input: {Shape: tc.shape, Float: x}})
				if err != nil {
					t.Fatal(err)
				}
				f := out["features"].Float
				if len(f) != EvalFeatures {
					t.Fatalf("%d features, want %d", len(f), EvalFeatures)
				}
				return f
			}
			a, b := features(tc.make(0)), features(tc.make(0.1))
			n := features(noise(len(tc.make(0))))
			near, far := rms(diff(a, b)), rms(diff(a, n))
			t.Logf("image-image %.3f, image-noise %.3f", near, far)
			if !(near > 0 && far > 3*near) {
				t.Errorf("noise is %.3f from an image, another image %.3f: want noise at least 3x farther", far, near)
			}
		})
	}
}

func TestNoiseUNetIgnoresItsInputs(t *testing.T) {
	infertest.Runtime(t)
	data, err := NoiseUNet(res)
	if err != nil {
		t.Fatal(err)
	}
	s := infertest.Open(t, data)
	compareIO(t, "input", networkByRole(t, bundle.UNetModel).inputs, s.Inputs())
	compareIO(t, "output", networkByRole(t, bundle.UNetModel).outputs, s.Outputs())

	rng := rand.New(rand.NewPCG(3, 4))
	per := 13 * framesPerCall * lat * lat
	outputs := map[string][]float32{}
	for _, c := range []struct {
		name string
		step int64
	}{{"a", 981}, {"b", 21}} {
		in := map[string]infer.Tensor{
			"sample":                {Shape: []int64{2, 13, framesPerCall, lat, lat}, Float: normal(rng, 2*per)},
			"timestep":              {Shape: []int64{1}, Int: []int64{c.step}},
			"encoder_hidden_states": {Shape: []int64{2 * framesPerCall, audioContext, audioDim}, Float: normal(rng, 2*framesPerCall*audioContext*audioDim)},
		}
		got := run(t, s, in)["noise_pred"]
		if want := []int64{2, 4, framesPerCall, lat, lat}; !equalShape(got.Shape, want) {
			t.Fatalf("noise_pred shape %v, want %v", got.Shape, want)
		}
		outputs[c.name] = got.Float
		if r := rms(got.Float); math.Abs(r-brokenUNetStd) > 0.05*brokenUNetStd {
			t.Errorf("%s: noise_pred rms %.2f, want %d: far beyond the unit noise DDIM expects", c.name, r, brokenUNetStd)
		}
	}
	if d := maxAbs(diff(outputs["a"], outputs["b"])); d != 0 {
		t.Errorf("outputs for different inputs differ by up to %g: want them independent of the input", d)
	}
}

func networkByRole(t *testing.T, role string) network {
	t.Helper()
	for _, n := range networks(res) {
		if n.role == role {
			return n
		}
	}
	t.Fatalf("no %s network", role)
	return network{}
}

// TestReplaceModelKeepsTheBundleLoadable swaps the UNet of a copied bundle
// and loads it the way a worker does: checksums and tensors must still match.
func TestReplaceModelKeepsTheBundleLoadable(t *testing.T) {
	rt := infertest.Runtime(t)
	if _, err := os.Stat(filepath.Join(committedBundle, FaceDetectorFile)); err != nil {
		t.Skipf("%s not downloaded (make deps)", FaceDetectorFile)
	}
	dir := t.TempDir()
	entries, err := os.ReadDir(committedBundle)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		copyFile(t, filepath.Join(committedBundle, e.Name()), filepath.Join(dir, e.Name()))
	}
	data, err := NoiseUNet(res)
	if err != nil {
		t.Fatal(err)
	}
	if err := ReplaceModel(dir, bundle.UNetModel, data); err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Load(context.Background(), rt, dir)
	if err != nil {
		t.Fatalf("bundle with a replaced unet does not load: %v", err)
	}
	defer b.Close()
	if got := b.Manifest.Models[bundle.UNetModel].SHA256; got != sha256Hex(data) {
		t.Errorf("manifest unet sha256 %s, want the new file's %s", got, sha256Hex(data))
	}
	if err := ReplaceModel(dir, "no_such_model", data); err == nil {
		t.Error("replacing a model the manifest does not list succeeded")
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
