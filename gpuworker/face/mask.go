package face

import (
	"fmt"
	"image"
	"math"
)

// DefaultMouthRect is LatentSync's fixed lower-face region (rows 95-242,
// columns 9-247 of a 256 crop, inclusive) scaled to a crop of side size.
func DefaultMouthRect(size int) image.Rectangle {
	sc := func(v int) int { return int(math.Round(float64(v) * float64(size) / 256)) }
	return image.Rect(sc(9), sc(95), sc(248), sc(243))
}

// DefaultAlpha is the blend weight for LatentSync's fixed mouth region in a
// crop of side size: erosion size/32 (8 px at 256) and feather sigma size/128
// (2 px, so a 6 px blur radius that stays inside the eroded margin), so the
// generated pixels fade out before the region's edge.
func DefaultAlpha(size int) ([]float32, error) {
	mask, err := MouthMask(size, DefaultMouthRect(size))
	if err != nil {
		return nil, err
	}
	return BlendAlpha(mask, size/32, float64(size)/128)
}

// MouthMask returns a size x size mask that is 1 where the crop keeps the
// original pixels and 0 inside rect (crop pixels, half-open), the region the
// model regenerates.
func MouthMask(size int, rect image.Rectangle) ([]float32, error) {
	if size <= 0 {
		return nil, fmt.Errorf("mouth mask: crop size %d", size)
	}
	r := rect.Canon().Intersect(image.Rect(0, 0, size, size))
	if r.Empty() {
		return nil, fmt.Errorf("mouth mask: rectangle %v lies outside the %dx%d crop", rect, size, size)
	}
	m := make([]float32, size*size)
	for i := range m {
		m[i] = 1
	}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		clear(m[y*size+r.Min.X : y*size+r.Max.X])
	}
	return m, nil
}

// BlendAlpha turns a mask (1 keep, 0 regenerate; size*size) into the weight
// of the generated crop for BlendBack: the regenerate region is eroded by
// erodePx (a square structuring element) and its edge feathered with a
// separable Gaussian of featherSigma, truncated at 3 sigma. Alpha is 1 deeper
// than the blur radius inside the eroded region and exactly 0 further than the
// radius outside it; with erodePx at least the radius, nothing outside the
// mask's region is touched, so the model's seam never shows.
func BlendAlpha(mask []float32, erodePx int, featherSigma float64) ([]float32, error) {
	size := int(math.Round(math.Sqrt(float64(len(mask)))))
	if size <= 0 || size*size != len(mask) {
		return nil, fmt.Errorf("blend alpha: %d mask values are not a square", len(mask))
	}
	if erodePx < 0 || featherSigma < 0 || math.IsNaN(featherSigma) || math.IsInf(featherSigma, 0) {
		return nil, fmt.Errorf("blend alpha: erode %d px, feather sigma %v", erodePx, featherSigma)
	}
	region := make([]float64, len(mask))
	for i, v := range mask {
		if v < 0.5 {
			region[i] = 1
		}
	}
	if erodePx > 0 {
		separable(region, size, func(src, dst []float64) { erodeRows(src, dst, size, erodePx) })
	}
	if r := int(math.Ceil(3 * featherSigma)); r > 0 {
		kernel := make([]float64, 2*r+1)
		var sum float64
		for i := range kernel {
			d := float64(i - r)
			kernel[i] = math.Exp(-d * d / (2 * featherSigma * featherSigma))
			sum += kernel[i]
		}
		for i := range kernel {
			kernel[i] /= sum
		}
		separable(region, size, func(src, dst []float64) { blurRows(src, dst, size, kernel) })
	}
	alpha := make([]float32, len(region))
	for i, v := range region {
		alpha[i] = float32(math.Max(0, math.Min(1, v)))
	}
	return alpha, nil
}

// erodeRows writes to dst the minimum of src over [x-r, x+r] along each row;
// beyond the crop counts as outside the region (0).
func erodeRows(src, dst []float64, size, r int) {
	for y := 0; y < size; y++ {
		row, out := src[y*size:(y+1)*size], dst[y*size:(y+1)*size]
		for x := range out {
			v := 1.0
			if x-r < 0 || x+r >= size {
				v = 0
			}
			for k := max(0, x-r); k <= min(size-1, x+r) && v > 0; k++ {
				v = math.Min(v, row[k])
			}
			out[x] = v
		}
	}
}

// blurRows convolves each row with kernel (odd length), zero beyond the edge.
func blurRows(src, dst []float64, size int, kernel []float64) {
	r := len(kernel) / 2
	for y := 0; y < size; y++ {
		row, out := src[y*size:(y+1)*size], dst[y*size:(y+1)*size]
		for x := range out {
			var v float64
			for k := max(0, x-r); k <= min(size-1, x+r); k++ {
				v += kernel[k-x+r] * row[k]
			}
			out[x] = v
		}
	}
}

// separable applies a row filter along rows and then along columns of the
// square image data, in place.
func separable(data []float64, size int, rows func(src, dst []float64)) {
	tmp := make([]float64, len(data))
	rows(data, tmp)
	transposeInto(tmp, data, size)
	rows(data, tmp)
	transposeInto(tmp, data, size)
}

// transposeInto writes the transpose of square src into dst and returns dst.
func transposeInto(src, dst []float64, size int) []float64 {
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			dst[x*size+y] = src[y*size+x]
		}
	}
	return dst
}
