package face

import (
	"context"
	"fmt"
	"math"
	"sort"

	"github.com/latentsync/latentsync-service/gpuworker/infer"
	"github.com/latentsync/latentsync-service/internal/raster"
)

// Defaults, tuned with the back model: the astronaut portrait scores 0.88
// (0.78-0.96 when shrunk or placed in a bigger frame) while faceless frames
// (noise, gradients, flat colour, black) stay below 0.17. A search square 4x
// the previous face box scored higher (0.94) and placed the eyes within a
// pixel of the full-frame result; 2x misplaced the ears.
const (
	DefaultMinScore  = 0.5
	DefaultNMSIoU    = 0.3 // MediaPipe's min_suppression_threshold for BlazeFace
	DefaultNearScale = 4.0
)

type config struct {
	minScore  float64
	iou       float64
	nearScale float64
}

// Option tunes a Detector.
type Option func(*config)

// WithMinScore sets the detection confidence threshold in (0, 1).
func WithMinScore(s float64) Option { return func(c *config) { c.minScore = s } }

// WithNMSIoU sets the overlap above which detections merge into one face.
func WithNMSIoU(iou float64) Option { return func(c *config) { c.iou = iou } }

// WithNearScale sets the side of DetectNear's search square as a multiple of
// the previous face box's larger side.
func WithNearScale(s float64) Option { return func(c *config) { c.nearScale = s } }

type runFunc func(ctx context.Context, inputs map[string]infer.Tensor) (map[string]infer.Tensor, error)

// Detector runs a BlazeFace model (front 128 or back 256). It holds no
// per-call state; concurrent use is as safe as the session's Run.
type Detector struct {
	run     runFunc
	input   string
	size    int      // model input side
	scores  []string // score outputs in anchor order
	regs    []string // regressor outputs, same order
	anchors []anchor
	cfg     config
}

// NewDetector checks that sess has BlazeFace's interface: one float32 NHWC
// [1,S,S,3] input and score/regressor output pairs [1,A,1]/[1,A,16] that
// together cover the model's 896 anchors.
func NewDetector(sess *infer.Session, opts ...Option) (*Detector, error) {
	if sess == nil {
		return nil, fmt.Errorf("face detector: nil session")
	}
	return newDetector(sess.Inputs(), sess.Outputs(), func(ctx context.Context, in map[string]infer.Tensor) (map[string]infer.Tensor, error) {
		return sess.Run(ctx, in)
	}, opts...)
}

func newDetector(inputs, outputs []infer.TensorInfo, run runFunc, opts ...Option) (*Detector, error) {
	cfg := config{minScore: DefaultMinScore, iou: DefaultNMSIoU, nearScale: DefaultNearScale}
	for _, o := range opts {
		o(&cfg)
	}
	if !(cfg.minScore > 0 && cfg.minScore < 1) || !(cfg.iou > 0 && cfg.iou < 1) || !(cfg.nearScale >= 1) {
		return nil, fmt.Errorf("face detector: bad options: min score %v, IoU %v, near scale %v", cfg.minScore, cfg.iou, cfg.nearScale)
	}
	if len(inputs) != 1 {
		return nil, fmt.Errorf("face detector: model has %d inputs, want 1", len(inputs))
	}
	in := inputs[0]
	sh := in.Shape
	if in.DType != infer.Float32 || len(sh) != 4 || (sh[0] != 1 && sh[0] != -1) || sh[3] != 3 || sh[1] != sh[2] || sh[1] < 16 || sh[1]%16 != 0 {
		return nil, fmt.Errorf("face detector: input %q is %s %v, want float32 [1,S,S,3]", in.Name, in.DType, sh)
	}
	d := &Detector{run: run, input: in.Name, size: int(sh[1]), cfg: cfg}
	d.anchors = blazeFaceAnchors(d.size)

	type pair struct {
		n           int64
		score, regs string
	}
	byCount := map[int64]*pair{}
	for _, o := range outputs {
		s := o.Shape
		if o.DType != infer.Float32 || len(s) != 3 || (s[0] != 1 && s[0] != -1) || s[1] <= 0 || (s[2] != 1 && s[2] != regressorWidth) {
			return nil, fmt.Errorf("face detector: output %q is %s %v, want float32 [1,A,1] or [1,A,%d]", o.Name, o.DType, s, regressorWidth)
		}
		p := byCount[s[1]]
		if p == nil {
			p = &pair{n: s[1]}
			byCount[s[1]] = p
		}
		slot := &p.score
		if s[2] == regressorWidth {
			slot = &p.regs
		}
		if *slot != "" {
			return nil, fmt.Errorf("face detector: outputs %q and %q have the same shape %v", *slot, o.Name, s)
		}
		*slot = o.Name
	}
	pairs := make([]*pair, 0, len(byCount))
	var total int64
	for _, p := range byCount {
		if p.score == "" || p.regs == "" {
			return nil, fmt.Errorf("face detector: %d-anchor output lacks its score or regressor partner", p.n)
		}
		pairs = append(pairs, p)
		total += p.n
	}
	if total != int64(len(d.anchors)) {
		return nil, fmt.Errorf("face detector: outputs cover %d anchors, a %dx%d BlazeFace has %d", total, d.size, d.size, len(d.anchors))
	}
	// The fine 16x16 grid comes first in anchor order and has more anchors.
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].n > pairs[j].n })
	for _, p := range pairs {
		d.scores = append(d.scores, p.score)
		d.regs = append(d.regs, p.regs)
	}
	return d, nil
}

