package quality

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// frechet.json is written by testdata/reference/frechet_ref.py: numpy.cov
// covariances and a trace term from the eigenvalues of the non-symmetric
// product S_a S_b (cross-checked there by Denman-Beavers sqrtm).
type frechetRef struct {
	Fitted []struct {
		Name      string      `json:"name"`
		FeaturesA [][]float32 `json:"features_a"`
		FeaturesB [][]float32 `json:"features_b"`
		MeanA     []float64   `json:"mean_a"`
		CovA      []float64   `json:"cov_a"`
		MeanB     []float64   `json:"mean_b"`
		CovB      []float64   `json:"cov_b"`
		Frechet   float64     `json:"frechet"`
	} `json:"fitted"`
	Given []struct {
		Name    string    `json:"name"`
		MeanA   []float64 `json:"mean_a"`
		CovA    []float64 `json:"cov_a"`
		MeanB   []float64 `json:"mean_b"`
		CovB    []float64 `json:"cov_b"`
		Frechet float64   `json:"frechet"`
	} `json:"given"`
}

func loadFrechetRef(t *testing.T) frechetRef {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "reference", "frechet.json"))
	if err != nil {
		t.Fatalf("read reference (regenerate with testdata/reference/frechet_ref.py): %v", err)
	}
	var ref frechetRef
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatalf("parse frechet.json: %v", err)
	}
	if len(ref.Fitted) == 0 || len(ref.Given) == 0 {
		t.Fatal("frechet.json has no cases")
	}
	return ref
}

// closeTo reports whether got is within rel of want, relative to scale.
func closeTo(got, want, rel, scale float64) bool {
	return math.Abs(got-want) <= rel*math.Max(scale, 1)
}

func TestFitGaussianMatchesNumpyCov(t *testing.T) {
	for _, tc := range loadFrechetRef(t).Fitted {
		t.Run(tc.Name, func(t *testing.T) {
			for _, side := range []struct {
				name     string
				features [][]float32
				mean     []float64
				cov      []float64
			}{
				{"a", tc.FeaturesA, tc.MeanA, tc.CovA},
				{"b", tc.FeaturesB, tc.MeanB, tc.CovB},
			} {
				g, err := FitGaussian(side.features)
				if err != nil {
					t.Fatalf("%s: %v", side.name, err)
				}
				if len(g.Mean) != len(side.mean) || len(g.Cov) != len(side.cov) {
					t.Fatalf("%s: got %d means, %d cov entries; want %d, %d", side.name, len(g.Mean), len(g.Cov), len(side.mean), len(side.cov))
				}
				for i := range g.Mean {
					if !closeTo(g.Mean[i], side.mean[i], 1e-12, math.Abs(side.mean[i])) {
						t.Errorf("%s: mean[%d] = %.17g, numpy %.17g", side.name, i, g.Mean[i], side.mean[i])
					}
				}
				for i := range g.Cov {
					if !closeTo(g.Cov[i], side.cov[i], 1e-12, math.Abs(side.cov[i])) {
						t.Errorf("%s: cov[%d] = %.17g, numpy %.17g", side.name, i, g.Cov[i], side.cov[i])
					}
				}
			}
		})
	}
}

func TestFrechetMatchesNumpyReference(t *testing.T) {
	ref := loadFrechetRef(t)
	type pair struct {
		name   string
		a, b   Gaussian
		want   float64
		fitted [2][][]float32
	}
	var cases []pair
	for _, c := range ref.Fitted {
		cases = append(cases, pair{c.Name, Gaussian{c.MeanA, c.CovA}, Gaussian{c.MeanB, c.CovB}, c.Frechet, [2][][]float32{c.FeaturesA, c.FeaturesB}})
	}
	for _, c := range ref.Given {
		cases = append(cases, pair{name: c.Name, a: Gaussian{c.MeanA, c.CovA}, b: Gaussian{c.MeanB, c.CovB}, want: c.Frechet})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Frechet(tc.a, tc.b)
			if err != nil {
				t.Fatal(err)
			}
			// The trace term is a difference of O(Tr S) quantities, so the
			// error is relative to the traces, not to the (maybe small) result.
			scale := trace(tc.a) + trace(tc.b)
			if !closeTo(got, tc.want, 1e-11, scale) {
				t.Errorf("Frechet = %.15g, numpy %.15g", got, tc.want)
			}
			if rev, err := Frechet(tc.b, tc.a); err != nil || !closeTo(rev, got, 1e-11, scale) {
				t.Errorf("Frechet(b, a) = %.15g, %v; Frechet(a, b) = %.15g", rev, err, got)
			}
			if tc.fitted[0] == nil {
				return
			}
			// End to end from the float32 features, as `latentsync eval` will.
			ga, err := FitGaussian(tc.fitted[0])
			if err != nil {
				t.Fatal(err)
			}
			gb, err := FitGaussian(tc.fitted[1])
			if err != nil {
				t.Fatal(err)
			}
			if fromFeatures, err := Frechet(ga, gb); err != nil || !closeTo(fromFeatures, tc.want, 1e-11, scale) {
				t.Errorf("Frechet of fitted features = %.15g, %v; numpy %.15g", fromFeatures, err, tc.want)
			}
		})
	}
}

