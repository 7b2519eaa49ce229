package pipeline

import (
	"context"
	"fmt"
	"image"
	"math"

	"github.com/latentsync/latentsync-service/gpuworker/audio"
	"github.com/latentsync/latentsync-service/gpuworker/face"
	"github.com/latentsync/latentsync-service/gpuworker/infer"
	"github.com/latentsync/latentsync-service/internal/quality"
	"github.com/latentsync/latentsync-service/internal/raster"
)

// Quality metrics measured on every job while its frames stream through.
const (
	// SyncMaxShift is the SyncNet evaluation's offset range, in frames either way.
	SyncMaxShift = 15
	// DefaultMinPreservedSSIM is the preserved-region SSIM below which a job
	// carries WarnLowPreservation.
	DefaultMinPreservedSSIM = 0.9
	// WarnLowPreservation: the regions that must not change did (a broken
	// paste-back: wrong transform, alpha or crop).
	WarnLowPreservation = "LOW_PRESERVATION"

	ssimEvery     = 8  // SSIM on every 8th frame at most...
	ssimMaxFrames = 64 // ...and on no more than 64 frames per job
)

// syncContract is the bundle's SyncNet as the pipeline uses it (Wav2Lip's
// colour SyncNet layout): video [batch, 3*frames, h, w], the lower half of
// frames consecutive face crops stacked frame-major on channels, in [-1, 1];
// audio [batch, 1, mels, frames*melPerFrame], Whisper's log-mel of the same
// span; outputs one embedding of dim values per window for each.
type syncContract struct {
	s                   *infer.Session
	videoIn, audioIn    string
	videoOut, audioOut  string
	frames, h, w        int
	melPerFrame, melLen int
	dim                 int
}

func newSyncContract(s *infer.Session, fps int) (*syncContract, error) {
	find := func(infos []infer.TensorInfo, name string, rank int) ([]int64, error) {
		for _, t := range infos {
			if t.Name == name {
				if len(t.Shape) != rank || t.DType != infer.Float32 {
					return nil, fmt.Errorf("%s is %s %v, want a float32 tensor of rank %d", name, t.DType, t.Shape, rank)
				}
				for _, d := range t.Shape[1:] {
					if d <= 0 {
						return nil, fmt.Errorf("%s has shape %v: only the batch may vary", name, t.Shape)
					}
				}
				return t.Shape, nil
			}
		}
		return nil, fmt.Errorf("no tensor named %s", name)
	}
	c := &syncContract{s: s, videoIn: "video", audioIn: "audio", videoOut: "video_embedding", audioOut: "audio_embedding"}
	v, err := find(s.Inputs(), c.videoIn, 4)
	if err != nil {
		return nil, err
	}
	a, err := find(s.Inputs(), c.audioIn, 4)
	if err != nil {
		return nil, err
	}
	ve, err := find(s.Outputs(), c.videoOut, 2)
	if err != nil {
		return nil, err
	}
	ae, err := find(s.Outputs(), c.audioOut, 2)
	if err != nil {
		return nil, err
	}
	if v[1]%3 != 0 || a[1] != 1 || a[2] != audio.NMels || ve[1] != ae[1] {
		return nil, fmt.Errorf("video %v, audio %v, embeddings %v and %v: want [b,3*frames,h,w], [b,1,%d,t] and equal embedding sizes",
			v, a, ve, ae, audio.NMels)
	}
	c.frames, c.h, c.w, c.melLen, c.dim = int(v[1]/3), int(v[2]), int(v[3]), int(a[3]), int(ve[1])
	melRate := audio.SampleRate / audio.HopLength
	if fps <= 0 || melRate%fps != 0 || c.melLen != c.frames*melRate/fps {
		return nil, fmt.Errorf("audio window of %d mel frames does not span %d video frames at %d fps (%d mel frames/s)", c.melLen, c.frames, fps, melRate)
	}
	c.melPerFrame = melRate / fps
	return c, nil
}

// warm runs the SyncNet once on one silent, grey window.
func (c *syncContract) warm(ctx context.Context) error {
	_, err := c.s.Run(ctx, map[string]infer.Tensor{
		c.videoIn: {Shape: []int64{1, int64(3 * c.frames), int64(c.h), int64(c.w)}, Float: make([]float32, 3*c.frames*c.h*c.w)},
		c.audioIn: {Shape: []int64{1, 1, audio.NMels, int64(c.melLen)}, Float: make([]float32, audio.NMels*c.melLen)},
	})
	return err
}