// InputSize is the model's square input side.
func (d *Detector) InputSize() int { return d.size }

// Detect finds faces in img. The frame is letterboxed (centred, black
// padding) so faces keep their aspect ratio, as the model expects.
func (d *Detector) Detect(ctx context.Context, img *raster.RGB) ([]Detection, error) {
	if err := img.Validate(); err != nil {
		return nil, fmt.Errorf("detect faces: %w", err)
	}
	side := float64(max(img.W, img.H))
	return d.detectIn(ctx, img, (float64(img.W)-side)/2, (float64(img.H)-side)/2, side)
}

// DetectLargest returns the largest face (the product's rule when a frame has
// several) and false when there is none.
func (d *Detector) DetectLargest(ctx context.Context, img *raster.RGB) (Detection, bool, error) {
	dets, err := d.Detect(ctx, img)
	if err != nil {
		return Detection{}, false, err
	}
	det, ok := Largest(dets)
	return det, ok, nil
}

// DetectNear searches a square around prev (a face box from an earlier frame)
// whose side is the near scale times prev's larger side. A face that fills
// little of a big frame is then seen at a useful resolution. Results are in
// img coordinates; none found means the caller should fall back to Detect.
func (d *Detector) DetectNear(ctx context.Context, img *raster.RGB, prev Box) ([]Detection, error) {
	if err := img.Validate(); err != nil {
		return nil, fmt.Errorf("detect faces near %v: %w", prev, err)
	}
	side := d.cfg.nearScale * math.Max(prev.W(), prev.H())
	c := prev.Center()
	if !(side >= 1) || math.IsInf(side, 0) || math.IsNaN(c.X) || math.IsNaN(c.Y) {
		return nil, fmt.Errorf("detect faces near %v: box is empty or not finite", prev)
	}
	return d.detectIn(ctx, img, c.X-side/2, c.Y-side/2, side)
}

// Follow is the first pass's per-frame step: with a previous face it looks
// near it first (largest face there), otherwise or if that finds nothing it
// takes the largest face in the whole frame. Nil means no face.
func (d *Detector) Follow(ctx context.Context, img *raster.RGB, prev *Detection) (*Detection, error) {
	if prev != nil {
		dets, err := d.DetectNear(ctx, img, prev.Box)
		if err != nil {
			return nil, err
		}
		if det, ok := Largest(dets); ok {
			return &det, nil
		}
	}
	det, ok, err := d.DetectLargest(ctx, img)
	if err != nil || !ok {
		return nil, err
	}
	return &det, nil
}

// Largest picks the detection with the largest box area.
func Largest(dets []Detection) (Detection, bool) {
	best := -1
	for i := range dets {
		if best < 0 || dets[i].Box.Area() > dets[best].Box.Area() {
			best = i
		}
	}
	if best < 0 {
		return Detection{}, false
	}
	return dets[best], true
}