func trace(g Gaussian) float64 {
	n := len(g.Mean)
	var s float64
	for i := 0; i < n; i++ {
		s += g.Cov[i*n+i]
	}
	return s
}

// randomGaussian has covariance A A^T / n (+ floor I): full, correlated and,
// with floor 0 and rank < n, singular.
func randomGaussian(rng *rand.Rand, n, rank int, floor float64) Gaussian {
	a := make([]float64, n*rank)
	for i := range a {
		a[i] = rng.NormFloat64()
	}
	g := Gaussian{Mean: make([]float64, n), Cov: make([]float64, n*n)}
	for i := range g.Mean {
		g.Mean[i] = rng.NormFloat64()
	}
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for k := 0; k < rank; k++ {
				s += a[i*rank+k] * a[j*rank+k]
			}
			g.Cov[i*n+j] = s / float64(n)
		}
		g.Cov[i*n+i] += floor
	}
	return g
}

func TestFrechetAnalyticCases(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	full := randomGaussian(rng, 20, 20, 0.01)
	singular := randomGaussian(rng, 20, 5, 0)

	// Diagonal covariances commute: the distance is
	// sum (mu_a - mu_b)^2 + sum (sqrt(a_i) - sqrt(b_i))^2.
	diagA := Gaussian{Mean: []float64{1, -2, 0.5}, Cov: diag(4, 9, 0.25)}
	diagB := Gaussian{Mean: []float64{0, 1, 0.5}, Cov: diag(1, 16, 2.25)}
	diagWant := (1.0 + 9 + 0) + (1.0 + 1 + 1)

	// S_b = c^2 S_a: Tr(S_a + c^2 S_a - 2c S_a) = (1-c)^2 Tr(S_a).
	const c = 1.7
	scaled := Gaussian{Mean: full.Mean, Cov: make([]float64, len(full.Cov))}
	for i, v := range full.Cov {
		scaled.Cov[i] = c * c * v
	}

	// Shifting the mean only adds ||delta||^2.
	shifted := Gaussian{Mean: make([]float64, len(full.Mean)), Cov: full.Cov}
	var shift2 float64
	for i, m := range full.Mean {
		d := float64(i%3) - 1
		shifted.Mean[i] = m + d
		shift2 += d * d
	}

	tests := []struct {
		name string
		a, b Gaussian
		want float64
	}{
		{"identical full covariance", full, full, 0},
		{"identical singular covariance", singular, singular, 0},
		{"diagonal covariances", diagA, diagB, diagWant},
		{"scaled covariance", full, scaled, (1 - c) * (1 - c) * trace(full)},
		{"shifted mean", full, shifted, shift2},
		{"point masses", Gaussian{[]float64{1, 2}, diag(0, 0)}, Gaussian{[]float64{4, 6}, diag(0, 0)}, 25},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Frechet(tc.a, tc.b)
			if err != nil {
				t.Fatal(err)
			}
			if !closeTo(got, tc.want, 1e-10, trace(tc.a)+trace(tc.b)) {
				t.Errorf("Frechet = %.15g, want %.15g", got, tc.want)
			}
		})
	}
}

func diag(v ...float64) []float64 {
	m := make([]float64, len(v)*len(v))
	for i, x := range v {
		m[i*len(v)+i] = x
	}
	return m
}

func TestFrechetRejectsBadInput(t *testing.T) {
	ok := Gaussian{Mean: []float64{0, 0}, Cov: diag(1, 1)}
	tests := []struct {
		name string
		a, b Gaussian
		want string
	}{
		{"dimension mismatch", ok, Gaussian{Mean: []float64{0}, Cov: diag(1)}, "dimensions differ"},
		{"short covariance", Gaussian{Mean: []float64{0, 0}, Cov: []float64{1, 0, 0}}, ok, "covariance has 3 entries"},
		{"empty", Gaussian{}, ok, "empty mean"},
		{"nan mean", ok, Gaussian{Mean: []float64{math.NaN(), 0}, Cov: diag(1, 1)}, "mean is not finite"},
		{"inf covariance", ok, Gaussian{Mean: []float64{0, 0}, Cov: diag(math.Inf(1), 1)}, "covariance is not finite"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Frechet(tc.a, tc.b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestFitGaussianRejectsBadInput(t *testing.T) {
	tests := []struct {
		name     string
		features [][]float32
		want     string
	}{
		{"no samples", nil, "0 samples"},
		{"one sample", [][]float32{{1, 2}}, "1 samples"},
		{"ragged", [][]float32{{1, 2}, {3}}, "sample 1 has 1 features"},
		{"no features", [][]float32{{}, {}}, "no features"},
		{"nan", [][]float32{{1, 2}, {float32(math.NaN()), 0}}, "not finite"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FitGaussian(tc.features)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// BenchmarkFrechet times one distance at FVD's I3D width (400) and FID's
// Inception width (2048); the floor makes the rank-64 covariances full rank.
func BenchmarkFrechet(b *testing.B) {
	for _, n := range []int{400, 2048} {
		b.Run(fmt.Sprintf("d=%d", n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(3, uint64(n)))
			ga, gb := randomGaussian(rng, n, 64, 0.01), randomGaussian(rng, n, 64, 0.01)
			for b.Loop() {
				if _, err := Frechet(ga, gb); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
