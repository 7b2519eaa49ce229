package ddim

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

var latentSync = Config{
	NumTrainTimesteps: 1000, BetaStart: 0.00085, BetaEnd: 0.012, BetaSchedule: "scaled_linear",
	StepsOffset: 1, PredictionType: "epsilon", TimestepSpacing: "leading",
}

type reference struct {
	Timesteps        []int     `json:"timesteps"`
	AlphaCumprod     []float64 `json:"alpha_cumprod"`
	AlphaCumprodPrev []float64 `json:"alpha_cumprod_prev"`
}

func loadReference(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	b, err := os.ReadFile("../../testdata/reference/ddim.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref map[string]json.RawMessage
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestScheduleMatchesNumpyReference(t *testing.T) {
	ref := loadReference(t)
	for _, steps := range []string{"20", "25", "50"} {
		t.Run(steps, func(t *testing.T) {
			var r reference
			if err := json.Unmarshal(ref[steps], &r); err != nil {
				t.Fatal(err)
			}
			s, err := New(latentSync, len(r.Timesteps))
			if err != nil {
				t.Fatal(err)
			}
			ratio := latentSync.NumTrainTimesteps / len(r.Timesteps)
			for i, want := range r.Timesteps {
				got := s.Timesteps()[i]
				if got != want {
					t.Fatalf("timestep %d = %d, want %d", i, got, want)
				}
				if a := s.AlphaCumprod(got); math.Abs(a-r.AlphaCumprod[i]) > 1e-12 {
					t.Errorf("alpha_bar(%d) = %.15g, want %.15g", got, a, r.AlphaCumprod[i])
				}
				if a := s.AlphaCumprod(got - ratio); math.Abs(a-r.AlphaCumprodPrev[i]) > 1e-12 {
					t.Errorf("alpha_bar_prev(%d) = %.15g, want %.15g", got, a, r.AlphaCumprodPrev[i])
				}
			}
		})
	}
}

func TestStepMatchesNumpyReference(t *testing.T) {
	var r struct {
		T     int       `json:"t"`
		Steps int       `json:"steps"`
		X     []float32 `json:"x"`
		Eps   []float32 `json:"eps"`
		Prev  []float64 `json:"prev"`
	}
	if err := json.Unmarshal(loadReference(t)["step"], &r); err != nil {
		t.Fatal(err)
	}
	s, err := New(latentSync, r.Steps)
	if err != nil {
		t.Fatal(err)
	}
	x := append([]float32(nil), r.X...)
	s.Step(x, r.Eps, r.T)
	for i := range x {
		if math.Abs(float64(x[i])-r.Prev[i]) > 1e-5 {
			t.Errorf("x_prev[%d] = %g, want %g", i, x[i], r.Prev[i])
		}
	}
}

// With the exact noise of a known clean sample, DDIM recovers that sample:
// the property the sampler exists for.
func TestPerfectNoisePredictionRecoversSample(t *testing.T) {
	s, err := New(latentSync, 20)
	if err != nil {
		t.Fatal(err)
	}
	x0 := []float32{0.8, -0.4, 0.1, 1.2}
	noise := []float32{1.1, -0.3, 0.7, -1.9}
	t0 := s.Timesteps()[0]
	x := make([]float32, len(x0))
	a := s.AlphaCumprod(t0)
	for i := range x {
		x[i] = float32(math.Sqrt(a))*x0[i] + float32(math.Sqrt(1-a))*noise[i]
	}
	eps := make([]float32, len(x))
	for _, ts := range s.Timesteps() {
		a := s.AlphaCumprod(ts)
		for i := range eps {
			eps[i] = float32((float64(x[i]) - math.Sqrt(a)*float64(x0[i])) / math.Sqrt(1-a))
		}
		s.Step(x, eps, ts)
	}
	// The last step lands on alpha_bar[0] (set_alpha_to_one false), not on x0.
	af := s.AlphaCumprod(-1)
	for i := range x {
		want := math.Sqrt(af)*float64(x0[i]) + math.Sqrt(1-af)*float64(noise[i])
		if math.Abs(float64(x[i])-want) > 1e-4 {
			t.Errorf("x[%d] = %g, want %g", i, x[i], want)
		}
	}
}

func TestSpacings(t *testing.T) {
	cases := []struct {
		spacing string
		steps   int
		first   int
		last    int
	}{
		{"leading", 10, 901, 1},
		{"trailing", 10, 999, 99},
		{"linspace", 10, 999, 0},
	}
	for _, c := range cases {
		cfg := latentSync
		cfg.TimestepSpacing = c.spacing
		if c.spacing != "leading" {
			cfg.StepsOffset = 0
		}
		s, err := New(cfg, c.steps)
		if err != nil {
			t.Fatal(err)
		}
		ts := s.Timesteps()
		if ts[0] != c.first || ts[len(ts)-1] != c.last {
			t.Errorf("%s: timesteps %v, want %d..%d", c.spacing, ts, c.first, c.last)
		}
	}
}

func TestRejectsBadConfig(t *testing.T) {
	bad := []struct {
		name  string
		cfg   Config
		steps int
	}{
		{"zero steps", latentSync, 0},
		{"more steps than train steps", latentSync, 1001},
		{"unknown schedule", Config{NumTrainTimesteps: 1000, BetaSchedule: "cosine"}, 20},
		{"v prediction", Config{NumTrainTimesteps: 1000, BetaSchedule: "linear", PredictionType: "v_prediction"}, 20},
	}
	for _, c := range bad {
		if _, err := New(c.cfg, c.steps); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

func TestGuide(t *testing.T) {
	u := []float32{1, 2, 3}
	c := []float32{2, 2, 0}
	Guide(u, u, c, 1.5)
	want := []float32{2.5, 2, -1.5}
	for i := range want {
		if u[i] != want[i] {
			t.Fatalf("guided %v, want %v", u, want)
		}
	}
}
