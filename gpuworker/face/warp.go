package face

import (
	"fmt"
	"math"

	"github.com/latentsync/latentsync-service/internal/raster"
)

// WarpToCrop fills dst (planar CHW, 3*size*size, values in [-1, 1]) with the
// size x size crop that m (frame -> crop) defines, sampling src bilinearly;
// outside the frame the edge pixels repeat, so a face near the border gets no
// black wedge for the model to reproduce.
func WarpToCrop(src *raster.RGB, m Affine, size int, dst []float32) error {
	if err := src.Validate(); err != nil {
		return fmt.Errorf("warp to crop: %w", err)
	}
	if size <= 0 || len(dst) != 3*size*size {
		return fmt.Errorf("warp to crop: %d floats for a %dx%d crop", len(dst), size, size)
	}
	inv, err := m.Invert()
	if err != nil {
		return fmt.Errorf("warp to crop: %w", err)
	}
	plane := size * size
	r, g, b := dst[:plane], dst[plane:2*plane], dst[2*plane:]
	w, h, pix := src.W, src.H, src.Pix
	const scale, bias = 1.0 / 127.5, -1.0
	for j := 0; j < size; j++ {
		// Source position of crop pixel (i, j)'s centre, in index space
		// (pixel centres at integers), advanced incrementally along the row.
		p := inv.Apply(Point{0.5, float64(j) + 0.5})
		fx, fy := p.X-0.5, p.Y-0.5
		for i := 0; i < size; i++ {
			k := j*size + i
			if fx >= 0 && fy >= 0 && fx < float64(w-1) && fy < float64(h-1) {
				// Fast path, almost every pixel: all four neighbours exist
				// and truncation is the floor; two 6-byte row slices let
				// the compiler drop most bounds checks.
				x0, y0 := int(fx), int(fy)
				wx, wy := float32(fx-float64(x0)), float32(fy-float64(y0))
				o := 3 * (y0*w + x0)
				t := pix[o : o+6 : o+6]
				u := pix[o+3*w : o+3*w+6 : o+3*w+6]
				r[k] = bilerp(t[0], t[3], u[0], u[3], wx, wy)*scale + bias
				g[k] = bilerp(t[1], t[4], u[1], u[4], wx, wy)*scale + bias
				b[k] = bilerp(t[2], t[5], u[2], u[5], wx, wy)*scale + bias
			} else {
				x0f, y0f := math.Floor(fx), math.Floor(fy)
				wx, wy := float32(fx-x0f), float32(fy-y0f)
				x0, x1 := edgeIndex(x0f, w), edgeIndex(x0f+1, w)
				y0, y1 := edgeIndex(y0f, h), edgeIndex(y0f+1, h)
				o00, o01 := 3*(y0*w+x0), 3*(y0*w+x1)
				o10, o11 := 3*(y1*w+x0), 3*(y1*w+x1)
				r[k] = bilerp(pix[o00], pix[o01], pix[o10], pix[o11], wx, wy)*scale + bias
				g[k] = bilerp(pix[o00+1], pix[o01+1], pix[o10+1], pix[o11+1], wx, wy)*scale + bias
				b[k] = bilerp(pix[o00+2], pix[o01+2], pix[o10+2], pix[o11+2], wx, wy)*scale + bias
			}
			fx += inv[0]
			fy += inv[3]
		}
	}
	return nil
}

// edgeIndex clamps an integral float index into [0, n) (replicating the
// edge) without converting far-away values to int, which Go leaves undefined.
func edgeIndex(f float64, n int) int {
	switch {
	case f <= 0:
		return 0
	case f >= float64(n-1):
		return n - 1
	}
	return int(f)
}

func bilerp(a, b, c, d byte, wx, wy float32) float32 {
	top := float32(a) + (float32(b)-float32(a))*wx
	bot := float32(c) + (float32(d)-float32(c))*wx
	return top + (bot-top)*wy
}

