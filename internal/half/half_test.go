package half

import (
	"math"
	"testing"
)

func TestKnownEncodings(t *testing.T) {
	// Bit patterns from the IEEE 754 binary16 definition.
	cases := []struct {
		f    float32
		bits uint16
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00},
		{-2, 0xc000},
		{0.5, 0x3800},
		{65504, 0x7bff},                 // largest finite
		{65520, 0x7c00},                 // rounds to +Inf
		{float32(math.Inf(1)), 0x7c00},  // +Inf
		{6.103515625e-05, 0x0400},       // smallest normal 2^-14
		{5.960464477539063e-08, 0x0001}, // smallest subnormal 2^-24
		{1.0009765625, 0x3c01},          // 1 + 2^-10
		{1.00048828125, 0x3c00},         // halfway 1+2^-11: ties to even (down)
		{1.00146484375, 0x3c02},         // halfway 1+3*2^-11: ties to even (up)
		{0.333251953125, 0x3555},
	}
	for _, c := range cases {
		if got := FromFloat32(c.f); got != c.bits {
			t.Errorf("FromFloat32(%g) = %#04x, want %#04x", c.f, got, c.bits)
		}
	}
	if !math.IsNaN(float64(ToFloat32(FromFloat32(float32(math.NaN()))))) {
		t.Error("NaN did not survive a round trip")
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

func TestEveryHalfRoundTrips(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := ToFloat32(uint16(h))
		if math.IsNaN(float64(f)) {
			continue
		}
		if back := FromFloat32(f); back != uint16(h) {
			t.Fatalf("%#04x -> %g -> %#04x", h, f, back)
		}
	}
}
