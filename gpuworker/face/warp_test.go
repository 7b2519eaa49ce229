package face

import (
	"bytes"
	"math"
	"sort"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/internal/raster"
)

// Against numpy's vectorised bilinear warp (testdata/reference.py): a rotated,
// scaled crop that reaches past every edge of a 9x7 image.
func TestWarpToCropMatchesReference(t *testing.T) {
	var ref struct {
		W, H, Size int
		Pix        []byte
		M          []float64
		Want       []float64
	}
	readJSON(t, "warp.json", &ref)
	src := &raster.RGB{W: ref.W, H: ref.H, Pix: ref.Pix}
	dst := make([]float32, 3*ref.Size*ref.Size)
	if err := WarpToCrop(src, Affine(ref.M), ref.Size, dst); err != nil {
		t.Fatal(err)
	}
	for i, v := range dst {
		if math.Abs(float64(v)-ref.Want[i]) > 1e-5 {
			t.Fatalf("value %d (channel %d, y %d, x %d) = %v, want %v", i, i/(ref.Size*ref.Size),
				i/ref.Size%ref.Size, i%ref.Size, v, ref.Want[i])
		}
	}
}

func TestWarpToCropExactCases(t *testing.T) {
	// A 3x2 image; red encodes the pixel index, green and blue constant.
	src := raster.New(3, 2)
	for i := 0; i < 6; i++ {
		src.Pix[3*i], src.Pix[3*i+1], src.Pix[3*i+2] = byte(40*i), 255, 0
	}
	red := func(v float32) float64 { return (float64(v) + 1) * 127.5 }
	tests := []struct {
		name string
		m    Affine
		size int
		want []float64 // red plane
	}{
		{"identity copies", Identity(), 2, []float64{0, 40, 120, 160}},
		{"shift by one pixel", Affine{1, 0, -1, 0, 1, 0}, 2, []float64{40, 80, 160, 200}},
		// Crop pixels beyond the frame repeat its edge.
		{"beyond the edge", Affine{1, 0, 1, 0, 1, 1}, 3, []float64{0, 0, 40, 0, 0, 40, 120, 120, 160}},
		// Half scale up: crop pixel centres fall between source centres.
		{"2x magnification", Affine{2, 0, 0, 0, 2, 0}, 2, []float64{0, 10, 30, 40}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]float32, 3*tc.size*tc.size)
			if err := WarpToCrop(src, tc.m, tc.size, dst); err != nil {
				t.Fatal(err)
			}
			plane := tc.size * tc.size
			for i, w := range tc.want {
				if got := red(dst[i]); math.Abs(got-w) > 1e-4 {
					t.Errorf("red %d = %v, want %v", i, got, w)
				}
				if g, b := dst[plane+i], dst[2*plane+i]; g != 1 || b != -1 {
					t.Errorf("green, blue %d = %v, %v; want 1, -1", i, g, b)
				}
			}
		})
	}
	if err := WarpToCrop(src, Identity(), 2, make([]float32, 11)); err == nil {
		t.Error("short destination: no error")
	}
	if err := WarpToCrop(src, Affine{}, 2, make([]float32, 12)); err == nil {
		t.Error("singular transform: no error")
	}
}

// Against numpy (testdata/reference.py): random crop and alpha (with a zero
// row) pasted by a rotated, enlarging transform into a 12x10 frame.
func TestBlendBackMatchesReference(t *testing.T) {
	var ref struct {
		W, H        int
		Pix, Want   []byte
		Crop, Alpha []float32
		M           []float64
	}
	readJSON(t, "blend.json", &ref)
	dst := &raster.RGB{W: ref.W, H: ref.H, Pix: append([]byte(nil), ref.Pix...)}
	if err := BlendBack(dst, ref.Crop, ref.Alpha, Affine(ref.M)); err != nil {
		t.Fatal(err)
	}
	changed := 0
	for i := range dst.Pix {
		// float32 here, float64 in numpy: a rounding tie may land 1 apart.
		if d := int(dst.Pix[i]) - int(ref.Want[i]); d < -1 || d > 1 {
			t.Fatalf("byte %d (x %d, y %d) = %d, want %d", i, i/3%ref.W, i/3/ref.W, dst.Pix[i], ref.Want[i])
		}
		if ref.Want[i] == ref.Pix[i] && dst.Pix[i] != ref.Pix[i] {
			t.Errorf("byte %d changed from %d to %d where the reference keeps it", i, ref.Pix[i], dst.Pix[i])
		}
		if dst.Pix[i] != ref.Pix[i] {
			changed++
		}
	}
	if changed < 30 {
		t.Errorf("only %d bytes blended: the test does not exercise the blend", changed)
	}
}

