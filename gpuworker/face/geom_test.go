package face

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func nearAffine(a, b Affine, tol float64) bool {
	for i := range a {
		if !near(a[i], b[i], tol) {
			return false
		}
	}
	return true
}

func readJSON(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func TestAffineApplyComposeInvert(t *testing.T) {
	translate := Affine{1, 0, 10, 0, 1, -5}
	scale := Affine{2, 0, 0, 0, 3, 0}
	tests := []struct {
		name string
		m    Affine
		in   Point
		want Point
	}{
		{"identity", Identity(), Point{3, 4}, Point{3, 4}},
		{"translate", translate, Point{3, 4}, Point{13, -1}},
		// Compose(n) applies n first: scale (3,4) -> (6,12), then translate.
		{"translate after scale", translate.Compose(scale), Point{3, 4}, Point{16, 7}},
		{"scale after translate", scale.Compose(translate), Point{3, 4}, Point{26, -3}},
		{"rotate 90 (y down: x axis to y axis)", Similarity{Scale: 1, Angle: math.Pi / 2}.Affine(), Point{1, 0}, Point{0, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.m.Apply(tc.in)
			if !near(got.X, tc.want.X, 1e-12) || !near(got.Y, tc.want.Y, 1e-12) {
				t.Fatalf("Apply(%v) = %v, want %v", tc.in, got, tc.want)
			}
			inv, err := tc.m.Invert()
			if err != nil {
				t.Fatal(err)
			}
			back := inv.Apply(got)
			if !near(back.X, tc.in.X, 1e-12) || !near(back.Y, tc.in.Y, 1e-12) {
				t.Fatalf("inverse maps %v to %v, want %v", got, back, tc.in)
			}
			if !nearAffine(inv.Compose(tc.m), Identity(), 1e-12) {
				t.Fatalf("inv.Compose(m) = %v, want identity", inv.Compose(tc.m))
			}
		})
	}
}

func TestAffineInvertSingular(t *testing.T) {
	for _, m := range []Affine{{}, {1, 2, 3, 2, 4, 5}, {1e-9, 0, 0, 0, 1e9, 0}, {math.NaN(), 0, 0, 0, 1, 0}} {
		if _, err := m.Invert(); !errors.Is(err, ErrSingular) {
			t.Errorf("Invert(%v) error = %v, want ErrSingular", m, err)
		}
	}
}

func TestFitSimilarityExact(t *testing.T) {
	src := []Point{{120, 140}, {180, 138}, {150, 175}, {151, 200}}
	tests := []Similarity{
		{Scale: 1, Angle: 0, TX: 0, TY: 0},
		{Scale: 2.5, Angle: 0.2, TX: -30, TY: 12},
		{Scale: 0.37, Angle: -1.1, TX: 400, TY: -250},
		{Scale: 1.3, Angle: 3.0, TX: 5, TY: 5}, // nearly upside down
	}
	for _, want := range tests {
		m := want.Affine()
		dst := make([]Point, len(src))
		for i, p := range src {
			dst[i] = m.Apply(p)
		}
		got, err := FitSimilarity(src, dst)
		if err != nil {
			t.Fatal(err)
		}
		if !nearAffine(got, m, 1e-9) {
			t.Errorf("FitSimilarity for %+v = %v, want %v", want, got, m)
		}
		s := SimilarityOf(got)
		if !near(s.Scale, want.Scale, 1e-12) || !near(s.Angle, want.Angle, 1e-12) || !near(s.TX, want.TX, 1e-9) || !near(s.TY, want.TY, 1e-9) {
			t.Errorf("SimilarityOf = %+v, want %+v", s, want)
		}
	}
}

// Noisy correspondences against numpy's SVD Umeyama (testdata/reference.py).
func TestFitSimilarityMatchesUmeyamaReference(t *testing.T) {
	var ref struct {
		Src, Dst [][2]float64
		Want     []float64
	}
	readJSON(t, "umeyama.json", &ref)
	var src, dst []Point
	for i := range ref.Src {
		src = append(src, Point{ref.Src[i][0], ref.Src[i][1]})
		dst = append(dst, Point{ref.Dst[i][0], ref.Dst[i][1]})
	}
	got, err := FitSimilarity(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if want := Affine(ref.Want); !nearAffine(got, want, 1e-9) {
		t.Fatalf("FitSimilarity = %v, want %v", got, want)
	}
}

func TestFitSimilarityNeverReflects(t *testing.T) {
	src := []Point{{0, 0}, {10, 0}, {0, 5}}
	dst := []Point{{0, 0}, {-10, 0}, {0, 5}} // a mirror image
	m, err := FitSimilarity(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if det := m[0]*m[4] - m[1]*m[3]; det <= 0 {
		t.Fatalf("determinant %v: fit reflects", det)
	}
}

func TestFitSimilarityErrors(t *testing.T) {
	p := []Point{{1, 1}, {2, 2}}
	tests := map[string][2][]Point{
		"length mismatch":    {p, p[:1]},
		"one point":          {p[:1], p[:1]},
		"coincident sources": {{{3, 3}, {3, 3}}, p},
		"coincident targets": {p, {{3, 3}, {3, 3}}},
		"not finite":         {{{math.NaN(), 0}, {1, 1}}, p},
	}
	for name, tc := range tests {
		if _, err := FitSimilarity(tc[0], tc[1]); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestTemplateTransform(t *testing.T) {
	tmpl := DefaultTemplate()
	// A face whose eyes and nose already sit on the template scaled by 2 and
	// shifted: the fit must undo exactly that.
	const size = 256
	var kp [NumKeypoints]Point
	kp[RightEye] = Point{0.33*size*2 + 40, 0.34*size*2 + 7}
	kp[LeftEye] = Point{0.67*size*2 + 40, 0.34*size*2 + 7}
	kp[NoseTip] = Point{0.5*size*2 + 40, 0.52*size*2 + 7}
	kp[Mouth] = Point{999, 999} // ignored: the mouth moves when speaking
	m, err := tmpl.Transform(kp, size)
	if err != nil {
		t.Fatal(err)
	}
	want := Affine{0.5, 0, -20, 0, 0.5, -3.5}
	if !nearAffine(m, want, 1e-9) {
		t.Fatalf("Transform = %v, want %v", m, want)
	}
	if _, err := tmpl.Transform(kp, 0); err == nil {
		t.Error("size 0: no error")
	}
	if err := (Template{}).Validate(); err == nil {
		t.Error("zero template validates")
	}
}
