package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/latentsync/latentsync-service/gpuworker/infer"
	"github.com/latentsync/latentsync-service/internal/joberr"
)

// The networks a LatentSync bundle provides; syncnet is optional (quality
// metrics only).
const (
	AudioEncoderModel = "audio_encoder"
	VAEEncoderModel   = "vae_encoder"
	VAEDecoderModel   = "vae_decoder"
	UNetModel         = "unet"
	FaceDetectorModel = "face_detector"
	SyncNetModel      = "syncnet"
)

var requiredModels = []string{AudioEncoderModel, VAEEncoderModel, VAEDecoderModel, UNetModel, FaceDetectorModel}

// Bundle is a verified model bundle with every session open.
type Bundle struct {
	Dir      string
	Manifest *Manifest

	AudioEncoder, VAEEncoder, VAEDecoder, UNet, FaceDetector *infer.Session
	SyncNet                                                  *infer.Session // nil when the bundle has none

	sessions []*infer.Session
}

// Load reads dir/manifest.json, verifies every file's checksum, opens every
// session once and checks each model's inputs and outputs against the
// manifest. Every failure is MODEL_UNAVAILABLE naming the file at fault.
func Load(ctx context.Context, rt *infer.Runtime, dir string) (*Bundle, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	for _, name := range requiredModels {
		if _, ok := m.Models[name]; !ok {
			return nil, joberr.New(joberr.ModelUnavailable, "bundle %s: manifest lists no %s model", dir, name)
		}
	}
	names := sortedKeys(m.Models)
	// Checksums first: a corrupt file should never reach ONNX Runtime.
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := VerifyFile(dir, m.Models[name]); err != nil {
			return nil, err
		}
	}
	b := &Bundle{Dir: dir, Manifest: m}
	for _, name := range names {
		spec := m.Models[name]
		s, err := rt.Open(filepath.Join(dir, spec.File))
		if err != nil {
			b.Close()
			return nil, joberr.Wrap(joberr.ModelUnavailable, err, "bundle %s: cannot load %s", dir, spec.File)
		}
		b.sessions = append(b.sessions, s)
		if err := CheckIO(spec, s); err != nil {
			b.Close()
			return nil, joberr.Wrap(joberr.ModelUnavailable, err, "bundle %s: %s does not match the manifest: %v", dir, spec.File, err)
		}
		switch name {
		case AudioEncoderModel:
			b.AudioEncoder = s
		case VAEEncoderModel:
			b.VAEEncoder = s
		case VAEDecoderModel:
			b.VAEDecoder = s
		case UNetModel:
			b.UNet = s
		case FaceDetectorModel:
			b.FaceDetector = s
		case SyncNetModel:
			b.SyncNet = s
		}
	}
	return b, nil
}

// ReadManifest parses and validates dir/manifest.json.
func ReadManifest(dir string) (*Manifest, error) {
	var m Manifest
	if err := ReadStrict(dir, "model bundle", &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// ReadStrict decodes dir/manifest.json into m, refusing unknown fields, and
// validates it; every failure is MODEL_UNAVAILABLE. what names the bundle
// kind in messages ("model bundle", "evaluation bundle").
func ReadStrict(dir, what string, m interface{ Validate() error }) error {
	path := filepath.Join(dir, "manifest.json")
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return joberr.Wrap(joberr.ModelUnavailable, err, "no %s at %s: manifest.json is missing", what, dir)
	}
	if err != nil {
		return joberr.Wrap(joberr.ModelUnavailable, err, "read %s", path)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(m); err != nil {
		return joberr.Wrap(joberr.ModelUnavailable, err, "%s is not a valid manifest: %v", path, err)
	}
	if err := m.Validate(); err != nil {
		return joberr.Wrap(joberr.ModelUnavailable, err, "%s: %v", path, err)
	}
	return nil
}

// VerifyFile checks a model file against its manifest sha256; every failure
// is MODEL_UNAVAILABLE naming the file. The evaluation bundle shares it.
func VerifyFile(dir string, spec Model) error {
	f, err := os.Open(filepath.Join(dir, spec.File))
	if errors.Is(err, fs.ErrNotExist) {
		return joberr.Wrap(joberr.ModelUnavailable, err, "bundle %s: model file %s is missing", dir, spec.File)
	}
	if err != nil {
		return joberr.Wrap(joberr.ModelUnavailable, err, "bundle %s: open %s", dir, spec.File)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return joberr.Wrap(joberr.ModelUnavailable, err, "bundle %s: read %s", dir, spec.File)
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, spec.SHA256) {
		return joberr.New(joberr.ModelUnavailable, "bundle %s: %s has sha256 %s, the manifest says %s", dir, spec.File, got, spec.SHA256)
	}
	return nil
}

// CheckIO compares a session's declared tensors with the manifest: same
// names in the same order, same dtypes, and compatible shapes (a fixed
// manifest dimension must be that size or dynamic in the model; a symbolic
// one must be dynamic).
func CheckIO(spec Model, s *infer.Session) error {
	if err := matchTensors("input", spec.Inputs, s.Inputs()); err != nil {
		return err
	}
	return matchTensors("output", spec.Outputs, s.Outputs())
}

func matchTensors(kind string, want []TensorSpec, got []infer.TensorInfo) error {
	if len(want) != len(got) {
		return fmt.Errorf("%d %ss in the model, %d in the manifest", len(got), kind, len(want))
	}
	for i, w := range want {
		g := got[i]
		if w.Name != g.Name {
			return fmt.Errorf("%s %d is %q in the model, %q in the manifest", kind, i, g.Name, w.Name)
		}
		if string(w.DType) != string(g.DType) {
			return fmt.Errorf("%s %q is %s in the model, %s in the manifest", kind, w.Name, g.DType, w.DType)
		}
		mismatch := len(w.Shape) != len(g.Shape)
		for d := 0; !mismatch && d < len(w.Shape); d++ {
			size, fixed := w.Shape[d].Size()
			mismatch = g.Shape[d] >= 0 && (!fixed || g.Shape[d] != size)
		}
		if mismatch {
			return fmt.Errorf("%s %q has shape %v in the model, %v in the manifest", kind, w.Name, g.Shape, w.Shape)
		}
	}
	return nil
}

// Provider is the execution provider the UNet (the expensive part) runs on.
func (b *Bundle) Provider() string {
	if b.UNet == nil {
		return ""
	}
	return b.UNet.Provider
}

// Close releases every session.
func (b *Bundle) Close() error {
	var errs []error
	for _, s := range b.sessions {
		errs = append(errs, s.Close())
	}
	b.sessions = nil
	return errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
