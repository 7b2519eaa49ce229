package quality

import (
	"encoding/json"
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latentsync/latentsync-service/internal/raster"
)

// ssim.json is written by testdata/reference/ssim_ref.py, an independent
// numpy implementation (full 2-D window sums, central moments).
type ssimRef struct {
	Images map[string]struct {
		W   int    `json:"w"`
		H   int    `json:"h"`
		Pix []byte `json:"pix"` // base64 rgb24
	} `json:"images"`
	Cases []struct {
		Name string  `json:"name"`
		A    string  `json:"a"`
		B    string  `json:"b"`
		Rect []int   `json:"rect"` // x0, y0, x1, y1 or null
		SSIM float64 `json:"ssim"`
	} `json:"cases"`
}

func TestSSIMMatchesNumpyReference(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "reference", "ssim.json"))
	if err != nil {
		t.Fatalf("read reference (regenerate with testdata/reference/ssim_ref.py): %v", err)
	}
	var ref ssimRef
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatalf("parse ssim.json: %v", err)
	}
	if len(ref.Cases) == 0 {
		t.Fatal("ssim.json has no cases")
	}
	img := func(name string) *raster.RGB {
		m, ok := ref.Images[name]
		if !ok {
			t.Fatalf("no image %q", name)
		}
		return &raster.RGB{W: m.W, H: m.H, Pix: m.Pix}
	}
	for _, tc := range ref.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			a, b := img(tc.A), img(tc.B)
			var got float64
			var err error
			if tc.Rect == nil {
				got, err = SSIM(a, b)
			} else {
				got, err = SSIMRect(a, b, image.Rect(tc.Rect[0], tc.Rect[1], tc.Rect[2], tc.Rect[3]))
			}
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-tc.SSIM) > 1e-9 {
				t.Errorf("SSIM = %.12f, want %.12f", got, tc.SSIM)
			}
		})
	}
}

func TestSSIMProperties(t *testing.T) {
	m := raster.New(32, 24)
	seed := uint32(3)
	for i := range m.Pix {
		seed = seed*1664525 + 1013904223
		m.Pix[i] = byte(seed >> 24)
	}
	inverted := m.Clone()
	for i := range inverted.Pix {
		inverted.Pix[i] = 255 - inverted.Pix[i]
	}
	for _, tc := range []struct {
		name   string
		a, b   *raster.RGB
		lo, hi float64
	}{
		{name: "identical", a: m, b: m.Clone(), lo: 1, hi: 1},
		{name: "flat black vs itself", a: raster.New(11, 11), b: raster.New(11, 11), lo: 1, hi: 1},
		// Inverting the luma flips the covariance: strongly negative.
		{name: "inverted", a: m, b: inverted, lo: -1, hi: -0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SSIM(tc.a, tc.b)
			if err != nil {
				t.Fatal(err)
			}
			if got < tc.lo-1e-12 || got > tc.hi+1e-12 {
				t.Errorf("SSIM = %g, want in [%g, %g]", got, tc.lo, tc.hi)
			}
			// Symmetric in its arguments.
			back, err := SSIM(tc.b, tc.a)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(back-got) > 1e-12 {
				t.Errorf("SSIM(b, a) = %g, SSIM(a, b) = %g", back, got)
			}
		})
	}
	t.Run("one-window rect equals that window", func(t *testing.T) {
		// A rect holding only centre (15, 12): its SSIM is that window's,
		// and the whole-image mean averages such windows.
		one, err := SSIMRect(m, inverted, image.Rect(15, 12, 16, 13))
		if err != nil {
			t.Fatal(err)
		}
		sum, n := 0.0, 0
		for y := 5; y < 24-5; y++ {
			for x := 5; x < 32-5; x++ {
				v, err := SSIMRect(m, inverted, image.Rect(x, y, x+1, y+1))
				if err != nil {
					t.Fatal(err)
				}
				if x == 15 && y == 12 && v != one {
					t.Errorf("window (15,12) = %g twice, %g", v, one)
				}
				sum += v
				n++
			}
		}
		all, err := SSIM(m, inverted)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(all-sum/float64(n)) > 1e-12 {
			t.Errorf("SSIM = %g, mean of single windows = %g", all, sum/float64(n))
		}
	})
}

func TestSSIMErrors(t *testing.T) {
	a := raster.New(20, 20)
	for _, tc := range []struct {
		name     string
		a, b     *raster.RGB
		rect     image.Rectangle
		contains string
	}{
		{"size mismatch", a, raster.New(20, 21), image.Rect(0, 0, 20, 20), "sizes differ"},
		{"nil", a, nil, image.Rect(0, 0, 20, 20), "nil image"},
		{"bad buffer", a, &raster.RGB{W: 20, H: 20, Pix: make([]byte, 5)}, image.Rect(0, 0, 20, 20), "second image"},
		{"too small", raster.New(10, 30), raster.New(10, 30), image.Rect(0, 0, 10, 30), "no 11x11 window"},
		{"rect on the border only", a, a, image.Rect(0, 0, 5, 20), "no 11x11 window"},
		{"empty rect", a, a, image.Rectangle{}, "no 11x11 window"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := SSIMRect(tc.a, tc.b, tc.rect)
			if err == nil || !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %v, want one mentioning %q", err, tc.contains)
			}
		})
	}
}

func BenchmarkSSIM256(b *testing.B) {
	x, y := raster.New(256, 256), raster.New(256, 256)
	for i := range x.Pix {
		x.Pix[i], y.Pix[i] = byte(i*7), byte(i*7+i%13)
	}
	for b.Loop() {
		if _, err := SSIM(x, y); err != nil {
			b.Fatal(err)
		}
	}
}
