package face

import (
	"image"
	"math"
	"testing"
)

func TestDefaultMouthRect(t *testing.T) {
	tests := []struct {
		size int
		want image.Rectangle
	}{
		{256, image.Rect(9, 95, 248, 243)}, // rows 95-242, columns 9-247 inclusive
		{512, image.Rect(18, 190, 496, 486)},
	}
	for _, tc := range tests {
		if got := DefaultMouthRect(tc.size); got != tc.want {
			t.Errorf("DefaultMouthRect(%d) = %v, want %v", tc.size, got, tc.want)
		}
	}
}

func TestMouthMask(t *testing.T) {
	m, err := MouthMask(6, image.Rect(1, 2, 4, 6))
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{
		1, 1, 1, 1, 1, 1,
		1, 1, 1, 1, 1, 1,
		1, 0, 0, 0, 1, 1,
		1, 0, 0, 0, 1, 1,
		1, 0, 0, 0, 1, 1,
		1, 0, 0, 0, 1, 1,
	}
	for i := range want {
		if m[i] != want[i] {
			t.Fatalf("mask %v, want %v", m, want)
		}
	}
	if _, err := MouthMask(6, image.Rect(7, 7, 9, 9)); err == nil {
		t.Error("rectangle outside the crop: no error")
	}
	if _, err := MouthMask(0, image.Rect(0, 0, 1, 1)); err == nil {
		t.Error("size 0: no error")
	}
}

// Against numpy's direct 2D erosion and convolution (testdata/reference.py).
func TestBlendAlphaMatchesReference(t *testing.T) {
	var ref struct {
		Size, Erode int
		Rect        [4]int
		Sigma       float64
		Want        []float64
	}
	readJSON(t, "alpha.json", &ref)
	mask, err := MouthMask(ref.Size, image.Rect(ref.Rect[0], ref.Rect[1], ref.Rect[2], ref.Rect[3]))
	if err != nil {
		t.Fatal(err)
	}
	alpha, err := BlendAlpha(mask, ref.Erode, ref.Sigma)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range alpha {
		if math.Abs(float64(v)-ref.Want[i]) > 1e-6 {
			t.Fatalf("alpha (%d,%d) = %v, want %v", i%ref.Size, i/ref.Size, v, ref.Want[i])
		}
	}
}

func TestBlendAlphaShape(t *testing.T) {
	const size = 256
	rect := DefaultMouthRect(size)
	mask, err := MouthMask(size, rect)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		erode int
		sigma float64
	}{
		{0, 0}, // hard mask: alpha = 1 - mask
		{6, 2}, // radius 6 = erosion: nothing outside the rectangle
		{10, 3},
		{4, 3}, // radius 9 > erosion: the feather spills 5 px past the rectangle
	}
	for _, tc := range tests {
		alpha, err := BlendAlpha(mask, tc.erode, tc.sigma)
		if err != nil {
			t.Fatal(err)
		}
		r := int(math.Ceil(3 * tc.sigma))
		inner := image.Rect(rect.Min.X+tc.erode, rect.Min.Y+tc.erode, rect.Max.X-tc.erode, rect.Max.Y-tc.erode)
		for y := 0; y < size; y++ {
			for x := 0; x < size; x++ {
				a := alpha[y*size+x]
				p := image.Pt(x, y)
				switch {
				case p.In(inner.Inset(r)) && a != 1:
					t.Fatalf("erode %d sigma %v: alpha %v at %v deep inside, want 1", tc.erode, tc.sigma, a, p)
				case !p.In(inner.Inset(-r)) && a != 0:
					t.Fatalf("erode %d sigma %v: alpha %v at %v beyond the feather, want exactly 0", tc.erode, tc.sigma, a, p)
				case a < 0 || a > 1:
					t.Fatalf("alpha %v out of range", a)
				}
			}
		}
		// Along the middle row alpha rises monotonically into the region.
		mid := (rect.Min.Y + rect.Max.Y) / 2
		for x := 1; x < size/2; x++ {
			if alpha[mid*size+x] < alpha[mid*size+x-1] {
				t.Fatalf("erode %d sigma %v: alpha falls at x %d", tc.erode, tc.sigma, x)
			}
		}
		// With the erosion covering the blur radius nothing outside the
		// rectangle is touched.
		if tc.erode >= r {
			for y := 0; y < size; y++ {
				for x := 0; x < size; x++ {
					if !image.Pt(x, y).In(rect) && alpha[y*size+x] != 0 {
						t.Fatalf("erode %d sigma %v: alpha %v outside the rectangle at (%d,%d)", tc.erode, tc.sigma, alpha[y*size+x], x, y)
					}
				}
			}
		}
	}
	if _, err := BlendAlpha(make([]float32, 10), 1, 1); err == nil {
		t.Error("non-square mask: no error")
	}
	if _, err := BlendAlpha(mask, -1, 1); err == nil {
		t.Error("negative erosion: no error")
	}
}

func TestDefaultAlpha(t *testing.T) {
	for _, size := range []int{256, 512} {
		alpha, err := DefaultAlpha(size)
		if err != nil {
			t.Fatal(err)
		}
		rect := DefaultMouthRect(size)
		c := rect.Min.Add(rect.Max).Div(2)
		if a := alpha[c.Y*size+c.X]; a != 1 {
			t.Errorf("%d: alpha %v at the region centre, want 1", size, a)
		}
		for y := 0; y < size; y++ {
			for x := 0; x < size; x++ {
				if !image.Pt(x, y).In(rect) && alpha[y*size+x] != 0 {
					t.Fatalf("%d: alpha %v outside the region at (%d,%d)", size, alpha[y*size+x], x, y)
				}
			}
		}
	}
	if _, err := DefaultAlpha(0); err == nil {
		t.Error("size 0: no error")
	}
}
