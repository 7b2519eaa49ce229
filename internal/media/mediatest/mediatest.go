// Package mediatest generates small media files for tests with ffmpeg and
// espeak-ng, each into the test's own t.TempDir(). A test is skipped when a
// tool it needs is not installed.
package mediatest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/latentsync/latentsync-service/internal/raster"
)

// Require skips t unless every tool is on PATH.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
}

// FFmpeg runs ffmpeg with args followed by an output file called name in a
// new temporary directory, and returns the output's path.
func FFmpeg(t testing.TB, name string, args ...string) string {
	t.Helper()
	Require(t, "ffmpeg")
	out := filepath.Join(t.TempDir(), name)
	args = append([]string{"-nostdin", "-v", "error", "-y"}, append(args, out)...)
	if b, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out
}

// Clip describes a synthetic test clip (ffmpeg's testsrc2 pattern and a tone).
type Clip struct {
	W, H    int
	Seconds float64
	FPS     int  // 0 means 25
	GOP     int  // keyframe interval in frames; 0 means 50
	Audio   bool // add a 440 Hz AAC tone as long as the video
}

// MP4 writes an H.264 (+ AAC) MP4 with its index at the end, as ffmpeg
// writes by default.
func MP4(t testing.TB, c Clip) string {
	t.Helper()
	return FFmpeg(t, "clip.mp4", c.args("-c:v", "libx264")...)
}

func (c Clip) args(codec ...string) []string {
	if c.FPS == 0 {
		c.FPS = 25
	}
	if c.GOP == 0 {
		c.GOP = 50
	}
	secs := strconv.FormatFloat(c.Seconds, 'f', -1, 64)
	args := []string{"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", c.W, c.H, c.FPS)}
	if c.Audio {
		args = append(args, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000")
	}
	args = append(args, "-t", secs)
	args = append(args, codec...)
	args = append(args, "-g", strconv.Itoa(c.GOP), "-pix_fmt", "yuv420p")
	if c.Audio {
		args = append(args, "-c:a", "aac")
	}
	return args
}

// AVMP4 is a 2 s 320x240 H.264 + AAC MP4 at 25 fps (50 frames).
func AVMP4(t testing.TB) string {
	t.Helper()
	return MP4(t, Clip{W: 320, H: 240, Seconds: 2, Audio: true})
}

// VideoOnlyMP4 is AVMP4 without its audio stream.
func VideoOnlyMP4(t testing.TB) string {
	t.Helper()
	return MP4(t, Clip{W: 320, H: 240, Seconds: 2})
}

// AudioM4A is 2 s of AAC tone in an M4A.
func AudioM4A(t testing.TB) string {
	t.Helper()
	return FFmpeg(t, "tone.m4a", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "2", "-c:a", "aac")
}

// SpeechWAV synthesises text with espeak-ng into a 16-bit PCM WAV (22.05 kHz mono).
func SpeechWAV(t testing.TB, text string) string {
	t.Helper()
	Require(t, "espeak-ng")
	out := filepath.Join(t.TempDir(), "speech.wav")
	if b, err := exec.Command("espeak-ng", "-v", "en-us", "-w", out, text).CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v\n%s", err, b)
	}
	return out
}

// VP9MKV is a 2 s 320x240 VP9 + Opus Matroska file.
func VP9MKV(t testing.TB) string {
	t.Helper()
	return FFmpeg(t, "clip.mkv", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "2",
		"-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k", "-c:a", "libopus")
}

// RotatedMP4 is a 2 s 320x240 H.264 MP4 whose display matrix turns it by 90
// degrees: players (and the decoder) show 240x320.
func RotatedMP4(t testing.TB) string {
	t.Helper()
	src := VideoOnlyMP4(t)
	return FFmpeg(t, "rotated.mp4", "-i", src, "-c", "copy", "-metadata:s:v:0", "rotate=90")
}

// TruncatedMP4 is AVMP4 cut in half: its moov box, written last, is lost.
func TruncatedMP4(t testing.TB) string {
	t.Helper()
	return truncate(t, MP4(t, Clip{W: 320, H: 240, Seconds: 4, Audio: true}), 0.5)
}

// TruncatedFaststartMP4 has its moov box first and loses the last 40 % of
// its media data: it probes as a whole file but its end cannot be decoded.
func TruncatedFaststartMP4(t testing.TB) string {
	t.Helper()
	src := MP4(t, Clip{W: 320, H: 240, Seconds: 4, Audio: true})
	fs := FFmpeg(t, "faststart.mp4", "-i", src, "-c", "copy", "-movflags", "+faststart")
	return truncate(t, fs, 0.6)
}

// TruncatedWebM is a 4 s VP9 WebM cut in half: Matroska needs no index, so
// it probes with its full stated duration.
func TruncatedWebM(t testing.TB) string {
	t.Helper()
	src := FFmpeg(t, "clip.webm", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "4",
		"-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k", "-c:a", "libopus")
	return truncate(t, src, 0.5)
}

// TextAsMP4 is a text file named like a video.
func TextAsMP4(t testing.TB) string {
	t.Helper()
	return writeFile(t, "notes.mp4", []byte("These are my meeting notes, not a video.\n"))
}

// Empty is a zero-byte file named like a video.
func Empty(t testing.TB) string {
	t.Helper()
	return writeFile(t, "empty.mp4", nil)
}

// Indexed frames show their source frame number as 16 bits, one black or
// white 16x16 cell per bit on a 4x4 grid, so a decoded frame names itself
// despite lossy compression.
const (
	IndexedSize = 64
	indexCell   = 16
)

// IndexedMP4 is an H.264 MP4 of seconds at fps with a keyframe every gop
// frames, whose frame n shows n (see FrameIndex).
func IndexedMP4(t testing.TB, fps int, seconds float64, gop int) string {
	t.Helper()
	return Indexed(t, fmt.Sprintf("indexed%d.mp4", fps), fps, seconds,
		"-c:v", "libx264", "-crf", "12", "-g", strconv.Itoa(gop))
}

// Indexed writes the frame-numbered pattern to name with the given codec
// arguments; the container follows name's extension.
func Indexed(t testing.TB, name string, fps int, seconds float64, codec ...string) string {
	t.Helper()
	bit := fmt.Sprintf("(floor(X/%d)+4*floor(Y/%d))", indexCell, indexCell)
	src := fmt.Sprintf("color=black:size=%dx%d:rate=%d,format=gray,geq=lum='255*mod(floor(N/pow(2,%s)),2)'",
		IndexedSize, IndexedSize, fps, bit)
	args := []string{"-f", "lavfi", "-i", src, "-t", strconv.FormatFloat(seconds, 'f', -1, 64)}
	args = append(args, codec...)
	return FFmpeg(t, name, append(args, "-pix_fmt", "yuv420p")...)
}

// FrameIndex reads the number an IndexedMP4 frame shows.
func FrameIndex(img *raster.RGB) int {
	n := 0
	for bit := range 16 {
		x := (bit%4)*indexCell + indexCell/2
		y := (bit/4)*indexCell + indexCell/2
		if img.Pix[img.Offset(x, y)+1] > 128 {
			n |= 1 << bit
		}
	}
	return n
}

func truncate(t testing.TB, src string, keep float64) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "truncated"+filepath.Ext(src), b[:int(float64(len(b))*keep)])
}

func writeFile(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
