package face

import (
	"fmt"
	"math"
)

// Template places the stable face points in the crop, as fractions of the
// crop side. Only eyes and nose tip are used: they stay put while the person
// speaks, so the crop does not bob with the jaw.
type Template struct{ RightEye, LeftEye, Nose Point }

// DefaultTemplate puts the subject's right eye (on the image's left) at
// (0.33, 0.34), the left eye at (0.67, 0.34) and the nose tip at (0.5, 0.52),
// which leaves the mouth and chin inside the crop's lower-face mask.
func DefaultTemplate() Template {
	return Template{RightEye: Point{0.33, 0.34}, LeftEye: Point{0.67, 0.34}, Nose: Point{0.5, 0.52}}
}

// Validate rejects templates that cannot define a transform.
func (t Template) Validate() error {
	for _, p := range []Point{t.RightEye, t.LeftEye, t.Nose} {
		if math.IsNaN(p.X) || math.IsNaN(p.Y) || math.IsInf(p.X, 0) || math.IsInf(p.Y, 0) {
			return fmt.Errorf("face template %+v: non-finite point", t)
		}
	}
	if math.Hypot(t.LeftEye.X-t.RightEye.X, t.LeftEye.Y-t.RightEye.Y) < 1e-3 {
		return fmt.Errorf("face template %+v: eyes coincide", t)
	}
	return nil
}

// Transform fits the frame-to-crop transform for a crop of side size that
// puts the detection's eyes and nose tip on the template.
func (t Template) Transform(kp [NumKeypoints]Point, size int) (Affine, error) {
	if size <= 0 {
		return Affine{}, fmt.Errorf("face template: crop size %d", size)
	}
	s := float64(size)
	src := []Point{kp[RightEye], kp[LeftEye], kp[NoseTip]}
	dst := []Point{
		{t.RightEye.X * s, t.RightEye.Y * s},
		{t.LeftEye.X * s, t.LeftEye.Y * s},
		{t.Nose.X * s, t.Nose.Y * s},
	}
	m, err := FitSimilarity(src, dst)
	if err != nil {
		return Affine{}, fmt.Errorf("align face to template: %w", err)
	}
	return m, nil
}
