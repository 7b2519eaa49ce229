// Package quality measures how close generated frames are to references.
package quality

import (
	"errors"
	"fmt"
	"image"
	"math"

	"github.com/latentsync/latentsync-service/internal/raster"
)

// SSIM parameters of Wang, Bovik, Sheikh & Simoncelli (2004), "Image
// quality assessment: from error visibility to structural similarity".
const (
	win    = 11 // Gaussian window side
	half   = win / 2
	sigma  = 1.5 // Gaussian window standard deviation
	k1, k2 = 0.01, 0.03
	dyn    = 255.0 // L, the dynamic range of 8-bit pixels
)

// SSIM is the mean structural similarity of a and b's luma over every 11x11
// window that fits inside the image (no padding, as in the paper's
// reference implementation): 1 for identical images.
//
// It is computed on luma Y = 0.299 R + 0.587 G + 0.114 B (BT.601 weights,
// unrounded) rather than per channel: the paper defines SSIM on grayscale,
// and lip-sync errors are structural, not chromatic.
func SSIM(a, b *raster.RGB) (float64, error) {
	if err := sameSize(a, b); err != nil {
		return 0, err
	}
	return SSIMRect(a, b, image.Rect(0, 0, a.W, a.H))
}

// SSIMRect is SSIM counting only the windows whose centre pixel lies inside
// r (e.g. the mouth region); windows still read pixels outside r. Centres
// too close to the image border for a whole window are skipped, and an error
// is returned when no window is left.
func SSIMRect(a, b *raster.RGB, r image.Rectangle) (float64, error) {
	sum, n := 0.0, 0
	if err := windows(a, b, r, func(_, _ int, s float64) {
		sum += s
		n++
	}); err != nil {
		return 0, err
	}
	return sum / float64(n), nil
}

// SSIMMasked is SSIMRect over r that also averages, in the same pass, only
// the windows whose centre pixel (x, y) satisfies keep: kept is the score of
// that region (e.g. everything outside a mouth mask), all the score of the
// whole of r. It is an error when keep accepts no window centre.
func SSIMMasked(a, b *raster.RGB, r image.Rectangle, keep func(x, y int) bool) (kept, all float64, err error) {
	var keptSum, allSum float64
	var nKept, nAll int
	if err := windows(a, b, r, func(x, y int, s float64) {
		allSum += s
		nAll++
		if keep(x, y) {
			keptSum += s
			nKept++
		}
	}); err != nil {
		return 0, 0, err
	}
	if nKept == 0 {
		return 0, 0, fmt.Errorf("ssim: the mask keeps none of the %d window centres in %v", nAll, r)
	}
	return keptSum / float64(nKept), allSum / float64(nAll), nil
}

// windows calls visit with the SSIM of every 11x11 window whose centre lies
// in r and whose pixels all lie in the image, row by row.
func windows(a, b *raster.RGB, r image.Rectangle, visit func(x, y int, s float64)) error {
	if err := sameSize(a, b); err != nil {
		return err
	}
	// Centres whose window fits: [half, W-half) x [half, H-half).
	c := r.Intersect(image.Rect(half, half, a.W-half, a.H-half))
	if c.Empty() {
		return fmt.Errorf("ssim: no %dx%d window centred in %v fits a %dx%d image", win, win, r, a.W, a.H)
	}
	g := gaussian()
	// Luma only where the windows reach: a face's box in a large frame
	// should not pay for the whole frame.
	e := c.Inset(-half)
	x, y := luma(a, e), luma(b, e)
	lw := e.Dx()

	// Separable filter: horizontal pass over the rows the windows touch,
	// then a vertical pass per centre. Five moments: x, y, x², y², xy.
	rows := c.Dy() + 2*half
	cols := c.Dx()
	h := make([][5]float64, rows*cols)
	for ry := range rows {
		for cx := range cols {
			var m [5]float64
			off := ry*lw + cx // window's left edge in the luma block
			for i, w := range g {
				xv, yv := x[off+i], y[off+i]
				m[0] += w * xv
				m[1] += w * yv
				m[2] += w * xv * xv
				m[3] += w * yv * yv
				m[4] += w * xv * yv
			}
			h[ry*cols+cx] = m
		}
	}
	c1 := (k1 * dyn) * (k1 * dyn)
	c2 := (k2 * dyn) * (k2 * dyn)
	for cy := range c.Dy() {
		for cx := range cols {
			var m [5]float64
			for i, w := range g {
				hm := &h[(cy+i)*cols+cx]
				for j := range m {
					m[j] += w * hm[j]
				}
			}
			mx, my := m[0], m[1]
			vx, vy, cov := m[2]-mx*mx, m[3]-my*my, m[4]-mx*my
			visit(c.Min.X+cx, c.Min.Y+cy, (2*mx*my+c1)*(2*cov+c2)/((mx*mx+my*my+c1)*(vx+vy+c2)))
		}
	}
	return nil
}

func sameSize(a, b *raster.RGB) error {
	if a == nil || b == nil {
		return errors.New("ssim: nil image")
	}
	if err := a.Validate(); err != nil {
		return fmt.Errorf("ssim: first image: %w", err)
	}
	if err := b.Validate(); err != nil {
		return fmt.Errorf("ssim: second image: %w", err)
	}
	if a.W != b.W || a.H != b.H {
		return fmt.Errorf("ssim: sizes differ: %dx%d vs %dx%d", a.W, a.H, b.W, b.H)
	}
	return nil
}

// gaussian is the normalised 1-D window; its outer product is the paper's
// 11x11 window (MATLAB fspecial('gaussian', 11, 1.5)).
func gaussian() [win]float64 {
	var g [win]float64
	s := 0.0
	for i := range g {
		d := float64(i - half)
		g[i] = math.Exp(-d * d / (2 * sigma * sigma))
		s += g[i]
	}
	for i := range g {
		g[i] /= s
	}
	return g
}

// luma is the Y plane of m over rectangle r (inside m), row-major.
func luma(m *raster.RGB, r image.Rectangle) []float64 {
	out := make([]float64, 0, r.Dx()*r.Dy())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		row := m.Pix[m.Offset(r.Min.X, y):m.Offset(r.Max.X, y)]
		for i := 0; i < len(row); i += 3 {
			out = append(out, 0.299*float64(row[i])+0.587*float64(row[i+1])+0.114*float64(row[i+2]))
		}
	}
	return out
}
