package evalbundle

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/latentsync/latentsync-service/internal/media"
	"github.com/latentsync/latentsync-service/internal/raster"
)

// Batch sizes: small enough to keep host memory flat, large enough that the
// per-call overhead of ONNX Runtime does not dominate.
const (
	imageBatch = 16
	clipBatch  = 4
)

// Sampling chooses which frames of a video are measured.
type Sampling struct {
	FrameStride int // every FrameStride-th frame goes to the image network; 0 means 4
	ClipStride  int // a clip starts every ClipStride frames; 0 means the clip length (no overlap)
	MaxFrames   int // decode at most this many frames; 0 means all
}

// DefaultFrameStride is the default spacing of the frames FID measures:
// consecutive frames are nearly identical, so every 4th carries the same
// information for a quarter of the work.
const DefaultFrameStride = 4

// Features are the feature vectors of one video.
type Features struct {
	Frames int         // frames decoded (at 25 fps)
	Images [][]float32 // one per sampled frame
	Clips  [][]float32 // one per whole clip
}

// VideoFeatures decodes path at 25 fps and returns the image features of the
// sampled frames and the clip features of every whole clip. Frames are
// streamed: only the frames of the clips being assembled and one batch are
// held, whatever the video's length.
func (b *Bundle) VideoFeatures(ctx context.Context, path string, s Sampling) (*Features, error) {
	g := b.Geometry
	if s.FrameStride == 0 {
		s.FrameStride = DefaultFrameStride
	}
	if s.ClipStride == 0 {
		s.ClipStride = g.ClipFrames
	}
	if s.FrameStride < 0 || s.ClipStride < 0 || s.MaxFrames < 0 {
		return nil, fmt.Errorf("features of %s: negative value in %+v", path, s)
	}
	r, err := media.OpenFrames(ctx, path, media.DecodeOptions{MaxFrames: s.MaxFrames})
	if err != nil {
		return nil, err
	}
	defer r.Close()

	out := &Features{}
	imgSide, clipSide := g.ImageSide, g.ClipSide
	var (
		images  []float32   // pending image batch, [n,3,S,S]
		clips   []float32   // pending clip batch, [n,3,T,S,S]
		window  [][]float32 // the last ClipFrames frames at clip size, planar RGB
		nImages int
		nClips  int
	)
	flushImages := func() error {
		if nImages == 0 {
			return nil
		}
		rows, err := run(ctx, b.inception, []int64{int64(nImages), 3, int64(imgSide), int64(imgSide)}, images, g.ImageFeatures)
		if err != nil {
			return err
		}
		out.Images = append(out.Images, rows...)
		images, nImages = images[:0], 0
		return nil
	}
	flushClips := func() error {
		if nClips == 0 {
			return nil
		}
		shape := []int64{int64(nClips), 3, int64(g.ClipFrames), int64(clipSide), int64(clipSide)}
		rows, err := run(ctx, b.i3d, shape, clips, g.ClipFeatures)
		if err != nil {
			return err
		}
		out.Clips = append(out.Clips, rows...)
		clips, nClips = clips[:0], 0
		return nil
	}

	frame := r.NewFrame()
	for i := 0; ; i++ {
		err := r.Next(frame)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		out.Frames++
		if i%s.FrameStride == 0 {
			images = append(images, Planar(Resize(frame, imgSide, imgSide))...)
			if nImages++; nImages == imageBatch {
				if err := flushImages(); err != nil {
					return nil, err
				}
			}
		}
		if len(window) == g.ClipFrames {
			window = window[1:]
		}
		window = append(window, Planar(Resize(frame, clipSide, clipSide)))
		if start := i + 1 - g.ClipFrames; start >= 0 && start%s.ClipStride == 0 {
			clips = appendClip(clips, window, clipSide*clipSide)
			if nClips++; nClips == clipBatch {
				if err := flushClips(); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := flushImages(); err != nil {
		return nil, err
	}
	if err := flushClips(); err != nil {
		return nil, err
	}
	return out, nil
}

// appendClip lays out T planar frames as [3,T,S,S]: channel, then time.
func appendClip(dst []float32, frames [][]float32, plane int) []float32 {
	for c := range 3 {
		for _, f := range frames {
			dst = append(dst, f[c*plane:(c+1)*plane]...)
		}
	}
	return dst
}

// Planar converts an image to [3,H,W] floats in [-1,1], the networks' input.
func Planar(m *raster.RGB) []float32 {
	plane := m.W * m.H
	out := make([]float32, 3*plane)
	for i := range plane {
		for c := range 3 {
			out[c*plane+i] = float32(m.Pix[3*i+c])/127.5 - 1
		}
	}
	return out
}

// Resize scales src to w x h by averaging the source pixels each output
// pixel covers (box filter): downscaling by large factors does not alias, so
// fine noise is measured as the texture it is rather than as random
// samples of it. Upscaling repeats pixels.
func Resize(src *raster.RGB, w, h int) *raster.RGB {
	dst := raster.New(w, h)
	for oy := range h {
		y0, y1 := span(oy, h, src.H)
		for ox := range w {
			x0, x1 := span(ox, w, src.W)
			var sum [3]int
			for y := y0; y < y1; y++ {
				row := src.Pix[3*(y*src.W+x0) : 3*(y*src.W+x1)]
				for k := 0; k < len(row); k += 3 {
					sum[0] += int(row[k])
					sum[1] += int(row[k+1])
					sum[2] += int(row[k+2])
				}
			}
			n := (y1 - y0) * (x1 - x0)
			o := dst.Offset(ox, oy)
			for c := range 3 {
				dst.Pix[o+c] = byte((sum[c] + n/2) / n)
			}
		}
	}
	return dst
}

// span is the half-open range of source indices that output index o of n
// covers in a source of size src; never empty.
func span(o, n, src int) (int, int) {
	a := o * src / n
	b := (o + 1) * src / n
	if b <= a {
		b = a + 1
	}
	return a, min(b, src)
}