// portraitCrop is a 256 crop of the astronaut's face, rotated 10 degrees
// and magnified 1.3x: the kind of transform Track produces.
func portraitCrop(img *raster.RGB) Affine {
	c := Point{225, 128}
	m := Similarity{Scale: 1.3, Angle: 10 * math.Pi / 180}.Affine()
	m[2] = 128 - (m[0]*c.X + m[1]*c.Y)
	m[5] = 128 - (m[3]*c.X + m[4]*c.Y)
	return m
}

func TestWarpBlendRoundTrip(t *testing.T) {
	smooth := raster.New(512, 512)
	for y := 0; y < 512; y++ {
		for x := 0; x < 512; x++ {
			o := smooth.Offset(x, y)
			smooth.Pix[o] = byte(128 + 100*math.Sin(float64(x)/10))
			smooth.Pix[o+1] = byte(128 + 100*math.Cos(float64(y)/13))
			smooth.Pix[o+2] = byte(128 + 60*math.Sin(float64(x+y)/17))
		}
	}
	// Two bilinear resamplings blur a little: on a smooth image that is
	// below rounding; on the photo the mean error stays within a couple of
	// levels and only isolated specular highlights (the eyes' catchlights)
	// lose tens of levels.
	tests := []struct {
		name            string
		img             *raster.RGB
		maxMean, maxP99 float64
	}{
		{"smooth", smooth, 0.05, 1},
		{"portrait", loadPortrait(t), 2.5, 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := tc.img
			m := portraitCrop(img)
			const size = 256
			crop := make([]float32, 3*size*size)
			if err := WarpToCrop(img, m, size, crop); err != nil {
				t.Fatal(err)
			}
			alpha := make([]float32, size*size)
			for i := range alpha {
				alpha[i] = 1
			}
			out := img.Clone()
			if err := BlendBack(out, crop, alpha, m); err != nil {
				t.Fatal(err)
			}
			var errs []float64
			var bias float64
			for y := 0; y < img.H; y++ {
				for x := 0; x < img.W; x++ {
					q := m.Apply(Point{float64(x) + 0.5, float64(y) + 0.5})
					o := img.Offset(x, y)
					for c := 0; c < 3; c++ {
						d := float64(out.Pix[o+c]) - float64(img.Pix[o+c])
						switch {
						case q.X >= 2 && q.Y >= 2 && q.X <= size-2 && q.Y <= size-2:
							errs = append(errs, math.Abs(d))
							bias += d
						case q.X < -1 || q.Y < -1 || q.X > size+1 || q.Y > size+1:
							// Beyond the crop square and a pixel of bilinear
							// reach the frame must be untouched.
							if d != 0 {
								t.Fatalf("pixel (%d,%d) outside the crop changed", x, y)
							}
						}
					}
				}
			}
			var sum float64
			for _, e := range errs {
				sum += e
			}
			mean, bias := sum/float64(len(errs)), bias/float64(len(errs))
			sort.Float64s(errs)
			p99 := errs[len(errs)*99/100]
			t.Logf("%d interior values: mean |error| %.3f, bias %.3f, p99 %.0f, max %.0f", len(errs), mean, bias, p99, errs[len(errs)-1])
			if mean > tc.maxMean || p99 > tc.maxP99 || math.Abs(bias) > 0.2 {
				t.Errorf("mean %.3f (max %v), p99 %.0f (max %v), bias %.3f (max 0.2)", mean, tc.maxMean, p99, tc.maxP99, bias)
			}
		})
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func TestBlendBackZeroAlphaIsBitIdentical(t *testing.T) {
	img := loadPortrait(t)
	m := portraitCrop(img)
	const size = 256
	crop := make([]float32, 3*size*size) // mid grey: any write would show
	mask, err := MouthMask(size, DefaultMouthRect(size))
	if err != nil {
		t.Fatal(err)
	}
	alpha, err := BlendAlpha(mask, 8, 2)
	if err != nil {
		t.Fatal(err)
	}
	out := img.Clone()
	if err := BlendBack(out, crop, alpha, m); err != nil {
		t.Fatal(err)
	}
	// Every frame pixel whose four alpha neighbours are zero must be
	// unchanged; pixels deep in the mouth region must have changed.
	changed, deep := 0, 0
	for y := 0; y < img.H; y++ {
		for x := 0; x < img.W; x++ {
			q := m.Apply(Point{float64(x) + 0.5, float64(y) + 0.5})
			o := img.Offset(x, y)
			same := bytes.Equal(out.Pix[o:o+3], img.Pix[o:o+3])
			if !same {
				changed++
			}
			i, j := int(math.Floor(q.X-0.5)), int(math.Floor(q.Y-0.5))
			if maxAlpha(alpha, size, i, j) == 0 && !same {
				t.Fatalf("pixel (%d,%d) with zero alpha changed", x, y)
			}
			if q.X > 40 && q.X < 216 && q.Y > 130 && q.Y < 220 {
				deep++
				if same && !bytes.Equal(img.Pix[o:o+3], []byte{128, 128, 128}) {
					t.Fatalf("pixel (%d,%d) deep in the mouth region was not blended", x, y)
				}
			}
		}
	}
	if changed == 0 || deep == 0 {
		t.Fatalf("changed %d, deep %d: nothing blended", changed, deep)
	}
}

// maxAlpha is the largest alpha among the 2x2 neighbours of index (i, j),
// treating positions outside the crop as zero.
func maxAlpha(alpha []float32, size, i, j int) float32 {
	var m float32
	for _, d := range [][2]int{{0, 0}, {1, 0}, {0, 1}, {1, 1}} {
		x, y := i+d[0], j+d[1]
		if x >= 0 && y >= 0 && x < size && y < size {
			m = max(m, alpha[y*size+x])
		}
	}
	return m
}

func TestBlendBackErrors(t *testing.T) {
	dst := raster.New(4, 4)
	tests := map[string]struct {
		crop, alpha []float32
		m           Affine
	}{
		"alpha not square": {make([]float32, 3*6), make([]float32, 6), Identity()},
		"crop size":        {make([]float32, 3*4-1), make([]float32, 4), Identity()},
		"singular":         {make([]float32, 3*4), make([]float32, 4), Affine{}},
	}
	for name, tc := range tests {
		if err := BlendBack(dst, tc.crop, tc.alpha, tc.m); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// Per-frame cost of the two warps for a 256 crop of a 512x512 frame.
func TestWarpTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("timing")
	}
	img := loadPortrait(t)
	m := portraitCrop(img)
	const size = 256
	crop := make([]float32, 3*size*size)
	mask, _ := MouthMask(size, DefaultMouthRect(size))
	alpha, _ := BlendAlpha(mask, 8, 3)
	out := img.Clone()
	const reps = 50
	start := time.Now()
	for range reps {
		if err := WarpToCrop(img, m, size, crop); err != nil {
			t.Fatal(err)
		}
	}
	warp := time.Since(start) / reps
	start = time.Now()
	for range reps {
		if err := BlendBack(out, crop, alpha, m); err != nil {
			t.Fatal(err)
		}
	}
	blend := time.Since(start) / reps
	allocs := testing.AllocsPerRun(10, func() {
		_ = WarpToCrop(img, m, size, crop)
		_ = BlendBack(out, crop, alpha, m)
	})
	t.Logf("256 crop of 512x512: WarpToCrop %v, BlendBack %v per frame, %.0f allocations", warp, blend, allocs)
	if allocs > 0 {
		t.Errorf("%v allocations per frame, want 0", allocs)
	}
}

func BenchmarkWarpToCrop256(b *testing.B) {
	img := loadPortrait(b)
	m := portraitCrop(img)
	crop := make([]float32, 3*256*256)
	for b.Loop() {
		_ = WarpToCrop(img, m, 256, crop)
	}
}

func BenchmarkBlendBack256(b *testing.B) {
	img := loadPortrait(b)
	m := portraitCrop(img)
	crop := make([]float32, 3*256*256)
	mask, _ := MouthMask(256, DefaultMouthRect(256))
	alpha, _ := BlendAlpha(mask, 8, 3)
	for b.Loop() {
		_ = BlendBack(img, crop, alpha, m)
	}
}

// A crop placed far outside the frame (a wild transform) must neither panic
// nor touch the frame, and warping from there gives the nearest corner.
func TestWarpsFarOutside(t *testing.T) {
	img := raster.New(8, 8)
	for i := range img.Pix {
		img.Pix[i] = byte(i)
	}
	far := Affine{1, 0, 1e12, 0, 1, 1e12} // frame -> crop: the frame lies at +1e12
	crop := make([]float32, 3*4*4)
	if err := WarpToCrop(img, far, 4, crop); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 16; i++ {
		if want := float32(img.Pix[0])/127.5 - 1; crop[i] != want {
			t.Fatalf("red %d = %v, want the top-left pixel %v", i, crop[i], want)
		}
	}
	alpha := make([]float32, 16)
	for i := range alpha {
		alpha[i] = 1
	}
	out := img.Clone()
	for _, m := range []Affine{far, {1, 0, -1e12, 0, 1, -1e12}} {
		if err := BlendBack(out, crop, alpha, m); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(out.Pix, img.Pix) {
		t.Error("a crop far outside the frame changed it")
	}
}
