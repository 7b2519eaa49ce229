package quality

import (
	"image"
	"math"
	"strings"
	"testing"

	"github.com/latentsync/latentsync-service/internal/raster"
)

func noisy(w, h int, seed uint32) *raster.RGB {
	m := raster.New(w, h)
	for i := range m.Pix {
		seed = seed*1664525 + 1013904223
		m.Pix[i] = byte(seed >> 24)
	}
	return m
}

// SSIMMasked against SSIMRect, which the numpy reference checks: the kept
// score is the mean of the single windows the mask keeps.
func TestSSIMMasked(t *testing.T) {
	a := noisy(40, 30, 7)
	b := a.Clone()
	// b differs from a only in the block [16,26) x [10,20) (a pasted "mouth").
	blk := image.Rect(16, 10, 26, 20)
	seed := uint32(11)
	for y := blk.Min.Y; y < blk.Max.Y; y++ {
		for x := blk.Min.X; x < blk.Max.X; x++ {
			for c := range 3 {
				seed = seed*1664525 + 1013904223
				b.Pix[b.Offset(x, y)+c] = byte(seed >> 24)
			}
		}
	}
	whole := image.Rect(0, 0, a.W, a.H)
	inner := image.Rect(8, 6, 30, 24)
	disk := func(x, y int) bool { return (x-20)*(x-20)+(y-15)*(y-15) > 36 }
	cases := []struct {
		name string
		r    image.Rectangle
		keep func(x, y int) bool
	}{
		{"keep all", whole, func(int, int) bool { return true }},
		{"keep a sub-rectangle", whole, func(x, y int) bool { return image.Pt(x, y).In(inner) }},
		{"outside a disk", whole, disk},
		{"outside a disk within a rect", inner, disk},
		{"checkerboard", inner, func(x, y int) bool { return (x+y)%2 == 0 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			kept, all, err := SSIMMasked(a, b, tc.r, tc.keep)
			if err != nil {
				t.Fatal(err)
			}
			wantAll, err := SSIMRect(a, b, tc.r)
			if err != nil {
				t.Fatal(err)
			}
			sum, n := 0.0, 0
			c := tc.r.Intersect(image.Rect(half, half, a.W-half, a.H-half))
			for y := c.Min.Y; y < c.Max.Y; y++ {
				for x := c.Min.X; x < c.Max.X; x++ {
					if !tc.keep(x, y) {
						continue
					}
					v, err := SSIMRect(a, b, image.Rect(x, y, x+1, y+1))
					if err != nil {
						t.Fatal(err)
					}
					sum += v
					n++
				}
			}
			if math.Abs(all-wantAll) > 1e-12 {
				t.Errorf("all = %.12f, SSIMRect = %.12f", all, wantAll)
			}
			if math.Abs(kept-sum/float64(n)) > 1e-12 {
				t.Errorf("kept = %.12f, mean of the %d kept windows = %.12f", kept, n, sum/float64(n))
			}
		})
	}

	t.Run("windows clear of the changed block score 1", func(t *testing.T) {
		far := blk.Inset(-half) // centres whose window touches the block
		kept, all, err := SSIMMasked(a, b, whole, func(x, y int) bool { return !image.Pt(x, y).In(far) })
		if err != nil {
			t.Fatal(err)
		}
		if kept != 1 || all >= 1 {
			t.Errorf("kept %v (want exactly 1), all %v (want < 1)", kept, all)
		}
	})
	t.Run("nothing kept", func(t *testing.T) {
		_, _, err := SSIMMasked(a, b, whole, func(int, int) bool { return false })
		if err == nil || !strings.Contains(err.Error(), "keeps none") {
			t.Errorf("error %v, want one saying the mask keeps nothing", err)
		}
	})
	t.Run("size mismatch", func(t *testing.T) {
		_, _, err := SSIMMasked(a, raster.New(40, 31), whole, func(int, int) bool { return true })
		if err == nil || !strings.Contains(err.Error(), "sizes differ") {
			t.Errorf("error %v, want a size mismatch", err)
		}
	})
}
