package media_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/media"
	"github.com/latentsync/latentsync-service/internal/media/mediatest"
	"github.com/latentsync/latentsync-service/internal/raster"
)

// readAll decodes every frame the options select, copying each.
func readAll(t *testing.T, path string, opts media.DecodeOptions) []*raster.RGB {
	t.Helper()
	r, err := media.OpenFrames(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var frames []*raster.RGB
	buf := r.NewFrame()
	for {
		err := r.Next(buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("frame %d: %v", len(frames), err)
		}
		frames = append(frames, buf.Clone())
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return frames
}

func TestOpenFramesDecodes(t *testing.T) {
	mediatest.Require(t, "ffmpeg", "ffprobe")
	tests := []struct {
		name       string
		file       func(t *testing.T) string
		opts       media.DecodeOptions
		frames     int
		w, h       int
		firstIndex int // for indexed clips: the source frame shown first; -1 to skip
	}{
		{"2 s at 25 fps", func(t *testing.T) string { return mediatest.AVMP4(t) },
			media.DecodeOptions{}, 50, 320, 240, -1},
		{"rotated: displayed size", func(t *testing.T) string { return mediatest.RotatedMP4(t) },
			media.DecodeOptions{}, 50, 240, 320, -1},
		{"VP9 Matroska", func(t *testing.T) string { return mediatest.VP9MKV(t) },
			media.DecodeOptions{}, 50, 320, 240, -1},
		{"MaxFrames", func(t *testing.T) string { return mediatest.AVMP4(t) },
			media.DecodeOptions{MaxFrames: 7}, 7, 320, 240, -1},
		{"30 fps source resampled to 25", func(t *testing.T) string { return mediatest.IndexedMP4(t, 30, 2, 30) },
			media.DecodeOptions{}, 50, 64, 64, 0},
		{"StartFrame near the end", func(t *testing.T) string { return mediatest.IndexedMP4(t, 25, 2, 50) },
			media.DecodeOptions{StartFrame: 45}, 5, 64, 64, 45},
		{"StartFrame past the end", func(t *testing.T) string { return mediatest.IndexedMP4(t, 25, 2, 50) },
			media.DecodeOptions{StartFrame: 80}, 0, 64, 64, -1},
		{"FPS 10", func(t *testing.T) string { return mediatest.IndexedMP4(t, 25, 2, 50) },
			media.DecodeOptions{FPS: 10, StartFrame: 3, MaxFrames: 4}, 4, 64, 64, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			frames := readAll(t, tc.file(t), tc.opts)
			if len(frames) != tc.frames {
				t.Fatalf("decoded %d frames, want %d", len(frames), tc.frames)
			}
			for i, f := range frames {
				if f.W != tc.w || f.H != tc.h || f.Validate() != nil {
					t.Fatalf("frame %d is %dx%d with %d bytes, want %dx%d", i, f.W, f.H, len(f.Pix), tc.w, tc.h)
				}
			}
			if tc.firstIndex >= 0 && len(frames) > 0 {
				if got := mediatest.FrameIndex(frames[0]); got != tc.firstIndex {
					t.Errorf("first frame shows source frame %d, want %d", got, tc.firstIndex)
				}
			}
		})
	}
}

// TestSeekMatchesSequential is the contract bounce mode relies on: frame k
// opened directly is the frame k reached by reading from the start, for
// sources at the output rate and at other rates (where the fps filter drops
// or repeats frames), with B-frames and keyframes every 1-2 s.
func TestSeekMatchesSequential(t *testing.T) {
	mediatest.Require(t, "ffmpeg", "ffprobe")
	x264 := func(gop int) []string { return []string{"-c:v", "libx264", "-crf", "12", "-g", fmt.Sprint(gop)} }
	sources := []struct {
		name   string
		file   string
		fps    int
		codec  []string
		offset string // non-empty: remuxed to Matroska starting at this time
	}{
		{"25 fps H.264 gop 50", "a.mp4", 25, x264(50), ""}, // the brief's test video
		{"30 fps H.264", "a.mp4", 30, x264(30), ""},        // 30 -> 25 drops every sixth frame; ties in rounding
		{"24 fps H.264", "a.mp4", 24, x264(48), ""},        // 24 -> 25 repeats frames
		{"30 fps H.264 starting at 0.37 s", "a.mp4", 30, x264(60), "0.37"},
		{"30 fps HEVC open GOP", "a.mp4", 30, []string{"-c:v", "libx265", "-x265-params", "log-level=error:keyint=45:open-gop=1", "-crf", "12"}, ""},
		{"29.97 fps VP9 WebM", "a.webm", 30, []string{"-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-g", "40", "-r", "30000/1001"}, ""},
	}
	for i, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			if testing.Short() && i >= 2 {
				t.Skip("-short: the 25 and 30 fps H.264 sources only")
			}
			path := mediatest.Indexed(t, src.file, src.fps, 8, src.codec...)
			if src.offset != "" {
				path = mediatest.FFmpeg(t, "offset.mkv", "-i", path, "-c", "copy", "-output_ts_offset", src.offset)
			}
			seq := readAll(t, path, media.DecodeOptions{})
			if len(seq) != 200 {
				t.Fatalf("sequential decode gave %d frames, want 200", len(seq))
			}
			const block = 16
			for _, k := range []int{1, 13, 25, 49, 51, 123, 184, 199} {
				got := readAll(t, path, media.DecodeOptions{StartFrame: k, MaxFrames: block})
				want := seq[k:min(k+block, len(seq))]
				if len(got) != len(want) {
					t.Fatalf("StartFrame %d: %d frames, want %d", k, len(got), len(want))
				}
				for i := range got {
					gi, wi := mediatest.FrameIndex(got[i]), mediatest.FrameIndex(want[i])
					if gi != wi {
						t.Fatalf("frame %d via seek shows source frame %d, sequentially %d", k+i, gi, wi)
					}
					if d := meanAbsDiff(got[i], want[i]); d > 0.5 {
						t.Fatalf("frame %d via seek differs from sequential by %.2f per byte", k+i, d)
					}
				}
			}
		})
	}
}

