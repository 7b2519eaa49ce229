package standin

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/latentsync/latentsync-service/gpuworker/bundle"
	"github.com/latentsync/latentsync-service/gpuworker/infer"
	"github.com/latentsync/latentsync-service/gpuworker/infer/infertest"
)

// committedBundle is testdata/bundle at the repository root.
const committedBundle = "../../testdata/bundle"

// committedEvalBundle is testdata/evalbundle at the repository root.
const committedEvalBundle = "../../testdata/evalbundle"

// generated builds the 256 bundle, by file name.
func generated(t *testing.T) (*bundle.Manifest, map[string][]byte) {
	t.Helper()
	m, files, err := Build(DefaultResolution)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string][]byte{}
	for _, f := range files {
		byName[f.Name] = f.Data
	}
	return m, byName
}

func TestWriteIsDeterministic(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, dir := range []string{a, b} {
		if _, err := Write(dir, DefaultResolution); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(a)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"audio_encoder.onnx", "manifest.json", "syncnet.onnx", "unet.onnx", "vae_decoder.onnx", "vae_encoder.onnx"}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("wrote %v, want %v", names, want)
	}
	for _, name := range names {
		x, err := os.ReadFile(filepath.Join(a, name))
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(filepath.Join(b, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two generations", name)
		}
	}
}

// TestCommittedBundleIsFresh keeps testdata/bundle and testdata/evalbundle
// exactly what the generator writes, so nobody edits them by hand.
func TestCommittedBundleIsFresh(t *testing.T) {
	const regen = "go run ./gpuworker/standin/gen -out testdata/bundle -eval-out testdata/evalbundle"
	_, model := generated(t)
	_, evalFiles, err := BuildEval()
	if err != nil {
		t.Fatal(err)
	}
	eval := map[string][]byte{}
	for _, f := range evalFiles {
		eval[f.Name] = f.Data
	}
	for _, b := range []struct {
		dir   string
		files map[string][]byte
	}{{committedBundle, model}, {committedEvalBundle, eval}} {
		for name, want := range b.files {
			got, err := os.ReadFile(filepath.Join(b.dir, name))
			if err != nil {
				t.Errorf("%v (regenerate: %s)", err, regen)
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s/%s is stale or edited: regenerate with %s", filepath.Base(b.dir), name, regen)
			}
		}
	}
}

func TestBundleIsSmall(t *testing.T) {
	_, files := generated(t)
	total := 0
	for name, data := range files {
		t.Logf("%-20s %8d bytes", name, len(data))
		total += len(data)
	}
	if total >= 3<<20 {
		t.Errorf("bundle is %d bytes, want under 3 MiB", total)
	}
	if n := len(files["syncnet.onnx"]); n >= 1<<20 {
		t.Errorf("syncnet.onnx is %d bytes, want under 1 MiB", n)
	}
}

func TestBuildRejectsBadResolution(t *testing.T) {
	for _, res := range []int{0, -256, 100, 32} {
		if _, _, err := Build(res); err == nil {
			t.Errorf("Build(%d) succeeded", res)
		}
	}
}

func TestOtherResolutionScalesContract(t *testing.T) {
	m, _, err := Build(512)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Parameters.Mask; got != (bundle.MaskRect{Top: 190, Bottom: 485, Left: 18, Right: 495}) {
		t.Errorf("512 mask = %+v", got)
	}
	if got := m.Models["unet"].Inputs[0].Shape; got[3].String() != "64" || got[4].String() != "64" {
		t.Errorf("512 unet sample shape = %v, want latent side 64", got)
	}
}

func TestManifestRoundTrips(t *testing.T) {
	m, files := generated(t)
	dec := json.NewDecoder(bytes.NewReader(files[ManifestFile]))
	dec.DisallowUnknownFields()
	var back bundle.Manifest
	if err := dec.Decode(&back); err != nil {
		t.Fatal(err)
	}
	if err := back.Validate(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, m) {
		t.Errorf("manifest changed in a JSON round trip:\n%+v\n%+v", back, *m)
	}
	if !strings.Contains(string(files[ManifestFile]), `"batch",`) {
		t.Error("symbolic dimensions are not written as strings")
	}
	if back.Models["face_detector"].SHA256 != FaceDetectorSHA256 {
		t.Error("face detector checksum not pinned")
	}
	if got := back.Parameters.Mask.Bounds(); got.Min.X != 9 || got.Min.Y != 95 || got.Max.X != 248 || got.Max.Y != 243 {
		t.Errorf("mask bounds = %v, want LatentSync's rows 95-242, columns 9-247 inclusive", got)
	}
}

func TestDimJSON(t *testing.T) {
	tests := []struct {
		in      string
		want    bundle.Dim
		wantErr bool
	}{
		{in: `256`, want: bundle.FixedDim(256)},
		{in: `"batch"`, want: bundle.SymbolicDim("batch")},
		{in: `""`, wantErr: true},
		{in: `1.5`, wantErr: true},
		{in: `1e3`, wantErr: true},
		{in: `null`, wantErr: true},
		{in: `[1]`, wantErr: true},
	}
	for _, tc := range tests {
		var d bundle.Dim
		err := json.Unmarshal([]byte(tc.in), &d)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err = %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if tc.wantErr {
			continue
		}
		if d != tc.want {
			t.Errorf("%s: got %v, want %v", tc.in, d, tc.want)
		}
		out, err := json.Marshal(d)
		if err != nil || string(out) != tc.in {
			t.Errorf("%s: marshals back to %s (%v)", tc.in, out, err)
		}
	}
}

