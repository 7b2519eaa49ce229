package evalbundle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/latentsync/latentsync-service/gpuworker/bundle"
	"github.com/latentsync/latentsync-service/gpuworker/infer"
	"github.com/latentsync/latentsync-service/internal/joberr"
)

// Bundle is a verified evaluation bundle with both sessions open.
type Bundle struct {
	Dir      string
	Manifest *Manifest
	Geometry Geometry

	inception, i3d *infer.Session
}

// Load reads dir/manifest.json, verifies both files' checksums before ONNX
// Runtime sees them, opens the sessions and checks their tensors against the
// manifest. Every failure is MODEL_UNAVAILABLE naming the file at fault.
func Load(ctx context.Context, rt *infer.Runtime, dir string) (*Bundle, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	g, err := m.Geometry()
	if err != nil {
		return nil, joberr.Wrap(joberr.ModelUnavailable, err, "evaluation bundle %s: %v", dir, err)
	}
	roles := []string{I3DModel, InceptionModel}
	for _, role := range roles {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := verifyFile(dir, m.Models[role]); err != nil {
			return nil, err
		}
	}
	b := &Bundle{Dir: dir, Manifest: m, Geometry: g}
	for _, role := range roles {
		spec := m.Models[role]
		s, err := rt.Open(filepath.Join(dir, spec.File))
		if err != nil {
			b.Close()
			return nil, joberr.Wrap(joberr.ModelUnavailable, err, "evaluation bundle %s: cannot load %s", dir, spec.File)
		}
		if role == InceptionModel {
			b.inception = s
		} else {
			b.i3d = s
		}
		if err := matchTensors(spec, s); err != nil {
			b.Close()
			return nil, joberr.Wrap(joberr.ModelUnavailable, err, "evaluation bundle %s: %s does not match the manifest: %v", dir, spec.File, err)
		}
	}
	return b, nil
}

func verifyFile(dir string, spec bundle.Model) error {
	f, err := os.Open(filepath.Join(dir, spec.File))
	if errors.Is(err, fs.ErrNotExist) {
		return joberr.Wrap(joberr.ModelUnavailable, err, "evaluation bundle %s: model file %s is missing", dir, spec.File)
	}
	if err != nil {
		return joberr.Wrap(joberr.ModelUnavailable, err, "evaluation bundle %s: open %s", dir, spec.File)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return joberr.Wrap(joberr.ModelUnavailable, err, "evaluation bundle %s: read %s", dir, spec.File)
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, spec.SHA256) {
		return joberr.New(joberr.ModelUnavailable, "evaluation bundle %s: %s has sha256 %s, the manifest says %s", dir, spec.File, got, spec.SHA256)
	}
	return nil
}

// matchTensors wants the manifest's names and dtypes, and shapes the model
// either fixes to the manifest's sizes or leaves dynamic.
func matchTensors(spec bundle.Model, s *infer.Session) error {
	for _, side := range []struct {
		kind string
		want []bundle.TensorSpec
		got  []infer.TensorInfo
	}{{"input", spec.Inputs, s.Inputs()}, {"output", spec.Outputs, s.Outputs()}} {
		if len(side.want) != len(side.got) {
			return fmt.Errorf("%d %ss in the model, %d in the manifest", len(side.got), side.kind, len(side.want))
		}
		for i, w := range side.want {
			g := side.got[i]
			if g.Name != w.Name || string(g.DType) != w.DType || len(g.Shape) != len(w.Shape) {
				return fmt.Errorf("%s %d is %q %s %v in the model, %q %s %v in the manifest", side.kind, i, g.Name, g.DType, g.Shape, w.Name, w.DType, w.Shape)
			}
			for d, dim := range w.Shape {
				n, fixed := dim.Size()
				if g.Shape[d] >= 0 && (!fixed || g.Shape[d] != n) {
					return fmt.Errorf("%s %q has shape %v in the model, %v in the manifest", side.kind, w.Name, g.Shape, w.Shape)
				}
			}
		}
	}
	return nil
}

// Close releases both sessions.
func (b *Bundle) Close() error {
	var errs []error
	for _, s := range []*infer.Session{b.inception, b.i3d} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	b.inception, b.i3d = nil, nil
	return errors.Join(errs...)
}

// run feeds one batch to a single-input, single-output session and splits the
// output into one row per item.
func run(ctx context.Context, s *infer.Session, shape []int64, data []float32, features int) ([][]float32, error) {
	in, out := s.Inputs()[0].Name, s.Outputs()[0].Name
	res, err := s.Run(ctx, map[string]infer.Tensor{in: {Shape: shape, Float: data}})
	if err != nil {
		return nil, err
	}
	t := res[out]
	batch := int(shape[0])
	if len(t.Float) != batch*features {
		return nil, fmt.Errorf("model %s: %d output values for %d items of %d features", s.Path(), len(t.Float), batch, features)
	}
	rows := make([][]float32, batch)
	for i := range rows {
		rows[i] = slices.Clone(t.Float[i*features : (i+1)*features])
	}
	return rows, nil
}