// detectIn runs the model on the square view [ox, ox+side) x [oy, oy+side) of
// img and maps the detections back to img coordinates.
func (d *Detector) detectIn(ctx context.Context, img *raster.RGB, ox, oy, side float64) ([]Detection, error) {
	n := d.size
	buf := make([]float32, n*n*3)
	sampleSquare(img, ox, oy, side, n, buf)
	out, err := d.run(ctx, map[string]infer.Tensor{d.input: {Shape: []int64{1, int64(n), int64(n), 3}, Float: buf}})
	if err != nil {
		return nil, fmt.Errorf("detect faces: %w", err)
	}
	var scores, regs []float32
	for i := range d.scores {
		s, ok1 := out[d.scores[i]]
		r, ok2 := out[d.regs[i]]
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("detect faces: model returned no %q or %q", d.scores[i], d.regs[i])
		}
		scores = append(scores, s.Float...)
		regs = append(regs, r.Float...)
	}
	raw, err := decode(scores, regs, d.anchors, n, d.cfg.minScore)
	if err != nil {
		return nil, fmt.Errorf("detect faces: %w", err)
	}
	dets := weightedNMS(raw, d.cfg.iou)
	toImg := func(p Point) Point { return Point{ox + p.X*side, oy + p.Y*side} }
	kept := dets[:0]
	for _, det := range dets {
		lo, hi := toImg(Point{det.Box.X0, det.Box.Y0}), toImg(Point{det.Box.X1, det.Box.Y1})
		det.Box = Box{lo.X, lo.Y, hi.X, hi.Y}
		for k := range det.Keypoints {
			det.Keypoints[k] = toImg(det.Keypoints[k])
		}
		// A face centred in the padding is an artefact of the letterbox edge.
		if c := det.Box.Center(); c.X < 0 || c.Y < 0 || c.X >= float64(img.W) || c.Y >= float64(img.H) {
			continue
		}
		kept = append(kept, det)
	}
	return kept, nil
}

// sampleSquare fills dst (NHWC n x n x 3, values in [-1, 1]) from the square
// view [ox, ox+side)^2 of img; outside the image is black (-1). Each output
// pixel averages k x k bilinear samples spread over its footprint, with k
// chosen so samples are at most 2 source pixels apart: plain bilinear when
// shrinking by up to 2x, and no aliasing when a 1080p frame becomes 256x256.
func sampleSquare(img *raster.RGB, ox, oy, side float64, n int, dst []float32) {
	step := side / float64(n)
	k := max(1, int(math.Ceil(step/2)))
	xt := axisTaps(ox, step, n, k, img.W)
	yt := axisTaps(oy, step, n, k, img.H)
	inv := 1 / float64(k*k)
	for v := 0; v < n; v++ {
		for u := 0; u < n; u++ {
			var r, g, b float64
			for sy := 0; sy < k; sy++ {
				ty := yt[v*k+sy]
				for sx := 0; sx < k; sx++ {
					tx := xt[u*k+sx]
					if !tx.in || !ty.in {
						continue // black: 0 in byte terms
					}
					// Weights of the four neighbours (top-left, top-right, ...).
					w00, w01 := (1-tx.w)*(1-ty.w), tx.w*(1-ty.w)
					w10, w11 := (1-tx.w)*ty.w, tx.w*ty.w
					p00, p01 := img.Pix[3*(ty.i0*img.W+tx.i0):], img.Pix[3*(ty.i0*img.W+tx.i1):]
					p10, p11 := img.Pix[3*(ty.i1*img.W+tx.i0):], img.Pix[3*(ty.i1*img.W+tx.i1):]
					r += w00*float64(p00[0]) + w01*float64(p01[0]) + w10*float64(p10[0]) + w11*float64(p11[0])
					g += w00*float64(p00[1]) + w01*float64(p01[1]) + w10*float64(p10[1]) + w11*float64(p11[1])
					b += w00*float64(p00[2]) + w01*float64(p01[2]) + w10*float64(p10[2]) + w11*float64(p11[2])
				}
			}
			o := 3 * (v*n + u)
			dst[o] = float32(r*inv/127.5 - 1)
			dst[o+1] = float32(g*inv/127.5 - 1)
			dst[o+2] = float32(b*inv/127.5 - 1)
		}
	}
}

// tap is one bilinear sample position along an axis.
type tap struct {
	i0, i1 int
	w      float64 // weight of i1
	in     bool    // sample centre lies inside the image
}

// axisTaps returns n*k taps for sub-samples at origin + (u + (s+0.5)/k)*step,
// clamping neighbours to the edge (replicate) inside the image.
func axisTaps(origin, step float64, n, k, size int) []tap {
	t := make([]tap, n*k)
	for u := 0; u < n; u++ {
		for s := 0; s < k; s++ {
			x := origin + (float64(u)+(float64(s)+0.5)/float64(k))*step
			if x < 0 || x >= float64(size) {
				continue
			}
			f := x - 0.5 // index space: pixel i's centre is at i
			i0 := int(math.Floor(f))
			w := f - float64(i0)
			t[u*k+s] = tap{i0: clampInt(i0, 0, size-1), i1: clampInt(i0+1, 0, size-1), w: w, in: true}
		}
	}
	return t
}

func clampInt(v, lo, hi int) int {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}
