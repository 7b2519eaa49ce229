package face

import (
	"fmt"
	"math"
	"sort"
)

// Keypoint indexes in BlazeFace's output order. Right and left are the
// subject's: the right eye appears on the image's left.
const (
	RightEye = iota
	LeftEye
	NoseTip
	Mouth
	RightEar
	LeftEar
	NumKeypoints
)

// Detection is one face in image pixel coordinates.
type Detection struct {
	Box       Box
	Score     float64 // sigmoid confidence in [0, 1]
	Keypoints [NumKeypoints]Point
}

// regressorWidth is BlazeFace's per-anchor output: box (cx, cy, w, h) then
// six (x, y) keypoints.
const regressorWidth = 4 + 2*NumKeypoints

// anchor is an SSD anchor centre in normalised input coordinates. BlazeFace
// uses fixed_anchor_size, so every anchor is 1x1 and only the centre matters.
type anchor struct{ X, Y float64 }

// ssdAnchors reproduces MediaPipe's SsdAnchorsCalculator for BlazeFace
// (anchor_offset 0.5, fixed anchor size, aspect ratio 1 plus the interpolated
// scale, so two anchors per layer): consecutive layers with the same stride
// share one grid, each adding two anchors per cell. For both BlazeFace models
// the strides are input/16 and 3 x input/8, giving 16x16x2 + 8x8x6 = 896.
func ssdAnchors(inputSize int, strides []int) []anchor {
	var out []anchor
	for l := 0; l < len(strides); {
		perCell := 0
		last := l
		for last < len(strides) && strides[last] == strides[l] {
			perCell += 2
			last++
		}
		grid := int(math.Ceil(float64(inputSize) / float64(strides[l])))
		for y := 0; y < grid; y++ {
			for x := 0; x < grid; x++ {
				a := anchor{(float64(x) + 0.5) / float64(grid), (float64(y) + 0.5) / float64(grid)}
				for k := 0; k < perCell; k++ {
					out = append(out, a)
				}
			}
		}
		l = last
	}
	return out
}

// blazeFaceAnchors returns the anchors of a square BlazeFace model.
func blazeFaceAnchors(inputSize int) []anchor {
	s := inputSize / 16
	return ssdAnchors(inputSize, []int{s, 2 * s, 2 * s, 2 * s})
}

// decode turns raw scores (logits) and regressors into detections in
// normalised input coordinates, keeping those at or above minScore.
func decode(scores, regs []float32, anchors []anchor, inputSize int, minScore float64) ([]Detection, error) {
	if len(scores) != len(anchors) || len(regs) != regressorWidth*len(anchors) {
		return nil, fmt.Errorf("decode blazeface: %d scores and %d regressor values for %d anchors",
			len(scores), len(regs), len(anchors))
	}
	in := float64(inputSize)
	var out []Detection
	for i, a := range anchors {
		// MediaPipe clips logits to +-100 before the sigmoid.
		logit := math.Max(-100, math.Min(100, float64(scores[i])))
		score := 1 / (1 + math.Exp(-logit))
		if score < minScore || math.IsNaN(score) {
			continue
		}
		r := regs[regressorWidth*i : regressorWidth*(i+1)]
		cx, cy := a.X+float64(r[0])/in, a.Y+float64(r[1])/in
		w, h := float64(r[2])/in, float64(r[3])/in
		d := Detection{Box: Box{cx - w/2, cy - h/2, cx + w/2, cy + h/2}, Score: score}
		for k := range d.Keypoints {
			d.Keypoints[k] = Point{a.X + float64(r[4+2*k])/in, a.Y + float64(r[5+2*k])/in}
		}
		out = append(out, d)
	}
	return out, nil
}

// weightedNMS is MediaPipe's WEIGHTED non-max suppression: the best remaining
// detection and every other one overlapping it by more than iou form a
// cluster whose box and keypoints are score-weighted averages; the cluster
// keeps its best score. Averaging the ~5 anchors that fire on one face steadies
// the keypoints far better than picking one.
func weightedNMS(dets []Detection, iou float64) []Detection {
	rest := append([]Detection(nil), dets...)
	sort.SliceStable(rest, func(i, j int) bool { return rest[i].Score > rest[j].Score })
	var out []Detection
	for len(rest) > 0 {
		top := rest[0]
		var sum Detection
		var wsum float64
		keep := rest[:0]
		for _, d := range rest {
			if d.Box.IoU(top.Box) <= iou && wsum > 0 { // rest[0] always joins its own cluster
				keep = append(keep, d)
				continue
			}
			w := d.Score
			wsum += w
			sum.Box.X0 += w * d.Box.X0
			sum.Box.Y0 += w * d.Box.Y0
			sum.Box.X1 += w * d.Box.X1
			sum.Box.Y1 += w * d.Box.Y1
			for k := range sum.Keypoints {
				sum.Keypoints[k].X += w * d.Keypoints[k].X
				sum.Keypoints[k].Y += w * d.Keypoints[k].Y
			}
		}
		merged := Detection{Score: top.Score}
		merged.Box = Box{sum.Box.X0 / wsum, sum.Box.Y0 / wsum, sum.Box.X1 / wsum, sum.Box.Y1 / wsum}
		for k := range merged.Keypoints {
			merged.Keypoints[k] = Point{sum.Keypoints[k].X / wsum, sum.Keypoints[k].Y / wsum}
		}
		out = append(out, merged)
		rest = keep
	}
	return out
}