// syncMeter embeds the output's mouth windows and the matching speech with
// the SyncNet as chunks are produced. It keeps the embeddings (dim floats
// per window, two per frame) and the clip's log-mel (80 floats per 10 ms,
// less than the decoded speech the job holds anyway), never the frames: a
// ring of frames-1 mouth crops bridges chunks.
type syncMeter struct {
	c       *syncContract
	res     int
	samples []float32
	total   int       // output frames
	mel     []float32 // [mels][melFrames], made at the first chunk
	crops   []float32 // consecutive mouth crops, oldest first
	held    int       // crops in the buffer
	first   int       // output frame of crops[0]
	video   []float32 // embeddings, dim per window
	audio   []float32
	vbatch  []float32
	abatch  []float32
}

// newSyncMeter returns nil when the job is too short for the offset search.
func newSyncMeter(c *syncContract, res, chunk, total int, samples []float32) *syncMeter {
	if c == nil || total-c.frames+1 <= SyncMaxShift {
		return nil
	}
	crop := 3 * c.h * c.w
	windows := total - c.frames + 1
	return &syncMeter{
		c: c, res: res, samples: samples, total: total,
		crops:  make([]float32, (c.frames-1+chunk)*crop),
		video:  make([]float32, 0, windows*c.dim),
		audio:  make([]float32, 0, windows*c.dim),
		vbatch: make([]float32, chunk*c.frames*crop),
		abatch: make([]float32, chunk*audio.NMels*c.melLen),
	}
}

// add takes the next n generated face crops (CHW, [-1, 1], res*res planes)
// and embeds every window they complete.
func (m *syncMeter) add(ctx context.Context, faces []float32, n int) error {
	c := m.c
	if m.mel == nil {
		// Output frame i starts at mel frame melPerFrame*i; the clip's mel
		// is padded with silence (or cut) to the frames shown.
		m.mel = audio.NewMel().LogMelFrames(nil, m.samples, max(2, m.total*c.melPerFrame))
		m.samples = nil
	}
	crop, plane := 3*c.h*c.w, m.res*m.res
	for j := range n {
		mouthCrop(faces[j*3*plane:(j+1)*3*plane], m.res, c.h, c.w, m.crops[(m.held+j)*crop:(m.held+j+1)*crop])
	}
	m.held += n
	windows := m.held - c.frames + 1
	if windows > 0 {
		melFrames := len(m.mel) / audio.NMels
		for k := range windows {
			// Stacked frame-major: the crops of a window lie back to back.
			copy(m.vbatch[k*c.frames*crop:(k+1)*c.frames*crop], m.crops[k*crop:(k+c.frames)*crop])
			start := (m.first + k) * c.melPerFrame
			dst := m.abatch[k*audio.NMels*c.melLen:]
			for b := range audio.NMels {
				copy(dst[b*c.melLen:(b+1)*c.melLen], m.mel[b*melFrames+start:b*melFrames+start+c.melLen])
			}
		}
		out, err := c.s.Run(ctx, map[string]infer.Tensor{
			c.videoIn: {Shape: []int64{int64(windows), int64(3 * c.frames), int64(c.h), int64(c.w)}, Float: m.vbatch[:windows*c.frames*crop]},
			c.audioIn: {Shape: []int64{int64(windows), 1, audio.NMels, int64(c.melLen)}, Float: m.abatch[:windows*audio.NMels*c.melLen]},
		})
		if err != nil {
			return fmt.Errorf("SyncNet on windows %d-%d: %w", m.first, m.first+windows-1, err)
		}
		v, a := out[c.videoOut].Float, out[c.audioOut].Float
		if len(v) != windows*c.dim || len(a) != windows*c.dim {
			return fmt.Errorf("SyncNet returned %d and %d values for %d windows of %d", len(v), len(a), windows, c.dim)
		}
		m.video, m.audio = append(m.video, v...), append(m.audio, a...)
		// Keep the last frames-1 crops: the start of the next windows.
		copy(m.crops, m.crops[windows*crop:m.held*crop])
		m.held -= windows
		m.first += windows
	}
	return nil
}

// result is the SyncNet evaluation over the whole clip.
func (m *syncMeter) result() (offset int, confidence float64, err error) {
	split := func(e []float32) [][]float32 {
		out := make([][]float32, len(e)/m.c.dim)
		for i := range out {
			out[i] = e[i*m.c.dim : (i+1)*m.c.dim]
		}
		return out
	}
	offset, confidence, _, err = quality.SyncOffset(split(m.video), split(m.audio), SyncMaxShift)
	return offset, confidence, err
}