func meanAbsDiff(a, b *raster.RGB) float64 {
	var sum int
	for i := range a.Pix {
		d := int(a.Pix[i]) - int(b.Pix[i])
		if d < 0 {
			d = -d
		}
		sum += d
	}
	return float64(sum) / float64(len(a.Pix))
}

func TestFrameReaderReusesBuffer(t *testing.T) {
	mediatest.Require(t, "ffmpeg", "ffprobe")
	r, err := media.OpenFrames(context.Background(), mediatest.AVMP4(t), media.DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := &raster.RGB{} // sized by the first Next
	if err := r.Next(buf); err != nil {
		t.Fatal(err)
	}
	pix := &buf.Pix[0]
	allocs := testing.AllocsPerRun(20, func() {
		if err := r.Next(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 || &buf.Pix[0] != pix {
		t.Errorf("Next allocated %.1f times per frame or replaced the buffer", allocs)
	}
}

func TestFrameReaderEnds(t *testing.T) {
	mediatest.Require(t, "ffmpeg", "ffprobe")
	tests := []struct {
		name string
		run  func(t *testing.T, r *media.FrameReader) error // returns what Close should report
		want joberr.Code
	}{
		{"EOF repeats after the end", func(t *testing.T, r *media.FrameReader) error {
			buf := r.NewFrame()
			for range 50 {
				if err := r.Next(buf); err != nil {
					t.Fatal(err)
				}
			}
			for range 2 {
				if err := r.Next(buf); !errors.Is(err, io.EOF) {
					t.Fatalf("Next after the end = %v, want io.EOF", err)
				}
			}
			return r.Close()
		}, ""},
		{"Close while ffmpeg runs is not an error", func(t *testing.T, r *media.FrameReader) error {
			if err := r.Next(r.NewFrame()); err != nil {
				t.Fatal(err)
			}
			return r.Close()
		}, ""},
		{"Close twice", func(t *testing.T, r *media.FrameReader) error {
			r.Close()
			return r.Close()
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := media.OpenFrames(context.Background(), mediatest.AVMP4(t), media.DecodeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if got := joberr.CodeOf(tc.run(t, r)); got != tc.want {
				t.Errorf("code = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFrameReaderFailures(t *testing.T) {
	mediatest.Require(t, "ffmpeg", "ffprobe")
	t.Run("damaged payload is CORRUPT_MEDIA from Next and Close", func(t *testing.T) {
		r, err := media.OpenFrames(context.Background(), mediatest.TruncatedFaststartMP4(t), media.DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		buf := r.NewFrame()
		for err == nil {
			err = r.Next(buf)
		}
		if joberr.CodeOf(err) != joberr.CorruptMedia || r.Frames() >= 100 {
			t.Fatalf("after %d frames Next = %v, want CORRUPT_MEDIA before frame 100", r.Frames(), err)
		}
		var tool *media.ToolError
		if !errors.As(err, &tool) || tool.Stderr == "" {
			t.Errorf("error %v does not carry ffmpeg's stderr", err)
		}
		if cerr := r.Close(); joberr.CodeOf(cerr) != joberr.CorruptMedia {
			t.Errorf("Close = %v, want the decode error", cerr)
		}
	})
	t.Run("cancel stops the decoder with CANCELED", func(t *testing.T) {
		path := mediatest.AVMP4(t)
		ctx, cancel := context.WithCancel(context.Background())
		r, err := media.OpenFrames(ctx, path, media.DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		buf := r.NewFrame()
		if err := r.Next(buf); err != nil {
			t.Fatal(err)
		}
		cancel()
		for err == nil {
			err = r.Next(buf)
		}
		if joberr.CodeOf(err) != joberr.Canceled {
			t.Errorf("Next after cancel = %v, want CANCELED", err)
		}
	})
	t.Run("audio-only input is NO_VIDEO_STREAM", func(t *testing.T) {
		_, err := media.OpenFrames(context.Background(), mediatest.AudioM4A(t), media.DecodeOptions{})
		if joberr.CodeOf(err) != joberr.NoVideoStream {
			t.Errorf("OpenFrames = %v, want NO_VIDEO_STREAM", err)
		}
	})
}
