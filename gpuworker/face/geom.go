// Package face finds faces (BlazeFace), fits the similarity transform that
// puts a face into LatentSync's fixed crop, keeps that transform steady over
// time, and moves pixels between the frame and the crop in both directions.
//
// Coordinates are continuous pixel coordinates: pixel (i, j) covers
// [i, i+1) x [j, j+1) and its centre is (i+0.5, j+0.5). The detector, the
// template and both warps use this one convention, so a point never shifts
// by half a pixel between stages.
package face

import (
	"errors"
	"fmt"
	"math"
)

// Point is a position in continuous pixel coordinates.
type Point struct{ X, Y float64 }

// Box is an axis-aligned rectangle in continuous pixel coordinates.
type Box struct{ X0, Y0, X1, Y1 float64 }

// W is the width.
func (b Box) W() float64 { return b.X1 - b.X0 }

// H is the height.
func (b Box) H() float64 { return b.Y1 - b.Y0 }

// Area is zero for an empty or inverted box.
func (b Box) Area() float64 { return math.Max(0, b.W()) * math.Max(0, b.H()) }

// Center is the middle of the box.
func (b Box) Center() Point { return Point{(b.X0 + b.X1) / 2, (b.Y0 + b.Y1) / 2} }

// IoU is intersection over union; 0 when either box is empty.
func (b Box) IoU(o Box) float64 {
	in := Box{math.Max(b.X0, o.X0), math.Max(b.Y0, o.Y0), math.Min(b.X1, o.X1), math.Min(b.Y1, o.Y1)}
	i := in.Area()
	u := b.Area() + o.Area() - i
	if u <= 0 {
		return 0
	}
	return i / u
}

// Affine is a 2x3 row-major matrix [a b c; d e f] mapping (x, y) to
// (a*x + b*y + c, d*x + e*y + f). In this package it maps frame coordinates to
// crop coordinates unless a name says otherwise.
type Affine [6]float64

// Identity maps every point to itself.
func Identity() Affine { return Affine{1, 0, 0, 0, 1, 0} }

// Apply maps p.
func (m Affine) Apply(p Point) Point {
	return Point{m[0]*p.X + m[1]*p.Y + m[2], m[3]*p.X + m[4]*p.Y + m[5]}
}

// ErrSingular is returned for a transform that collapses the plane.
var ErrSingular = errors.New("face: singular affine transform")

// Invert returns the inverse map.
func (m Affine) Invert() (Affine, error) {
	det := m[0]*m[4] - m[1]*m[3]
	// Relative test: a crop scale of 1e-9 is as useless as an exact zero.
	if det == 0 || math.IsNaN(det) || math.IsInf(det, 0) ||
		math.Abs(det) < 1e-12*(m[0]*m[0]+m[1]*m[1]+m[3]*m[3]+m[4]*m[4]) {
		return Affine{}, fmt.Errorf("invert %v: %w", m, ErrSingular)
	}
	a, b, d, e := m[4]/det, -m[1]/det, -m[3]/det, m[0]/det
	return Affine{a, b, -(a*m[2] + b*m[5]), d, e, -(d*m[2] + e*m[5])}, nil
}

// Compose returns m after n: the map p -> m.Apply(n.Apply(p)).
func (m Affine) Compose(n Affine) Affine {
	return Affine{
		m[0]*n[0] + m[1]*n[3], m[0]*n[1] + m[1]*n[4], m[0]*n[2] + m[1]*n[5] + m[2],
		m[3]*n[0] + m[4]*n[3], m[3]*n[1] + m[4]*n[4], m[3]*n[2] + m[4]*n[5] + m[5],
	}
}

// Similarity is the four-parameter form of a similarity transform
// p -> Scale * R(Angle) * p + (TX, TY); Angle in radians, counter-clockwise in
// a y-up frame (clockwise on screen, since image y points down).
type Similarity struct{ Scale, Angle, TX, TY float64 }

// Affine returns the matrix form.
func (s Similarity) Affine() Affine {
	c, n := s.Scale*math.Cos(s.Angle), s.Scale*math.Sin(s.Angle)
	return Affine{c, -n, s.TX, n, c, s.TY}
}

// SimilarityOf reads the parameters of m, assuming m is a similarity (as
// FitSimilarity returns); any shear or anisotropy is averaged away.
func SimilarityOf(m Affine) Similarity {
	c, n := (m[0]+m[4])/2, (m[3]-m[1])/2
	return Similarity{Scale: math.Hypot(c, n), Angle: math.Atan2(n, c), TX: m[2], TY: m[5]}
}

// FitSimilarity returns the similarity transform (scale, rotation,
// translation; never a reflection) that maps src onto dst with the least sum of
// squared errors: Umeyama's solution, which in 2D has this closed form.
func FitSimilarity(src, dst []Point) (Affine, error) {
	if len(src) != len(dst) {
		return Affine{}, fmt.Errorf("fit similarity: %d source points but %d targets", len(src), len(dst))
	}
	if len(src) < 2 {
		return Affine{}, fmt.Errorf("fit similarity: need at least 2 point pairs, got %d", len(src))
	}
	n := float64(len(src))
	var ms, md Point
	for i := range src {
		ms.X += src[i].X / n
		ms.Y += src[i].Y / n
		md.X += dst[i].X / n
		md.Y += dst[i].Y / n
	}
	// With the points as complex numbers s and d (centred), the best
	// z = a + ib minimising sum |d - z s|^2 is sum(conj(s) d) / sum |s|^2.
	var dot, cross, norm float64
	for i := range src {
		sx, sy := src[i].X-ms.X, src[i].Y-ms.Y
		dx, dy := dst[i].X-md.X, dst[i].Y-md.Y
		dot += sx*dx + sy*dy
		cross += sx*dy - sy*dx
		norm += sx*sx + sy*sy
	}
	if !(norm > 1e-12) { // also catches NaN
		return Affine{}, fmt.Errorf("fit similarity: source points coincide or are not finite")
	}
	a, b := dot/norm, cross/norm
	if a == 0 && b == 0 {
		return Affine{}, fmt.Errorf("fit similarity: target points coincide: %w", ErrSingular)
	}
	return Affine{a, -b, md.X - (a*ms.X - b*ms.Y), b, a, md.Y - (b*ms.X + a*ms.Y)}, nil
}
