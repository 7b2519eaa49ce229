package evalbundle

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"

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
		if err := bundle.VerifyFile(dir, m.Models[role]); err != nil {
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
		if err := bundle.CheckIO(spec, s); err != nil {
			b.Close()
			return nil, joberr.Wrap(joberr.ModelUnavailable, err, "evaluation bundle %s: %s does not match the manifest: %v", dir, spec.File, err)
		}
	}
	return b, nil
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
