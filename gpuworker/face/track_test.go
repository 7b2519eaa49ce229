package face

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/latentsync/latentsync-service/internal/joberr"
)

// faceAt returns a detection whose eyes and nose are the default template
// (crop side 256) mapped into the frame by the inverse of crop, i.e. a face
// for which crop is the exact frame-to-crop transform.
func faceAt(t *testing.T, crop Similarity) *Detection {
	t.Helper()
	inv, err := crop.Affine().Invert()
	if err != nil {
		t.Fatal(err)
	}
	tm := DefaultTemplate()
	d := &Detection{Score: 0.9}
	d.Keypoints[RightEye] = inv.Apply(Point{tm.RightEye.X * 256, tm.RightEye.Y * 256})
	d.Keypoints[LeftEye] = inv.Apply(Point{tm.LeftEye.X * 256, tm.LeftEye.Y * 256})
	d.Keypoints[NoseTip] = inv.Apply(Point{tm.Nose.X * 256, tm.Nose.Y * 256})
	return d
}

func TestTrackNoFace(t *testing.T) {
	face := &Detection{}
	face.Keypoints[RightEye], face.Keypoints[LeftEye], face.Keypoints[NoseTip] = Point{100, 100}, Point{150, 100}, Point{125, 130}
	clip := func(n, first int) []*Detection {
		d := make([]*Detection, n)
		if first >= 0 {
			d[first] = face
		}
		return d
	}
	tests := []struct {
		name   string
		dets   []*Detection
		noFace bool
	}{
		{"empty clip", nil, true},
		{"short clip without faces", clip(10, -1), true},
		{"first face at frame 49", clip(100, 49), false},
		{"first face at frame 50", clip(100, 50), true},
		{"short clip, face in last frame", clip(10, 9), false},
		{"degenerate keypoints only", []*Detection{{}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := Track(tc.dets, TrackOptions{Size: 256})
			if tc.noFace {
				if joberr.CodeOf(err) != joberr.NoFaceDetected {
					t.Fatalf("error %v, want NO_FACE_DETECTED", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) != len(tc.dets) {
				t.Fatalf("%d transforms for %d frames", len(ms), len(tc.dets))
			}
		})
	}
	if _, err := Track(clip(5, 0), TrackOptions{}); err == nil || joberr.CodeOf(err) == joberr.NoFaceDetected {
		t.Errorf("missing size: error %v, want a plain option error", err)
	}
	if _, err := Track(clip(5, 0), TrackOptions{Size: 256, Window: 4}); err == nil {
		t.Error("even window: no error")
	}
}

func TestTrackFillsGaps(t *testing.T) {
	a := Similarity{Scale: 0.5, Angle: 0.1, TX: 10, TY: 20}
	b := Similarity{Scale: 0.6, Angle: -0.2, TX: -30, TY: 5}
	fa, fb := faceAt(t, a), faceAt(t, b)
	dets := []*Detection{nil, nil, fa, nil, fb, nil, nil}
	want := []Similarity{a, a, a, a, b, b, b}
	ms, err := Track(dets, TrackOptions{Size: 256, Window: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if w := want[i].Affine(); !nearAffine(m, w, 1e-9) {
			t.Errorf("frame %d: %v, want %v", i, m, w)
		}
	}
}

func TestTrackSmoothing(t *testing.T) {
	t.Run("steady face is unchanged", func(t *testing.T) {
		s := Similarity{Scale: 0.8, Angle: 0.05, TX: -40, TY: 12}
		dets := []*Detection{faceAt(t, s), faceAt(t, s), faceAt(t, s)}
		ms, err := Track(dets, TrackOptions{Size: 256})
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range ms {
			if !nearAffine(m, s.Affine(), 1e-9) {
				t.Errorf("frame %d: %v, want %v", i, m, s.Affine())
			}
		}
	})
	t.Run("moving average of the pose", func(t *testing.T) {
		// The crop centre moves 6 px right per frame at constant scale and
		// angle; a 5-frame centred average of a linear ramp is the ramp
		// itself away from the ends, and a truncated average at the ends.
		crops := make([]Similarity, 7)
		dets := make([]*Detection, 7)
		for i := range crops {
			m := Similarity{Scale: 0.5, Angle: 0}
			m.TX = 128 - 0.5*(300+6*float64(i)) // centre (300+6i, 200)
			m.TY = 128 - 0.5*200
			crops[i], dets[i] = m, faceAt(t, m)
		}
		ms, err := Track(dets, TrackOptions{Size: 256})
		if err != nil {
			t.Fatal(err)
		}
		centre := func(m Affine) Point {
			inv, _ := m.Invert()
			return inv.Apply(Point{128, 128})
		}
		wantX := []float64{306, 309, 312, 318, 324, 327, 330} // mean of 300+6*[0..2], [0..3], [0..4], ...
		for i, m := range ms {
			if c := centre(m); !near(c.X, wantX[i], 1e-9) || !near(c.Y, 200, 1e-9) {
				t.Errorf("frame %d: crop centre %v, want (%v, 200)", i, c, wantX[i])
			}
		}
	})
	t.Run("angles near pi do not average to zero", func(t *testing.T) {
		up1 := Similarity{Scale: 1, Angle: math.Pi - 0.05, TX: 0, TY: 0}
		up2 := Similarity{Scale: 1, Angle: -math.Pi + 0.05, TX: 0, TY: 0}
		ms, err := Track([]*Detection{faceAt(t, up1), faceAt(t, up2), faceAt(t, up1)}, TrackOptions{Size: 256, Window: 3})
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range ms {
			if a := math.Abs(SimilarityOf(m).Angle); a < math.Pi-0.06 {
				t.Errorf("frame %d: angle %v, want about +-pi", i, SimilarityOf(m).Angle)
			}
		}
	})
}

// Keypoint noise around a fixed face must move the smoothed crop much less
// than the raw per-frame fit.
func TestTrackReducesJitter(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	truth := Similarity{Scale: 0.9, Angle: 0.03, TX: -150, TY: -60}
	const frames, sigma = 200, 1.5
	dets := make([]*Detection, frames)
	for i := range dets {
		d := faceAt(t, truth)
		for k := range d.Keypoints {
			d.Keypoints[k].X += rng.NormFloat64() * sigma
			d.Keypoints[k].Y += rng.NormFloat64() * sigma
		}
		dets[i] = d
	}
	raw, err := Track(dets, TrackOptions{Size: 256, Window: 1})
	if err != nil {
		t.Fatal(err)
	}
	smooth, err := Track(dets, TrackOptions{Size: 256})
	if err != nil {
		t.Fatal(err)
	}
	// Jitter: RMS displacement, in crop pixels, of a point near the mouth
	// from one frame to the next.
	jitter := func(ms []Affine) float64 {
		inv0, _ := truth.Affine().Invert()
		p := inv0.Apply(Point{128, 200})
		var sum float64
		for i := 1; i < len(ms); i++ {
			a, b := ms[i].Apply(p), ms[i-1].Apply(p)
			sum += (a.X-b.X)*(a.X-b.X) + (a.Y-b.Y)*(a.Y-b.Y)
		}
		return math.Sqrt(sum / float64(len(ms)-1))
	}
	jr, js := jitter(raw), jitter(smooth)
	t.Logf("frame-to-frame jitter: raw %.3f px, smoothed %.3f px", jr, js)
	// A 5-frame mean cuts frame-to-frame differences of white noise to
	// sqrt(2/25)/sqrt(2) = 0.2 of the raw value.
	if js > 0.35*jr {
		t.Errorf("smoothed jitter %.3f px is not well below raw %.3f px", js, jr)
	}
}