func TestValidateCatchesMistakes(t *testing.T) {
	tests := []struct {
		name   string
		modify func(m *bundle.Manifest)
		want   string
	}{
		{"format version", func(m *bundle.Manifest) { m.FormatVersion = 2 }, "format_version"},
		{"no name", func(m *bundle.Manifest) { m.Name = "" }, "name is missing"},
		{"resolution", func(m *bundle.Manifest) { m.Parameters.Resolution = 250 }, "resolution 250"},
		{"scaling factor", func(m *bundle.Manifest) { m.Parameters.VAEScalingFactor = 0 }, "vae_scaling_factor"},
		{"audio dim", func(m *bundle.Manifest) { m.Parameters.Audio.Dim = 0 }, "audio.dim"},
		{"mask outside crop", func(m *bundle.Manifest) { m.Parameters.Mask.Bottom = 256 }, "mask"},
		{"template", func(m *bundle.Manifest) { m.Parameters.FaceTemplate.Nose = [2]float64{1.5, 0.5} }, "face_template.nose"},
		{"scheduler type", func(m *bundle.Manifest) { m.Parameters.Scheduler.Type = "euler" }, "scheduler.type"},
		{"beta schedule", func(m *bundle.Manifest) { m.Parameters.Scheduler.BetaSchedule = "cosine" }, "beta schedule"},
		{"too many steps", func(m *bundle.Manifest) { m.Parameters.Defaults.InferenceSteps = 5000 }, "inference_steps 5000"},
		{"guidance", func(m *bundle.Manifest) { m.Parameters.Defaults.GuidanceScale = -1 }, "guidance_scale"},
		{"no models", func(m *bundle.Manifest) { m.Models = nil }, "models: none"},
		{"path in file", func(m *bundle.Manifest) { setModel(m, "unet", func(s *bundle.Model) { s.File = "../unet.onnx" }) }, "models.unet: file"},
		{"checksum", func(m *bundle.Manifest) { setModel(m, "unet", func(s *bundle.Model) { s.SHA256 = "abc" }) }, "models.unet: sha256"},
		{"dtype", func(m *bundle.Manifest) { setModel(m, "unet", func(s *bundle.Model) { s.Inputs[1].DType = "int32" }) }, `"timestep": dtype`},
		{"dimension", func(m *bundle.Manifest) {
			setModel(m, "unet", func(s *bundle.Model) { s.Outputs[0].Shape[1] = bundle.FixedDim(0) })
		}, "fixed dimensions must be positive"},
		{"no outputs", func(m *bundle.Manifest) { setModel(m, "syncnet", func(s *bundle.Model) { s.Outputs = nil }) }, "models.syncnet: outputs: none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := generated(t)
			tc.modify(m)
			err := m.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func setModel(m *bundle.Manifest, role string, fn func(*bundle.Model)) {
	s := m.Models[role]
	fn(&s)
	m.Models[role] = s
}

// TestModelsMatchManifest loads every generated model, and the face detector
// when the Makefile has fetched it, and compares ONNX Runtime's view of its
// inputs and outputs, as infer reports it, with the manifest.
func TestModelsMatchManifest(t *testing.T) {
	infertest.Runtime(t) // skip before generating the bundle when there is no library
	m, files := generated(t)
	for role, spec := range m.Models {
		t.Run(role, func(t *testing.T) {
			data, ok := files[spec.File]
			if !ok {
				var err error
				data, err = os.ReadFile(filepath.Join(committedBundle, spec.File))
				if os.IsNotExist(err) {
					t.Skipf("%s not downloaded (make deps)", spec.File)
				}
				if err != nil {
					t.Fatal(err)
				}
				if got := sha256Hex(data); got != spec.SHA256 {
					t.Fatalf("%s has sha256 %s, manifest pins %s", spec.File, got, spec.SHA256)
				}
			}
			s := infertest.Open(t, data)
			compareIO(t, "input", spec.Inputs, s.Inputs())
			compareIO(t, "output", spec.Outputs, s.Outputs())
		})
	}
}

func compareIO(t *testing.T, kind string, want []bundle.TensorSpec, got []infer.TensorInfo) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d %ss, manifest lists %d", len(got), kind, len(want))
	}
	for i, w := range want {
		g := got[i]
		var shape []int64
		for _, d := range w.Shape {
			n, fixed := d.Size()
			if !fixed {
				n = -1 // how ORT reports a symbolic dimension
			}
			shape = append(shape, n)
		}
		if g.Name != w.Name || string(g.DType) != w.DType || !slices.Equal(g.Shape, shape) {
			t.Errorf("%s %d: model has %q %s %v, manifest %q %s %v",
				kind, i, g.Name, g.DType, g.Shape, w.Name, w.DType, w.Shape)
		}
	}
}
