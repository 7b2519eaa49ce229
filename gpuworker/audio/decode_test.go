package audio

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/latentsync/latentsync-service/internal/joberr"
)

func needFFmpeg(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
}

// writeWAV writes interleaved float32 samples as an IEEE-float WAV.
func writeWAV(t *testing.T, path string, rate, channels int, x []float32) {
	t.Helper()
	var b bytes.Buffer
	le := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	data := 4 * len(x)
	b.WriteString("RIFF")
	le(uint32(36 + data))
	b.WriteString("WAVEfmt ")
	le(uint32(16))
	le(uint16(3)) // WAVE_FORMAT_IEEE_FLOAT
	le(uint16(channels))
	le(uint32(rate))
	le(uint32(rate * channels * 4))
	le(uint16(channels * 4))
	le(uint16(32))
	b.WriteString("data")
	le(uint32(data))
	le(x)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func ffmpegRun(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ffmpeg", append([]string{"-nostdin", "-v", "error", "-y"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
	}
}

func noise(n int, seed uint32, amp float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(amp * lcgUnit(&seed))
	}
	return x
}

func TestDecodeExactAt16kMono(t *testing.T) {
	needFFmpeg(t)
	// 16 kHz mono float input needs neither resampling nor downmix: the
	// samples must come back bit-exact, which also checks the f32le parsing.
	path := filepath.Join(t.TempDir(), "in.wav")
	want := noise(12345, 1, 0.5)
	writeWAV(t, path, SampleRate, 1, want)
	got, err := Decode(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("len = %d, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("sample %d = %g, want %g", i, got[i], want[i])
		}
	}
}