// mouthCrop box-filters the lower half of a res x res face crop (CHW) into
// a CHW h x w crop clamped to [-1, 1]: the region Wav2Lip-style SyncNets
// see (nose to chin), which holds the whole mouth mask's moving part.
func mouthCrop(faceCHW []float32, res, h, w int, dst []float32) {
	top, rows := res/2, res-res/2
	span := func(i, out, in int) (int, int) {
		a, b := i*in/out, (i+1)*in/out
		return a, max(b, a+1)
	}
	for c := range 3 {
		src := faceCHW[c*res*res : (c+1)*res*res]
		for oy := range h {
			y0, y1 := span(oy, h, rows)
			for ox := range w {
				x0, x1 := span(ox, w, res)
				var s float32
				for y := top + y0; y < top+y1; y++ {
					for _, v := range src[y*res+x0 : y*res+x1] {
						s += v
					}
				}
				v := s / float32((y1-y0)*(x1-x0))
				dst[(c*h+oy)*w+ox] = min(1, max(-1, v))
			}
		}
	}
}

// ssimMeter compares sampled output frames with their input before
// blending, before H.264 (compression loss is the encoder's and the same
// everywhere), over the face crop's box in the frame: outside it the output
// is the input bit for bit by construction, and counting it would pull the
// score towards 1 the smaller the face, hiding a broken paste-back.
// "Preserved" is every window centred outside the mouth rectangle mapped
// into the frame, where a correct blend's alpha is 0; "overall" the whole box.
type ssimMeter struct {
	every int
	res   int
	mouth image.Rectangle // crop pixels
	pool  []*raster.RGB
	held  []heldFrame

	kept, all float64
	n         int
}

func newSSIMMeter(res int, mouth image.Rectangle, chunk, total, w, h int) *ssimMeter {
	every := max(ssimEvery, int(math.Ceil(float64(total)/ssimMaxFrames)))
	pool := make([]*raster.RGB, (chunk+every-1)/every)
	for i := range pool {
		pool[i] = raster.New(w, h)
	}
	return &ssimMeter{every: every, res: res, mouth: mouth, pool: pool}
}

// heldFrame is the input of frame j of the current chunk.
type heldFrame struct {
	j  int
	in *raster.RGB
}

// hold copies the sampled frames of the chunk starting at output frame start.
func (m *ssimMeter) hold(start int, frames []*raster.RGB) {
	m.held = m.held[:0]
	for j, f := range frames {
		if k := len(m.held); (start+j)%m.every == 0 && k < len(m.pool) {
			copy(m.pool[k].Pix, f.Pix)
			m.held = append(m.held, heldFrame{j, m.pool[k]})
		}
	}
}

// measure scores the held frames against their blended outputs.
func (m *ssimMeter) measure(frames []*raster.RGB, ms []face.Affine) error {
	for _, h := range m.held {
		j, in := h.j, h.in
		inv, err := ms[j].Invert()
		if err != nil {
			return fmt.Errorf("frame transform: %w", err)
		}
		box := cropBox(inv, m.res).Intersect(image.Rect(0, 0, in.W, in.H))
		fm := ms[j]
		mouth := m.mouth
		keep := func(x, y int) bool {
			p := fm.Apply(face.Point{X: float64(x) + 0.5, Y: float64(y) + 0.5})
			return p.X < float64(mouth.Min.X) || p.X >= float64(mouth.Max.X) ||
				p.Y < float64(mouth.Min.Y) || p.Y >= float64(mouth.Max.Y)
		}
		kept, all, err := quality.SSIMMasked(in, frames[j], box, keep)
		if err != nil {
			return err
		}
		m.kept += kept
		m.all += all
		m.n++
	}
	return nil
}

// cropBox is the frame-pixel bounding box of the res x res crop square
// under inv (crop -> frame).
func cropBox(inv face.Affine, res int) image.Rectangle {
	s := float64(res)
	x0, y0, x1, y1 := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, c := range []face.Point{{X: 0, Y: 0}, {X: s, Y: 0}, {X: 0, Y: s}, {X: s, Y: s}} {
		p := inv.Apply(c)
		x0, y0 = math.Min(x0, p.X), math.Min(y0, p.Y)
		x1, y1 = math.Max(x1, p.X), math.Max(y1, p.Y)
	}
	// Clamped as floats: a crop far outside must not overflow int.
	const lim = 1 << 30
	clampI := func(v float64) int { return int(math.Max(-lim, math.Min(lim, v))) }
	return image.Rect(clampI(math.Floor(x0)), clampI(math.Floor(y0)), clampI(math.Ceil(x1)), clampI(math.Ceil(y1)))
}
