package face

import (
	"math"
	"testing"
)

func TestBlazeFaceAnchors(t *testing.T) {
	for _, size := range []int{128, 256} {
		a := blazeFaceAnchors(size)
		if len(a) != 896 {
			t.Fatalf("%d: %d anchors, want 896", size, len(a))
		}
		tests := []struct {
			i    int
			want anchor
		}{
			{0, anchor{1.0 / 32, 1.0 / 32}},
			{1, anchor{1.0 / 32, 1.0 / 32}}, // two anchors per 16x16 cell
			{2, anchor{3.0 / 32, 1.0 / 32}},
			{32, anchor{1.0 / 32, 3.0 / 32}}, // second row
			{511, anchor{31.0 / 32, 31.0 / 32}},
			{512, anchor{1.0 / 16, 1.0 / 16}}, // 8x8 grid, six per cell
			{517, anchor{1.0 / 16, 1.0 / 16}},
			{518, anchor{3.0 / 16, 1.0 / 16}},
			{895, anchor{15.0 / 16, 15.0 / 16}},
		}
		for _, tc := range tests {
			if a[tc.i] != tc.want {
				t.Errorf("%d: anchor %d = %v, want %v", size, tc.i, a[tc.i], tc.want)
			}
		}
	}
}

func TestDecode(t *testing.T) {
	anchors := []anchor{{0.25, 0.5}, {0.75, 0.75}}
	scores := []float32{0, -3} // sigmoid 0.5 and 0.047
	regs := make([]float32, 2*regressorWidth)
	// Anchor 0: centre offset (+32, -16) px of a 128 input, 64x48 box, keypoint k at (+k, -k).
	copy(regs, []float32{32, -16, 64, 48})
	for k := 0; k < NumKeypoints; k++ {
		regs[4+2*k], regs[5+2*k] = float32(k), float32(-k)
	}
	got, err := decode(scores, regs, anchors, 128, 0.4)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("%d detections, want 1 (the second is below threshold)", len(got))
	}
	d := got[0]
	cx, cy := 0.25+32.0/128, 0.5-16.0/128
	want := Box{cx - 32.0/128, cy - 24.0/128, cx + 32.0/128, cy + 24.0/128}
	if d.Box != want || d.Score != 0.5 {
		t.Errorf("detection %+v, want box %v score 0.5", d, want)
	}
	for k, p := range d.Keypoints {
		if w := (Point{0.25 + float64(k)/128, 0.5 - float64(k)/128}); p != w {
			t.Errorf("keypoint %d = %v, want %v", k, p, w)
		}
	}
	if _, err := decode(scores[:1], regs, anchors, 128, 0.5); err == nil {
		t.Error("size mismatch: no error")
	}
}

func TestWeightedNMS(t *testing.T) {
	det := func(x0, score float64, kpx float64) Detection {
		d := Detection{Box: Box{x0, 0, x0 + 10, 10}, Score: score}
		for k := range d.Keypoints {
			d.Keypoints[k] = Point{kpx, 1}
		}
		return d
	}
	in := []Detection{
		det(100, 0.6, 4),  // separate face, lower score
		det(1, 0.25, 10),  // overlaps the best (IoU 9/11)
		det(0, 0.75, 2),   // best
		det(8, 0.7, 50),   // touches the best (IoU 2/18): its own cluster
		det(0.5, 0.5, 40), // ... and it overlaps the best too
	}
	got := weightedNMS(in, 0.3)
	if len(got) != 3 {
		t.Fatalf("%d faces, want 3: %+v", len(got), got)
	}
	// Cluster {0.75 @0, 0.25 @1, 0.5 @0.5}: weights sum to 1.5.
	wantX0 := (0.75*0 + 0.25*1 + 0.5*0.5) / 1.5
	wantKP := (0.75*2 + 0.25*10 + 0.5*40) / 1.5
	if g := got[0]; g.Score != 0.75 || math.Abs(g.Box.X0-wantX0) > 1e-12 || math.Abs(g.Keypoints[Mouth].X-wantKP) > 1e-12 {
		t.Errorf("merged %+v, want score 0.75, x0 %v, keypoint x %v", g, wantX0, wantKP)
	}
	if got[1].Score != 0.7 || got[1].Box.X0 != 8 || got[2].Score != 0.6 || got[2].Box.X0 != 100 {
		t.Errorf("other faces %+v %+v, want the 0.7 box at 8 then the 0.6 box at 100 unchanged", got[1], got[2])
	}
	if len(weightedNMS(nil, 0.3)) != 0 {
		t.Error("faces from nothing")
	}
}
