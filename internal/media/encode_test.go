package media_test

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/media"
	"github.com/latentsync/latentsync-service/internal/media/mediatest"
	"github.com/latentsync/latentsync-service/internal/raster"
)

// gradient is a frame that changes with i, so frames are distinguishable.
func gradient(w, h, i int) *raster.RGB {
	img := raster.New(w, h)
	for y := range h {
		for x := range w {
			o := img.Offset(x, y)
			img.Pix[o] = byte(x * 255 / w)
			img.Pix[o+1] = byte(y * 255 / h)
			img.Pix[o+2] = byte(i * 5)
		}
	}
	return img
}

func encode(t *testing.T, out string, opts media.EncodeOptions, frames int) error {
	t.Helper()
	enc, err := media.CreateEncoder(context.Background(), out, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Abort()
	for i := range frames {
		if err := enc.Write(gradient(opts.Width, opts.Height, i)); err != nil {
			t.Fatalf("Write %d: %v", i, err)
		}
	}
	return enc.Close()
}

func TestEncoderRoundTrip(t *testing.T) {
	mediatest.Require(t, "ffmpeg", "ffprobe", "espeak-ng")
	speech := mediatest.SpeechWAV(t, "the quick brown fox jumps over the lazy dog, twice over") // ~3 s
	tests := []struct {
		name       string
		w, h       int
		frames     int
		audio      string
		wantW      int
		wantH      int
		wantAudio  bool
		speechLong bool
	}{
		{"audio longer than video is cut", 320, 240, 50, speech, 320, 240, true, true},
		{"audio shorter than video is padded", 160, 120, 150, speech, 160, 120, true, false},
		{"video only", 128, 96, 25, "", 128, 96, false, false},
		{"odd sides are padded to even", 161, 121, 10, speech, 162, 122, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			out := filepath.Join(t.TempDir(), "result.mp4")
			if err := encode(t, out, media.EncodeOptions{Width: tc.w, Height: tc.h, AudioPath: tc.audio, Frames: tc.frames}, tc.frames); err != nil {
				t.Fatal(err)
			}
			if tc.audio != "" {
				ainfo, err := media.Probe(ctx, tc.audio)
				if err != nil {
					t.Fatal(err)
				}
				if long := ainfo.Duration > time.Duration(tc.frames)*40*time.Millisecond; long != tc.speechLong {
					t.Fatalf("fixture: speech is %s, test assumes longer = %v", ainfo.Duration, tc.speechLong)
				}
			}
			info, err := media.Probe(ctx, out)
			if err != nil {
				t.Fatal(err)
			}
			want := time.Duration(tc.frames) * 40 * time.Millisecond
			v := info.Video
			if info.Container != "mp4" || v == nil || v.Codec != "h264" || v.PixFmt != "yuv420p" ||
				v.Width != tc.wantW || v.Height != tc.wantH || v.FrameRate != (media.Rational{Num: 25, Den: 1}) ||
				v.Frames != int64(tc.frames) {
				t.Errorf("video = %+v, want h264 yuv420p %dx%d 25/1 with %d frames", v, tc.wantW, tc.wantH, tc.frames)
			}
			if a := info.Audio; (a != nil) != tc.wantAudio || (a != nil && (a.Codec != "aac" || !within(a.Duration, want, 40*time.Millisecond))) {
				t.Errorf("audio = %+v, want AAC of %s (within a frame): %v", a, want, tc.wantAudio)
			}
			if a := info.Audio; a != nil {
				t.Logf("duration %s, audio %s, want %s", info.Duration, a.Duration, want)
			}
			if !within(info.Duration, want, 40*time.Millisecond) {
				t.Errorf("duration = %s, want %s within a frame", info.Duration, want)
			}
			if !moovBeforeMdat(t, out) {
				t.Error("index is not at the front (+faststart)")
			}
			onlyFile(t, out)

			frames := readAll(t, out, media.DecodeOptions{})
			if len(frames) != tc.frames {
				t.Fatalf("decoded %d frames, want %d", len(frames), tc.frames)
			}
			for _, i := range []int{0, tc.frames - 1} {
				got, src := frames[i], gradient(tc.w, tc.h, i)
				d := meanAbsDiffCrop(got, src)
				t.Logf("frame %d: mean abs difference %.2f", i, d)
				if d > 3 {
					t.Errorf("frame %d differs from what was written by %.2f per byte", i, d)
				}
			}
		})
	}
}

