// Package evalbundle loads an evaluation bundle: the feature networks behind
// FID (an Inception-style image network) and FVD (an I3D-style clip
// network), listed in a manifest with their checksums, and turns decoded
// frames into the feature vectors those distances compare.
package evalbundle

import (
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/latentsync/latentsync-service/gpuworker/bundle"
)

// FormatVersion is the evaluation manifest format this package reads and writes.
const FormatVersion = 1

// ManifestFile is the manifest's name inside an evaluation bundle directory.
const ManifestFile = "manifest.json"

// The networks an evaluation bundle provides.
const (
	InceptionModel = "inception" // FID: image [batch,3,S,S] in [-1,1] -> features [batch,F]
	I3DModel       = "i3d"       // FVD: clip [batch,3,T,S,S] in [-1,1] -> features [batch,F]
)

// Manifest is an evaluation bundle's manifest.json. Models reuse the model
// bundle's entry (file, sha256, tensors) so both bundles are published and
// verified the same way.
type Manifest struct {
	FormatVersion int                     `json:"format_version"`
	Name          string                  `json:"name"`
	Version       string                  `json:"version"`
	Description   string                  `json:"description"`
	Models        map[string]bundle.Model `json:"models"`
}

// Geometry is what the networks expect, read from the manifest's tensors.
type Geometry struct {
	ImageSide     int // Inception input side
	ClipFrames    int // I3D input frames
	ClipSide      int // I3D input side
	ImageFeatures int
	ClipFeatures  int
}

// Validate reports every problem at once, so a broken manifest is rejected
// at load time rather than in the middle of an evaluation.
func (m *Manifest) Validate() error {
	_, err := m.geometry()
	return err
}

// Geometry returns the input and feature sizes; the manifest must be valid.
func (m *Manifest) Geometry() (Geometry, error) { return m.geometry() }

func (m *Manifest) geometry() (Geometry, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if m.FormatVersion != FormatVersion {
		bad("format_version %d: want %d", m.FormatVersion, FormatVersion)
	}
	if m.Name == "" {
		bad("name is missing")
	}
	if m.Version == "" {
		bad("version is missing")
	}
	var g Geometry
	for _, role := range []string{InceptionModel, I3DModel} {
		spec, ok := m.Models[role]
		if !ok {
			bad("models: no %s model", role)
			continue
		}
		// The loader joins File to the bundle directory: it must not escape it.
		if spec.File == "" || spec.File != filepath.Base(spec.File) || spec.File == "." || spec.File == ".." {
			bad("models.%s: file %q: must be a plain file name", role, spec.File)
		}
		if b, err := hex.DecodeString(spec.SHA256); err != nil || len(b) != 32 {
			bad("models.%s: sha256 %q: must be 64 hex digits", role, spec.SHA256)
		}
		if len(spec.Inputs) != 1 || len(spec.Outputs) != 1 {
			bad("models.%s: want one input and one output, have %d and %d", role, len(spec.Inputs), len(spec.Outputs))
			continue
		}
		in, out := spec.Inputs[0], spec.Outputs[0]
		if in.DType != "float32" || out.DType != "float32" {
			bad("models.%s: tensors must be float32, have %s and %s", role, in.DType, out.DType)
		}
		if in.Name == "" || out.Name == "" {
			bad("models.%s: tensor names are missing", role)
		}
		// [batch, 3, (T,) S, S] in, [batch, F] out.
		rank := 4
		if role == I3DModel {
			rank = 5
		}
		sizes, ok := fixedAfterBatch(in.Shape, rank)
		if !ok || sizes[0] != 3 || sizes[len(sizes)-1] != sizes[len(sizes)-2] {
			bad("models.%s: input shape %v: want %d dimensions, [batch,3,...,S,S], sizes after batch fixed", role, in.Shape, rank)
			continue
		}
		feat, ok := fixedAfterBatch(out.Shape, 2)
		if !ok {
			bad("models.%s: output shape %v: want [batch,F]", role, out.Shape)
			continue
		}
		if role == InceptionModel {
			g.ImageSide, g.ImageFeatures = int(sizes[1]), int(feat[0])
		} else {
			g.ClipFrames, g.ClipSide, g.ClipFeatures = int(sizes[1]), int(sizes[2]), int(feat[0])
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Geometry{}, err
	}
	return g, nil
}

// fixedAfterBatch checks a shape of the given rank whose first dimension is
// anything (the batch) and whose others are fixed and positive; it returns
// those others.
func fixedAfterBatch(shape []bundle.Dim, rank int) ([]int64, bool) {
	if len(shape) != rank {
		return nil, false
	}
	var out []int64
	for _, d := range shape[1:] {
		n, fixed := d.Size()
		if !fixed || n <= 0 {
			return nil, false
		}
		out = append(out, n)
	}
	return out, true
}

// ReadManifest parses and validates dir/manifest.json. Every failure is
// MODEL_UNAVAILABLE.
func ReadManifest(dir string) (*Manifest, error) {
	var m Manifest
	if err := bundle.ReadStrict(dir, "evaluation bundle", &m); err != nil {
		return nil, err
	}
	return &m, nil
}