// BlendBack writes a processed crop back into the frame it came from:
// dst = alpha*crop + (1-alpha)*dst, with crop (CHW, [-1, 1]) and alpha
// (size*size, 0..1) sampled bilinearly at each frame pixel's position in the
// crop. Only the bounding box of the crop square's footprint in dst is
// visited, and a pixel whose alpha is 0 is not written at all, so everything
// outside the blended region stays bit-identical.
func BlendBack(dst *raster.RGB, crop, alpha []float32, m Affine) error {
	if err := dst.Validate(); err != nil {
		return fmt.Errorf("blend back: %w", err)
	}
	size := int(math.Round(math.Sqrt(float64(len(alpha)))))
	if size <= 0 || size*size != len(alpha) || len(crop) != 3*size*size {
		return fmt.Errorf("blend back: %d crop floats and %d alpha values do not make a square crop", len(crop), len(alpha))
	}
	inv, err := m.Invert()
	if err != nil {
		return fmt.Errorf("blend back: %w", err)
	}
	s := float64(size)
	x0, y0, x1, y1 := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, c := range []Point{{0, 0}, {s, 0}, {0, s}, {s, s}} {
		p := inv.Apply(c)
		x0, y0 = math.Min(x0, p.X), math.Min(y0, p.Y)
		x1, y1 = math.Max(x1, p.X), math.Max(y1, p.Y)
	}
	// Pixels whose centre falls in [x0, x1] x [y0, y1].
	// (Clamped as floats first: a far-off crop must not overflow int.)
	fw, fh := float64(dst.W), float64(dst.H)
	bx0 := int(math.Max(0, math.Min(fw, math.Ceil(x0-0.5))))
	by0 := int(math.Max(0, math.Min(fh, math.Ceil(y0-0.5))))
	bx1 := int(math.Max(-1, math.Min(fw-1, math.Floor(x1-0.5))))
	by1 := int(math.Max(-1, math.Min(fh-1, math.Floor(y1-0.5))))
	plane := size * size
	r, g, b := crop[:plane], crop[plane:2*plane], crop[2*plane:]
	last := float64(size - 1)
	for y := by0; y <= by1; y++ {
		p := m.Apply(Point{float64(bx0) + 0.5, float64(y) + 0.5})
		fx, fy := p.X-0.5, p.Y-0.5
		for x := bx0; x <= bx1; x, fx, fy = x+1, fx+m[0], fy+m[3] {
			// Outside the crop square (beyond half a pixel of its edge
			// centres) nothing was generated.
			if fx < -0.5 || fy < -0.5 || fx > last+0.5 || fy > last+0.5 {
				continue
			}
			cx, cy := clampF(fx, last), clampF(fy, last)
			i0, j0 := int(cx), int(cy)
			i1, j1 := min(i0+1, size-1), min(j0+1, size-1)
			wx, wy := float32(cx-float64(i0)), float32(cy-float64(j0))
			k00, k01, k10, k11 := j0*size+i0, j0*size+i1, j1*size+i0, j1*size+i1
			a := bilerpF(alpha[k00], alpha[k01], alpha[k10], alpha[k11], wx, wy)
			if !(a > 0) {
				continue
			}
			if a > 1 {
				a = 1
			}
			o := 3 * (y*dst.W + x)
			for c, pl := range [3][]float32{r, g, b} {
				v := (bilerpF(pl[k00], pl[k01], pl[k10], pl[k11], wx, wy) + 1) * 127.5
				dst.Pix[o+c] = toByte(a*v + (1-a)*float32(dst.Pix[o+c]))
			}
		}
	}
	return nil
}

// clampF limits v to [0, hi]. (Plain comparisons: the builtin min and max
// on floats pay for NaN handling in this hot loop.)
func clampF(v, hi float64) float64 {
	if v < 0 {
		return 0
	}
	if v > hi {
		return hi
	}
	return v
}

// toByte rounds to the nearest byte, saturating; NaN becomes 0.
func toByte(v float32) byte {
	switch {
	case v >= 254.5:
		return 255
	case v >= 0:
		return byte(v + 0.5)
	}
	return 0
}

func bilerpF(a, b, c, d, wx, wy float32) float32 {
	top := a + (b-a)*wx
	bot := c + (d-c)*wx
	return top + (bot-top)*wy
}
