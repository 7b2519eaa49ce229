package bundle_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latentsync/latentsync-service/gpuworker/bundle"
	"github.com/latentsync/latentsync-service/gpuworker/infer/infertest"
	"github.com/latentsync/latentsync-service/internal/joberr"
)

const standin = "../../testdata/bundle"

func TestLoadStandIn(t *testing.T) {
	rt := infertest.Runtime(t)
	b, err := bundle.Load(context.Background(), rt, standin)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for name, s := range map[string]any{
		"audio_encoder": b.AudioEncoder, "vae_encoder": b.VAEEncoder, "vae_decoder": b.VAEDecoder,
		"unet": b.UNet, "face_detector": b.FaceDetector, "syncnet": b.SyncNet,
	} {
		if s == nil {
			t.Errorf("%s session not opened", name)
		}
	}
	if b.Provider() != "CPU" {
		t.Errorf("provider %q on a machine without CUDA", b.Provider())
	}
	if got := b.Manifest.Parameters.Resolution; got != 256 {
		t.Errorf("resolution %d", got)
	}
}

// copyBundle copies the stand-in into a temporary directory that a test may break.
func copyBundle(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(standin)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(standin, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// editManifest applies edit to the manifest as generic JSON.
func editManifest(t *testing.T, dir string, edit func(m map[string]any)) {
	t.Helper()
	path := filepath.Join(dir, "manifest.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	raw, err = json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

func model(m map[string]any, name string) map[string]any {
	return m["models"].(map[string]any)[name].(map[string]any)
}

func TestLoadRejects(t *testing.T) {
	rt := infertest.Runtime(t)
	cases := []struct {
		name   string
		break_ func(t *testing.T, dir string)
		want   []string // all must appear in the message
	}{
		{"missing manifest", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "manifest.json")) },
			[]string{"manifest.json is missing"}},
		{"manifest not json", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "manifest.json"), []byte("{"), 0o644)
		}, []string{"not a valid manifest"}},
		{"unknown manifest field", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m map[string]any) { m["resolutoin"] = 256 })
		}, []string{"resolutoin"}},
		{"missing model file", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "unet.onnx")) },
			[]string{"unet.onnx", "missing"}},
		{"wrong checksum", func(t *testing.T, dir string) {
			path := filepath.Join(dir, "vae_decoder.onnx")
			b, _ := os.ReadFile(path)
			b[len(b)-1] ^= 0xff
			os.WriteFile(path, b, 0o644)
		}, []string{"vae_decoder.onnx", "sha256"}},
		{"required model not listed", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m map[string]any) { delete(m["models"].(map[string]any), "unet") })
		}, []string{"no unet model"}},
		{"input name differs", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m map[string]any) {
				model(m, "unet")["inputs"].([]any)[0].(map[string]any)["name"] = "latents"
			})
		}, []string{"unet.onnx", `"sample"`, `"latents"`}},
		{"dtype differs", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m map[string]any) {
				model(m, "vae_encoder")["outputs"].([]any)[0].(map[string]any)["dtype"] = "float16"
			})
		}, []string{"vae_encoder.onnx", "float16"}},
		{"shape differs", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m map[string]any) {
				model(m, "audio_encoder")["inputs"].([]any)[0].(map[string]any)["shape"] = []any{1, 80, 1500}
			})
		}, []string{"audio_encoder.onnx", "shape"}},
		{"another network under a model's name", func(t *testing.T, dir string) {
			// vae_decoder.onnx listed as the UNet, with its true checksum.
			editManifest(t, dir, func(m map[string]any) {
				u, d := model(m, "unet"), model(m, "vae_decoder")
				u["file"], u["sha256"] = d["file"], d["sha256"]
			})
		}, []string{"vae_decoder.onnx", "does not match the manifest"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyBundle(t)
			c.break_(t, dir)
			b, err := bundle.Load(context.Background(), rt, dir)
			if err == nil {
				b.Close()
				t.Fatal("loaded a broken bundle")
			}
			if code := joberr.CodeOf(err); code != joberr.ModelUnavailable {
				t.Errorf("code %s, want MODEL_UNAVAILABLE", code)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
}
