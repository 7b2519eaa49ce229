package audio

import (
	"fmt"
	"math"
)

// fftPlan is a mixed-radix complex FFT (KissFFT-style recursive
// decimation in time). Whisper's n_fft of 400 = 4*4*5*5 is not a power of two,
// so a radix-2-only FFT would not do; radices 4 and 2 have dedicated
// butterflies, anything else (5 here) goes through a generic one.
// A plan is read-only after construction and safe for concurrent use.
type fftPlan struct {
	n       int
	factors []int        // radices, outermost first
	tw      []complex128 // tw[j] = exp(-2πi j/n)
}

func newFFTPlan(n int) (*fftPlan, error) {
	if n < 1 {
		return nil, fmt.Errorf("fft: size %d", n)
	}
	p := &fftPlan{n: n, tw: make([]complex128, n)}
	for j := range p.tw {
		// Computing each twiddle directly (not by repeated multiplication)
		// keeps them accurate to an ulp.
		s, c := math.Sincos(-2 * math.Pi * float64(j) / float64(n))
		p.tw[j] = complex(c, s)
	}
	for m := n; m > 1; {
		r := 0
		for _, f := range []int{4, 2, 3, 5} {
			if m%f == 0 {
				r = f
				break
			}
		}
		if r == 0 { // smallest remaining prime factor
			for f := 7; ; f += 2 {
				if m%f == 0 {
					r = f
					break
				}
			}
		}
		p.factors = append(p.factors, r)
		m /= r
	}
	return p, nil
}

// transform writes the forward DFT of in (length n) to out (length n),
// X[k] = sum_j x[j] exp(-2πi jk/n). in and out must not overlap.
func (p *fftPlan) transform(out, in []complex128) {
	p.rec(out[:p.n], in, 1, 0)
}

// rec computes the DFT of in[0], in[stride], ... (len(out) points) into out.
func (p *fftPlan) rec(out, in []complex128, stride, fi int) {
	n := len(out)
	if n == 1 {
		out[0] = in[0]
		return
	}
	r := p.factors[fi]
	m := n / r
	for q := 0; q < r; q++ {
		p.rec(out[q*m:(q+1)*m], in[q*stride:], stride*r, fi+1)
	}
	// Twiddle step: W_n^k = tw[k*(p.n/n)].
	ts := p.n / n
	switch r {
	case 2:
		for k := 0; k < m; k++ {
			a := out[k]
			b := out[k+m] * p.tw[k*ts]
			out[k], out[k+m] = a+b, a-b
		}
	case 4:
		for k := 0; k < m; k++ {
			a0 := out[k]
			a1 := out[k+m] * p.tw[k*ts]
			a2 := out[k+2*m] * p.tw[2*k*ts]
			a3 := out[k+3*m] * p.tw[3*k*ts]
			s02, d02 := a0+a2, a0-a2
			s13, d13 := a1+a3, a1-a3
			// Multiply by -i: (x+iy)(-i) = y - ix.
			d13i := complex(imag(d13), -real(d13))
			out[k], out[k+m], out[k+2*m], out[k+3*m] = s02+s13, d02+d13i, s02-s13, d02-d13i
		}
	case 5:
		// Expanded radix-5 butterfly: W^4 = conj(W) and W^3 = conj(W^2)
		// pair the terms, so each output needs two real rotations.
		c1, s1 := math.Cos(2*math.Pi/5), math.Sin(2*math.Pi/5)
		c2, s2 := math.Cos(4*math.Pi/5), math.Sin(4*math.Pi/5)
		for k := 0; k < m; k++ {
			a0 := out[k]
			a1 := out[k+m] * p.tw[k*ts]
			a2 := out[k+2*m] * p.tw[2*k*ts]
			a3 := out[k+3*m] * p.tw[3*k*ts]
			a4 := out[k+4*m] * p.tw[4*k*ts]
			sa, sb := a1+a4, a2+a3
			da, db := a1-a4, a2-a3
			p1 := a0 + complex(c1*real(sa)+c2*real(sb), c1*imag(sa)+c2*imag(sb))
			p2 := a0 + complex(c2*real(sa)+c1*real(sb), c2*imag(sa)+c1*imag(sb))
			q1 := complex(s1*real(da)+s2*real(db), s1*imag(da)+s2*imag(db)) // times -i below
			q2 := complex(s2*real(da)-s1*real(db), s2*imag(da)-s1*imag(db))
			mi1 := complex(imag(q1), -real(q1)) // -i*q1
			mi2 := complex(imag(q2), -real(q2))
			out[k] = a0 + sa + sb
			out[k+m], out[k+4*m] = p1+mi1, p1-mi1
			out[k+2*m], out[k+3*m] = p2+mi2, p2-mi2
		}
	default:
		var buf [16]complex128
		t := buf[:0]
		if r > len(buf) {
			t = make([]complex128, 0, r)
		}
		t = t[:r]
		rs := p.n / r // W_r^1 = tw[p.n/r]
		for k := 0; k < m; k++ {
			for q := 0; q < r; q++ {
				t[q] = out[k+q*m] * p.tw[(q*k*ts)%p.n]
			}
			for s := 0; s < r; s++ {
				acc := t[0]
				for q := 1; q < r; q++ {
					acc += t[q] * p.tw[(q*s%r)*rs]
				}
				out[k+s*m] = acc
			}
		}
	}
}
