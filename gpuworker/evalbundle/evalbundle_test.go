package evalbundle_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latentsync/latentsync-service/gpuworker/evalbundle"
	"github.com/latentsync/latentsync-service/gpuworker/infer/infertest"
	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/media/mediatest"
	"github.com/latentsync/latentsync-service/internal/raster"
)

const committed = "../../testdata/evalbundle"

// copyBundle copies the committed evaluation bundle into a temporary
// directory, applying edit to the parsed manifest when given.
func copyBundle(t *testing.T, edit func(m map[string]any)) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"inception.onnx", "i3d.onnx", evalbundle.ManifestFile} {
		data, err := os.ReadFile(filepath.Join(committed, name))
		if err != nil {
			t.Fatal(err)
		}
		if name == evalbundle.ManifestFile && edit != nil {
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			edit(m)
			if data, err = json.Marshal(m); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func model(m map[string]any, role string) map[string]any {
	return m["models"].(map[string]any)[role].(map[string]any)
}

func TestReadManifestGeometry(t *testing.T) {
	m, err := evalbundle.ReadManifest(committed)
	if err != nil {
		t.Fatal(err)
	}
	g, err := m.Geometry()
	if err != nil {
		t.Fatal(err)
	}
	want := evalbundle.Geometry{ImageSide: 128, ClipFrames: 16, ClipSide: 112, ImageFeatures: 64, ClipFeatures: 64}
	if g != want {
		t.Errorf("geometry %+v, want %+v", g, want)
	}
}

func TestLoadRejectsBrokenBundles(t *testing.T) {
	rt := infertest.Runtime(t)
	tests := []struct {
		name  string
		setup func(t *testing.T) string
		want  string
	}{
		{"missing", func(t *testing.T) string { return filepath.Join(t.TempDir(), "none") }, "manifest.json is missing"},
		{"corrupt file", func(t *testing.T) string {
			dir := copyBundle(t, nil)
			if err := os.WriteFile(filepath.Join(dir, "i3d.onnx"), []byte("not a model"), 0o644); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "i3d.onnx has sha256"},
		{"no i3d", func(t *testing.T) string {
			return copyBundle(t, func(m map[string]any) { delete(m["models"].(map[string]any), "i3d") })
		}, "no i3d model"},
		{"path escapes", func(t *testing.T) string {
			return copyBundle(t, func(m map[string]any) { model(m, "inception")["file"] = "../inception.onnx" })
		}, "plain file name"},
		{"input not an image", func(t *testing.T) string {
			return copyBundle(t, func(m map[string]any) {
				model(m, "inception")["inputs"].([]any)[0].(map[string]any)["shape"] = []any{"batch", 3, 128}
			})
		}, "models.inception: input shape"},
		{"tensor name differs from the model", func(t *testing.T) string {
			return copyBundle(t, func(m map[string]any) {
				model(m, "inception")["outputs"].([]any)[0].(map[string]any)["name"] = "logits"
			})
		}, "does not match the manifest"},
		{"unknown field", func(t *testing.T) string {
			return copyBundle(t, func(m map[string]any) { m["thresholds"] = 1 })
		}, "unknown field"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := evalbundle.Load(context.Background(), rt, tc.setup(t))
			if err == nil {
				b.Close()
				t.Fatal("loaded")
			}
			if joberr.CodeOf(err) != joberr.ModelUnavailable || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v (%s), want MODEL_UNAVAILABLE mentioning %q", err, joberr.CodeOf(err), tc.want)
			}
		})
	}
}

func TestVideoFeaturesSampling(t *testing.T) {
	rt := infertest.Runtime(t)
	b, err := evalbundle.Load(context.Background(), rt, committed)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	clip := mediatest.MP4(t, mediatest.Clip{W: 160, H: 120, Seconds: 2}) // 50 frames
	tests := []struct {
		name                 string
		s                    evalbundle.Sampling
		frames, images, clip int
	}{
		{"defaults", evalbundle.Sampling{}, 50, 13, 3},                                                    // frames 0,4..48; clips at 0,16,32
		{"every frame, overlapping clips", evalbundle.Sampling{FrameStride: 1, ClipStride: 8}, 50, 50, 5}, // clips at 0,8,...,32
		{"first 20 frames", evalbundle.Sampling{MaxFrames: 20}, 20, 5, 1},
		{"too short for a clip", evalbundle.Sampling{MaxFrames: 15}, 15, 4, 0},
	}
	var first [][]float32
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := b.VideoFeatures(context.Background(), clip, tc.s)
			if err != nil {
				t.Fatal(err)
			}
			if f.Frames != tc.frames || len(f.Images) != tc.images || len(f.Clips) != tc.clip {
				t.Errorf("%d frames, %d images, %d clips; want %d, %d, %d", f.Frames, len(f.Images), len(f.Clips), tc.frames, tc.images, tc.clip)
			}
			for _, row := range append(f.Images, f.Clips...) {
				if len(row) != 64 {
					t.Fatalf("feature row of %d values", len(row))
				}
			}
			// Frame 0 and the clip at 0 are in every sampling: batching and
			// strides must not change them.
			if first == nil {
				first = [][]float32{f.Images[0], f.Clips[0]}
			} else if !equal(f.Images[0], first[0]) || (len(f.Clips) > 0 && !equal(f.Clips[0], first[1])) {
				t.Error("features of frame 0 / clip 0 depend on the sampling")
			}
		})
	}
	if _, err := b.VideoFeatures(context.Background(), mediatest.TextAsMP4(t), evalbundle.Sampling{}); joberr.CodeOf(err) != joberr.UnsupportedMedia {
		t.Errorf("text file: %v, want UNSUPPORTED_MEDIA", err)
	}
}

func equal(a, b []float32) bool {
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

func TestResizeAveragesTheCoveredPixels(t *testing.T) {
	// 4x2 image: left half columns 0-1 values 10/30, right half 100/200.
	src := raster.New(4, 2)
	vals := [][]byte{{10, 30, 100, 200}, {30, 10, 200, 100}}
	for y := range 2 {
		for x := range 4 {
			o := src.Offset(x, y)
			src.Pix[o], src.Pix[o+1], src.Pix[o+2] = vals[y][x], 255-vals[y][x], 7
		}
	}
	got := evalbundle.Resize(src, 2, 1)
	want := []byte{20, 235, 7, 150, 105, 7}
	if string(got.Pix) != string(want) {
		t.Errorf("2x1 resize %v, want %v", got.Pix, want)
	}
	up := evalbundle.Resize(got, 4, 2)
	if up.Pix[0] != 20 || up.Pix[up.Offset(3, 1)] != 150 {
		t.Errorf("upscale does not repeat pixels: %v", up.Pix)
	}
	p := evalbundle.Planar(got)
	if len(p) != 6 || p[0] != 20/127.5-1 || p[2] != 235/127.5-1 || p[4] != 7/127.5-1 {
		t.Errorf("planar %v: want channel planes in [-1,1]", p)
	}
}
