package face

import (
	"fmt"
	"math"

	"github.com/latentsync/latentsync-service/internal/joberr"
)

// Track defaults.
const (
	DefaultSmoothWindow    = 5  // frames in the centred moving average (0.2 s at 25 fps)
	DefaultFirstFaceWithin = 50 // DESIGN.md section 4: no face in 2 s fails the job
)

// TrackOptions configures Track. Zero fields take the defaults.
type TrackOptions struct {
	Template        Template // zero: DefaultTemplate()
	Size            int      // crop side in pixels (256 or 512); required
	Window          int      // odd moving-average length; 1 disables smoothing
	FirstFaceWithin int      // frames that may pass before the first face
}

// Track turns a clip's per-frame detections (nil: no face in that frame) into
// one frame-to-crop transform per frame. A frame without a face reuses the
// last good transform, and frames before the first face reuse the first one.
// The transform is then smoothed over time so keypoint jitter does not make
// the crop, and hence the pasted mouth, shake. If none of the first
// FirstFaceWithin frames (or of the whole clip if shorter) has a face, the job
// fails with NO_FACE_DETECTED.
func Track(dets []*Detection, opts TrackOptions) ([]Affine, error) {
	if opts.Template == (Template{}) {
		opts.Template = DefaultTemplate()
	}
	if opts.Window == 0 {
		opts.Window = DefaultSmoothWindow
	}
	if opts.FirstFaceWithin == 0 {
		opts.FirstFaceWithin = DefaultFirstFaceWithin
	}
	if opts.Size <= 0 || opts.Window < 1 || opts.Window%2 == 0 || opts.FirstFaceWithin < 1 {
		return nil, fmt.Errorf("track faces: bad options %+v", opts)
	}
	if err := opts.Template.Validate(); err != nil {
		return nil, fmt.Errorf("track faces: %w", err)
	}

	// Each frame's transform as (centre of the crop in the frame, log scale,
	// angle): unlike the raw translation these do not couple with rotation,
	// so averaging them separately is meaningful.
	type pose struct{ cx, cy, logScale, angle float64 }
	poses := make([]pose, len(dets))
	have := make([]bool, len(dets))
	first := -1
	half := float64(opts.Size) / 2
	for i, d := range dets {
		if d == nil {
			continue
		}
		m, err := opts.Template.Transform(d.Keypoints, opts.Size)
		if err != nil {
			continue // degenerate keypoints: treat as a missed frame
		}
		inv, err := m.Invert()
		if err != nil {
			continue
		}
		c := inv.Apply(Point{half, half})
		s := SimilarityOf(m)
		poses[i] = pose{c.X, c.Y, math.Log(s.Scale), s.Angle}
		have[i] = true
		if first < 0 {
			first = i
		}
	}
	if len(dets) == 0 {
		return nil, joberr.New(joberr.NoFaceDetected, "the video has no frames to find a face in")
	}
	if first < 0 || first >= opts.FirstFaceWithin {
		return nil, joberr.New(joberr.NoFaceDetected, "no face found in the first %d frames of the video", min(len(dets), opts.FirstFaceWithin))
	}

	last := poses[first]
	for i := range poses {
		if have[i] {
			last = poses[i]
		} else {
			poses[i] = last
		}
		// Keep angles continuous so the average never straddles +-pi.
		if i > 0 {
			poses[i].angle = poses[i-1].angle + math.Remainder(poses[i].angle-poses[i-1].angle, 2*math.Pi)
		}
	}

	h := opts.Window / 2
	out := make([]Affine, len(poses))
	for i := range poses {
		lo, hi := max(0, i-h), min(len(poses)-1, i+h)
		var avg pose
		for j := lo; j <= hi; j++ {
			avg.cx += poses[j].cx
			avg.cy += poses[j].cy
			avg.logScale += poses[j].logScale
			avg.angle += poses[j].angle
		}
		n := float64(hi - lo + 1)
		s, a := math.Exp(avg.logScale/n), avg.angle/n
		cx, cy := avg.cx/n, avg.cy/n
		m := Similarity{Scale: s, Angle: a}.Affine()
		// Place the averaged centre at the crop's centre.
		m[2] = half - (m[0]*cx + m[1]*cy)
		m[5] = half - (m[3]*cx + m[4]*cy)
		out[i] = m
	}
	return out, nil
}
