package half

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

func TestFromFloat32(t *testing.T) {
	tests := []struct {
		in   float32
		want uint16
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00},
		{-2, 0xc000},
		{0.5, 0x3800},
		{65504, 0x7bff},                  // largest finite
		{65519, 0x7bff},                  // just below the rounding point
		{65520, 0x7c00},                  // tie rounds to even: overflow to Inf
		{1e10, 0x7c00},                   // overflow
		{float32(math.Inf(-1)), 0xfc00},  //
		{6.103515625e-05, 0x0400},        // smallest normal 2^-14
		{5.960464477539063e-08, 0x0001},  // smallest subnormal 2^-24
		{2.9802322387695312e-08, 0x0000}, // 2^-25: tie rounds to even zero
		{2.98023259e-08, 0x0001},         // just above 2^-25
		{8.940696716308594e-08, 0x0002},  // 1.5 * 2^-24: tie rounds to even 2
		{1 + 1.0/2048, 0x3c00},           // tie between 1 and 1+2^-10: even is 1
		{1 + 3.0/2048, 0x3c02},           // tie: even is 1+2^-9
		{1 + 1.0/2048 + 1.0/65536, 0x3c01},
		{float32(math.SmallestNonzeroFloat32), 0x0000},
		{0.1, 0x2e66},
	}
	for _, tc := range tests {
		if got := FromFloat32(tc.in); got != tc.want {
			t.Errorf("FromFloat32(%g) = %#04x, want %#04x", tc.in, got, tc.want)
		}
	}
	nan := FromFloat32(float32(math.NaN()))
	if nan&0x7c00 != 0x7c00 || nan&0x3ff == 0 {
		t.Errorf("FromFloat32(NaN) = %#04x, not a NaN", nan)
	}
}

func TestFloat16RoundTripsEveryHalf(t *testing.T) {
	for h := 0; h <= 0xffff; h++ {
		f := ToFloat32(uint16(h))
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			if !math.IsNaN(float64(f)) {
				t.Fatalf("%#04x: got %g, want NaN", h, f)
			}
			continue
		}
		if got := FromFloat32(f); got != uint16(h) {
			t.Fatalf("%#04x -> %g -> %#04x", h, f, got)
		}
	}
}

// TestFloat16MatchesNearest compares with a brute-force definition: the
// nearest half (Inf counting as 2^16), ties to the even bit pattern.
func TestFloat16MatchesNearest(t *testing.T) {
	vals := make([]float64, 0x7c01) // positive halves by bit pattern, 0x7c00 = 2^16
	for h := range 0x7c00 {
		vals[h] = float64(ToFloat32(uint16(h)))
	}
	vals[0x7c00] = 65536
	nearest := func(x float64) uint16 {
		if x >= 65536 {
			return 0x7c00
		}
		i := sort.SearchFloat64s(vals, x) // vals[i-1] < x <= vals[i]
		if vals[i] == x || i == 0 {
			return uint16(i)
		}
		lo, hi := x-vals[i-1], vals[i]-x
		if lo < hi || (lo == hi && (i-1)%2 == 0) {
			return uint16(i - 1)
		}
		return uint16(i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		// Random bit patterns cover every exponent; keep those near half range.
		f := math.Float32frombits(rng.Uint32() & 0x7fffffff)
		if f > 1e6 || math.IsNaN(float64(f)) {
			continue
		}
		want := nearest(float64(f))
		if got := FromFloat32(f); got != want {
			t.Fatalf("FromFloat32(%g) = %#04x, want %#04x", f, got, want)
		}
		if got := FromFloat32(-f); got != want|0x8000 {
			t.Fatalf("FromFloat32(%g) = %#04x, want %#04x", -f, got, want|0x8000)
		}
	}
}

func TestWidenKnown(t *testing.T) {
	cases := map[uint16]float32{0x3c00: 1, 0xc000: -2, 0x7bff: 65504, 0x0001: 5.960464477539063e-08, 0x03ff: 6.097555160522461e-05, 0x3555: 0.333251953125}
	for bits, want := range cases {
		if got := ToFloat32(bits); got != want {
			t.Errorf("ToFloat32(%#04x) = %g, want %g", bits, got, want)
		}
	}
}
