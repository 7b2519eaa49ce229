package audio

import (
	"math"
	"math/cmplx"
	"testing"
)

// naiveDFT is the O(n²) definition the FFT is checked against.
func naiveDFT(in []complex128) []complex128 {
	n := len(in)
	out := make([]complex128, n)
	for k := range out {
		var acc complex128
		for j, x := range in {
			acc += x * cmplx.Rect(1, -2*math.Pi*float64(j*k%n)/float64(n))
		}
		out[k] = acc
	}
	return out
}

func TestFFTMatchesNaiveDFT(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 20, 25, 49, 50, 77, 100, 200, 400} {
		p, err := newFFTPlan(n)
		if err != nil {
			t.Fatal(err)
		}
		in := make([]complex128, n)
		seed := uint32(n)
		for i := range in {
			in[i] = complex(lcgUnit(&seed), lcgUnit(&seed))
		}
		want := naiveDFT(in)
		got := make([]complex128, n)
		p.transform(got, in)
		maxErr := 0.0
		for k := range got {
			maxErr = math.Max(maxErr, cmplx.Abs(got[k]-want[k]))
		}
		// Both are O(n) sums of unit-sized terms; 1e-12 leaves room for the
		// naive DFT's own rounding.
		if maxErr > 1e-12*float64(n) {
			t.Errorf("n=%d factors=%v: max |FFT-DFT| = %g", n, p.factors, maxErr)
		}
	}
}

func TestFFTPlanFactors(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []int
	}{
		{400, []int{4, 4, 5, 5}},
		{2, []int{2}},
		{14, []int{2, 7}},
		{1, nil},
	} {
		p, err := newFFTPlan(tc.n)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.factors) != len(tc.want) {
			t.Errorf("n=%d: factors %v, want %v", tc.n, p.factors, tc.want)
			continue
		}
		for i := range tc.want {
			if p.factors[i] != tc.want[i] {
				t.Errorf("n=%d: factors %v, want %v", tc.n, p.factors, tc.want)
				break
			}
		}
	}
	if _, err := newFFTPlan(0); err == nil {
		t.Error("newFFTPlan(0): no error")
	}
}

// lcgUnit is a tiny deterministic generator (Numerical Recipes constants)
// giving values in [-1, 1).
func lcgUnit(s *uint32) float64 {
	*s = *s*1664525 + 1013904223
	return float64(*s)/(1<<31) - 1
}
