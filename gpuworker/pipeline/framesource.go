package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/latentsync/latentsync-service/internal/media"
	"github.com/latentsync/latentsync-service/internal/raster"
)

// frameSource serves video frames by index while holding at most one block
// of frames: forward runs stream from one ffmpeg process; the backward runs
// of bounce mode decode a block ending at the wanted frame and play it in
// reverse.
type frameSource struct {
	info        *media.Info
	w, h        int
	count, fps  int
	blockFrames int

	r       *media.FrameReader
	next    int  // index the open reader delivers next
	bounded bool // the open reader stops at the end of a block

	block      []*raster.RGB
	blockStart int
	blockLen   int
}

func newFrameSource(info *media.Info, count, fps int, mode SyncMode) *frameSource {
	w, h := info.Video.Width, info.Video.Height
	s := &frameSource{info: info, w: w, h: h, count: count, fps: fps, blockFrames: 16}
	if mode == Bounce {
		s.block = make([]*raster.RGB, s.blockFrames)
		for i := range s.block {
			s.block[i] = raster.New(w, h)
		}
	}
	return s
}

// Frame copies frame i into dst.
func (s *frameSource) Frame(ctx context.Context, i int, dst *raster.RGB) error {
	if i < 0 || i >= s.count {
		return fmt.Errorf("frame %d outside the video's %d frames", i, s.count)
	}
	if s.blockLen > 0 && i >= s.blockStart && i < s.blockStart+s.blockLen {
		copy(dst.Pix, s.block[i-s.blockStart].Pix)
		return nil
	}
	if s.r != nil && !s.bounded && i >= s.next && i < s.next+s.blockFrames {
		return s.readForward(i, dst)
	}
	if s.block != nil && s.r != nil && i < s.next {
		return s.loadBlockEndingAt(ctx, i, dst)
	}
	if err := s.reopen(ctx, i, 0); err != nil {
		return err
	}
	return s.readForward(i, dst)
}

func (s *frameSource) readForward(i int, dst *raster.RGB) error {
	for s.next <= i {
		err := s.r.Next(dst)
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("video ended at frame %d, before frame %d", s.next, i)
		}
		if err != nil {
			return fmt.Errorf("decode frame %d: %w", s.next, err)
		}
		s.next++
	}
	return nil
}

func (s *frameSource) loadBlockEndingAt(ctx context.Context, i int, dst *raster.RGB) error {
	start := max(0, i-s.blockFrames+1)
	if err := s.reopen(ctx, start, i-start+1); err != nil {
		return err
	}
	for k := 0; start+k <= i; k++ {
		if err := s.readForward(start+k, s.block[k]); err != nil {
			return err
		}
	}
	s.blockStart, s.blockLen = start, i-start+1
	copy(dst.Pix, s.block[i-start].Pix)
	return nil
}

func (s *frameSource) reopen(ctx context.Context, start, maxFrames int) error {
	if s.r != nil {
		s.r.Close()
		s.r = nil
	}
	r, err := media.OpenProbed(ctx, s.info, media.DecodeOptions{FPS: s.fps, StartFrame: start, MaxFrames: maxFrames})
	if err != nil {
		return err
	}
	s.r, s.next, s.bounded = r, start, maxFrames > 0
	return nil
}

// Close stops any running decoder.
func (s *frameSource) Close() {
	if s.r != nil {
		s.r.Close()
		s.r = nil
	}
}