func TestDecodeResamplesAndDownmixes(t *testing.T) {
	needFFmpeg(t)
	// 48 kHz stereo: left 0.6*sin(440 Hz), right 0.2*sin(440 Hz). Mono is
	// their mean, 0.4*sin, at 16 kHz (ffmpeg's default float downmix would
	// give (L+R)/√2 = 0.566*sin, not what Whisper's s16 load_audio sees).
	const rate, secs, f = 48000, 2, 440.0
	x := make([]float32, 2*rate*secs)
	for n := 0; n < rate*secs; n++ {
		s := math.Sin(2 * math.Pi * f * float64(n) / rate)
		x[2*n], x[2*n+1] = float32(0.6*s), float32(0.2*s)
	}
	path := filepath.Join(t.TempDir(), "in.wav")
	writeWAV(t, path, rate, 2, x)
	got, err := Decode(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if d := len(got) - SampleRate*secs; d < 0 || d > 64 {
		t.Fatalf("len = %d, want %d (+ a few resampler samples)", len(got), SampleRate*secs)
	}
	// Away from the edges (resampler filter transients) the output is the
	// analytic signal to within the resampler's passband ripple.
	maxErr := 0.0
	for n := 1000; n < SampleRate*secs-1000; n++ {
		want := 0.4 * math.Sin(2*math.Pi*f*float64(n)/SampleRate)
		maxErr = math.Max(maxErr, math.Abs(float64(got[n])-want))
	}
	if maxErr > 2e-3 {
		t.Errorf("max deviation from 0.4*sin(440 Hz) = %g", maxErr)
	}
}

// bestLag returns the l in [-maxLag, maxLag] maximising sum ref[i]*x[i+l]
// over ref's middle.
func bestLag(ref, x []float32, maxLag int) int {
	best, bestDot := 0, math.Inf(-1)
	for l := -maxLag; l <= maxLag; l++ {
		dot := 0.0
		for i := maxLag; i < len(ref)-maxLag && i+l < len(x); i++ {
			dot += float64(ref[i]) * float64(x[i+l])
		}
		if dot > bestDot {
			best, bestDot = l, dot
		}
	}
	return best
}

func TestDecodeAACInMP4IsNotDelayed(t *testing.T) {
	needFFmpeg(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "in.wav")
	want := noise(2*SampleRate, 42, 0.3)
	writeWAV(t, src, SampleRate, 1, want)
	for _, name := range []string{"out.m4a", "out.mp4"} {
		t.Run(name, func(t *testing.T) {
			enc := filepath.Join(dir, name)
			ffmpegRun(t, "-i", src, "-c:a", "aac", "-b:a", "128k", enc)
			got, err := Decode(context.Background(), enc)
			if err != nil {
				t.Fatal(err)
			}
			// The 1024 priming samples are dropped via the edit list: no lag.
			// Only the last frame's padding (< 1024 samples) may remain.
			if lag := bestLag(want, got, 2048); lag != 0 {
				t.Errorf("decoded AAC lags the source by %d samples", lag)
			}
			if d := len(got) - len(want); d < 0 || d >= 1024 {
				t.Errorf("len = %d, source %d", len(got), len(want))
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	needFFmpeg(t)
	dir := t.TempDir()
	long := filepath.Join(dir, "long.wav")
	writeWAV(t, long, SampleRate, 1, noise(3*SampleRate, 3, 0.1))
	garbage := filepath.Join(dir, "garbage.mp4")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a media file ", 50)), 0o644); err != nil {
		t.Fatal(err)
	}
	// A still image: a valid media file without audio.
	image := filepath.Join(dir, "still.ppm")
	if err := os.WriteFile(image, append([]byte("P6 4 4 255\n"), make([]byte, 48)...), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.wav")
	writeWAV(t, empty, SampleRate, 1, nil)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	for _, tc := range []struct {
		name     string
		ctx      context.Context
		dec      Decoder
		path     string
		code     joberr.Code
		contains string
		samples  int
	}{
		{name: "under the limit", dec: Decoder{MaxDuration: 3 * time.Second}, path: long, samples: 3 * SampleRate},
		{name: "over the limit", dec: Decoder{MaxDuration: 2500 * time.Millisecond}, path: long, code: joberr.MediaTooLong},
		{name: "no audio stream", path: image, code: joberr.NoAudioStream, contains: "matches no streams"},
		{name: "empty audio", path: empty, code: joberr.NoAudioStream},
		{name: "corrupt", path: garbage, code: joberr.CorruptMedia, contains: "Invalid data"},
		{name: "missing file", path: filepath.Join(dir, "nope.wav"), code: joberr.Internal, contains: "no such file"},
		{name: "no ffmpeg", dec: Decoder{FFmpeg: filepath.Join(dir, "no-ffmpeg")}, path: long, code: joberr.Internal, contains: "start ffmpeg"},
		{name: "canceled", ctx: canceled, path: long, code: joberr.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			got, err := tc.dec.Decode(ctx, tc.path)
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != tc.samples {
					t.Errorf("len = %d, want %d", len(got), tc.samples)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, %d samples", len(got))
			}
			if c := joberr.CodeOf(err); c != tc.code {
				t.Errorf("code %s, want %s (%v)", c, tc.code, err)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %q does not mention %q", err, tc.contains)
			}
			if tc.ctx != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("error %v is not context.Canceled", err)
			}
		})
	}
}

func TestReadF32LE(t *testing.T) {
	want := []float32{0, 1, -2.5, float32(math.Pi), 1e-30}
	var b bytes.Buffer
	_ = binary.Write(&b, binary.LittleEndian, want)
	raw := b.Bytes()
	for _, tc := range []struct {
		name  string
		in    []byte
		limit int
		want  []float32
		err   error
	}{
		{"all", raw, -1, want, nil},
		{"partial trailing sample dropped", append(raw[:len(raw):len(raw)], 1, 2), -1, want, nil},
		{"at the limit", raw, 5, want, nil},
		{"over the limit", raw, 4, nil, errTooLong},
		{"empty", nil, -1, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One byte per Read: samples straddle reads.
			got, err := readF32LE(iotest.OneByteReader(bytes.NewReader(tc.in)), tc.limit)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}