func within(got, want, tol time.Duration) bool { return got >= want-tol && got <= want+tol }

// meanAbsDiffCrop compares the top-left overlap of a and b.
func meanAbsDiffCrop(a, b *raster.RGB) float64 {
	var sum, n int
	for y := range min(a.H, b.H) {
		for x := range min(a.W, b.W) {
			for c := range 3 {
				d := int(a.Pix[a.Offset(x, y)+c]) - int(b.Pix[b.Offset(x, y)+c])
				sum += max(d, -d)
				n++
			}
		}
	}
	return float64(sum) / float64(n)
}

// moovBeforeMdat walks the MP4's top-level boxes.
func moovBeforeMdat(t *testing.T, path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off+8 <= len(b); {
		size := int(binary.BigEndian.Uint32(b[off:]))
		switch string(b[off+4 : off+8]) {
		case "moov":
			return true
		case "mdat":
			return false
		}
		if size < 8 {
			return false
		}
		off += size
	}
	return false
}

// onlyFile fails when path's directory holds anything besides path
// (a temporary file left behind).
func onlyFile(t *testing.T, path string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != filepath.Base(path) {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func TestEncoderLeavesNothingOnFailure(t *testing.T) {
	mediatest.Require(t, "ffmpeg", "ffprobe")
	tests := []struct {
		name string
		run  func(t *testing.T, enc *media.Encoder) error
	}{
		{"Abort mid-stream", func(t *testing.T, enc *media.Encoder) error {
			for i := range 10 {
				if err := enc.Write(gradient(64, 48, i)); err != nil {
					t.Fatal(err)
				}
			}
			enc.Abort()
			return enc.Close()
		}},
		{"Abort before any frame", func(t *testing.T, enc *media.Encoder) error {
			enc.Abort()
			enc.Abort()
			return enc.Write(gradient(64, 48, 0))
		}},
		{"fewer frames than announced", func(t *testing.T, enc *media.Encoder) error {
			for i := range 5 {
				if err := enc.Write(gradient(64, 48, i)); err != nil {
					t.Fatal(err)
				}
			}
			return enc.Close()
		}},
		{"no frames", func(t *testing.T, enc *media.Encoder) error { return enc.Close() }},
		{"wrong frame size", func(t *testing.T, enc *media.Encoder) error {
			if err := enc.Write(gradient(48, 64, 0)); err == nil {
				t.Error("Write accepted a 48x64 frame for a 64x48 encoder")
			}
			return enc.Close()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "result.mp4")
			enc, err := media.CreateEncoder(context.Background(), out, media.EncodeOptions{Width: 64, Height: 48, Frames: 10})
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.run(t, enc); err == nil {
				t.Error("the failing sequence reported success")
			}
			enc.Abort()
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("left behind: %v", entries)
			}
		})
	}
}

func TestEncoderCancel(t *testing.T) {
	mediatest.Require(t, "ffmpeg")
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	enc, err := media.CreateEncoder(ctx, filepath.Join(dir, "result.mp4"), media.EncodeOptions{Width: 64, Height: 48})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Abort()
	if err := enc.Write(gradient(64, 48, 0)); err != nil {
		t.Fatal(err)
	}
	cancel()
	// The kill is asynchronous: writes fail once ffmpeg is gone, Close at the latest.
	for i := 1; err == nil && i < 1000; i++ {
		err = enc.Write(gradient(64, 48, i))
	}
	if err == nil {
		err = enc.Close()
	}
	if joberr.CodeOf(err) != joberr.Canceled {
		t.Errorf("after cancel: %v, want CANCELED", err)
	}
	enc.Abort()
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}

func TestEncoderKeepsOutputAfterClose(t *testing.T) {
	mediatest.Require(t, "ffmpeg")
	out := filepath.Join(t.TempDir(), "result.mp4")
	enc, err := media.CreateEncoder(context.Background(), out, media.EncodeOptions{Width: 64, Height: 48})
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.Write(gradient(64, 48, 0)); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	enc.Abort() // the deferred-Abort pattern must not undo a finished file
	if st, err := os.Stat(out); err != nil || st.Size() == 0 || st.Mode().Perm() != 0o644 {
		t.Errorf("output after Close+Abort: %v %v", st, err)
	}
}
