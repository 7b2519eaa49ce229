package pipeline

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/latentsync/latentsync-service/gpuworker/bundle"
	"github.com/latentsync/latentsync-service/gpuworker/face"
	"github.com/latentsync/latentsync-service/gpuworker/infer"
	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/media"
	"github.com/latentsync/latentsync-service/internal/media/mediatest"
	"github.com/latentsync/latentsync-service/internal/quality"
	"github.com/latentsync/latentsync-service/internal/raster"
)

const (
	sampleVideo = "../../testdata/sample/face.mp4"
	sampleAudio = "../../testdata/sample/speech.wav"
	bundleDir   = "../../testdata/bundle"
)

// One ONNX Runtime environment per process: the pipeline is built once.
var shared struct {
	once sync.Once
	pl   *Pipeline
	err  error
}

func testPipeline(t *testing.T) *Pipeline {
	t.Helper()
	shared.once.Do(func() {
		lib := os.Getenv("LATENTSYNC_ORT_LIB")
		if lib == "" {
			lib = "../../.deps/onnxruntime-1.24.1/libonnxruntime.so.1.24.1"
		}
		rt, err := infer.NewRuntime(infer.RuntimeOptions{LibraryPath: lib})
		if err != nil {
			shared.err = fmt.Errorf("%w (run `make test`, which installs ONNX Runtime)", err)
			return
		}
		b, err := bundle.Load(context.Background(), rt, bundleDir)
		if err != nil {
			shared.err = fmt.Errorf("%w (run `make test`, which fetches the face detector)", err)
			return
		}
		shared.pl, shared.err = New(b, slog.New(slog.NewTextHandler(io.Discard, nil)))
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	for _, f := range []string{sampleVideo, sampleAudio} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%v (run `make test`, which makes the sample)", err)
		}
	}
	return shared.pl
}

// runs caches sample runs by seed: several tests look at the same run.
var runs sync.Map

type sampleRun struct {
	out string
	res *Result
}

func sampleOutput(t *testing.T, seed uint64) string {
	t.Helper()
	out, _ := sampleResult(t, seed)
	return out
}

// sampleResult runs the sample with seed once per test binary.
func sampleResult(t *testing.T, seed uint64) (string, *Result) {
	t.Helper()
	pl := testPipeline(t)
	if v, ok := runs.Load(seed); ok {
		r := v.(sampleRun)
		return r.out, r.res
	}
	dir, err := os.MkdirTemp("", "pipeline-test-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {}) // the directory outlives the test on purpose; removed in TestMain
	out := filepath.Join(dir, fmt.Sprintf("seed-%d.mp4", seed))
	res, err := pl.Run(context.Background(), Request{
		VideoPath: sampleVideo, AudioPath: sampleAudio, OutputPath: out, Seed: seed, WorkDir: dir,
	})
	if err != nil {
		t.Fatalf("run seed %d: %v", seed, err)
	}
	tempDirs.Store(dir, true)
	runs.Store(seed, sampleRun{out, res})
	return out, res
}

var tempDirs sync.Map

func TestMain(m *testing.M) {
	code := m.Run()
	tempDirs.Range(func(k, _ any) bool { os.RemoveAll(k.(string)); return true })
	os.Exit(code)
}

func TestSampleOutputFormat(t *testing.T) {
	pl := testPipeline(t)
	work := t.TempDir()
	out := filepath.Join(t.TempDir(), "out.mp4")
	var progress []Progress
	res, err := pl.Run(context.Background(), Request{
		VideoPath: sampleVideo, AudioPath: sampleAudio, OutputPath: out, Seed: 1, WorkDir: work,
		Progress: func(p Progress) { progress = append(progress, p) },
	})
	if err != nil {
		t.Fatal(err)
	}
	in, err := media.Probe(context.Background(), sampleVideo)
	if err != nil {
		t.Fatal(err)
	}
	speech, err := media.Probe(context.Background(), sampleAudio)
	if err != nil {
		t.Fatal(err)
	}
	got, err := media.Probe(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	if got.Video == nil || got.Audio == nil {
		t.Fatalf("output streams: video %v, audio %v", got.Video, got.Audio)
	}
	if got.Video.Width != in.Video.Width || got.Video.Height != in.Video.Height {
		t.Errorf("output %dx%d, input %dx%d", got.Video.Width, got.Video.Height, in.Video.Width, in.Video.Height)
	}
	if fps := got.Video.FrameRate.Float(); fps != 25 {
		t.Errorf("output at %g fps", fps)
	}
	if got.Audio.Codec != "aac" || got.Video.Codec != "h264" {
		t.Errorf("output codecs %s + %s, want h264 + aac", got.Video.Codec, got.Audio.Codec)
	}
	// cut_off with speech shorter than the video: the speech's duration, to the frame.
	if d := math.Abs(got.Duration.Seconds() - speech.Duration.Seconds()); d > 1.0/25 {
		t.Errorf("output lasts %v, speech %v", got.Duration, speech.Duration)
	}
	if res.Frames != int(math.Ceil(speech.Duration.Seconds()*25)) {
		t.Errorf("%d frames for %v of speech", res.Frames, speech.Duration)
	}
	if len(progress) == 0 || progress[len(progress)-1].Done != res.Frames {
		t.Errorf("progress reports %v", progress)
	}
	for _, s := range []string{StageDetectFaces, StageDenoise, StageEncode} {
		if !hasStage(res.Stages, s) {
			t.Errorf("no timing for stage %s in %v", s, res.Stages)
		}
	}
	if left, _ := os.ReadDir(work); len(left) != 0 {
		t.Errorf("job directory not cleaned up: %v", left)
	}
}

func hasStage(stages []StageTiming, name string) bool {
	for _, s := range stages {
		if s.Stage == name && s.Seconds > 0 {
			return true
		}
	}
	return false
}

// The regions outside the mouth mask keep the input's pixels: SSIM over the
// upper half of the face crop (mapped into the frame) stays >= 0.95.
func TestPreservesUpperFace(t *testing.T) {
	pl := testPipeline(t)
	out := sampleOutput(t, 1)
	vinfo, err := media.Probe(context.Background(), sampleVideo)
	if err != nil {
		t.Fatal(err)
	}
	transforms, err := pl.trackFaces(context.Background(), Request{VideoPath: sampleVideo}, vinfo, 0)
	if err != nil {
		t.Fatal(err)
	}
	in, got := readFrames(t, sampleVideo), readFrames(t, out)
	for _, k := range []int{0, 40, 80, 120, 159} {
		rect := cropRegion(t, transforms[k], pl.res, 0, pl.res/2)
		ssim, err := quality.SSIMRect(in[k], got[k], rect)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("frame %d: upper face %v SSIM %.4f", k, rect, ssim)
		if ssim < 0.95 {
			t.Errorf("frame %d: SSIM over the upper face %.4f < 0.95", k, ssim)
		}
		// The mouth region is regenerated: it must actually change.
		mouth := cropRegion(t, transforms[k], pl.res, pl.p.Mask.Top+20, pl.p.Mask.Bottom-20)
		if ssim, _ := quality.SSIMRect(in[k], got[k], mouth); ssim > 0.95 {
			t.Errorf("frame %d: mouth region unchanged (SSIM %.4f)", k, ssim)
		}
	}
}

// cropRegion is the frame-space bounding box of crop rows [top, bottom).
func cropRegion(t *testing.T, m face.Affine, res, top, bottom int) image.Rectangle {
	t.Helper()
	inv, err := m.Invert()
	if err != nil {
		t.Fatal(err)
	}
	r := image.Rectangle{Min: image.Pt(math.MaxInt, math.MaxInt), Max: image.Pt(math.MinInt, math.MinInt)}
	for _, c := range []face.Point{{X: 0, Y: float64(top)}, {X: float64(res), Y: float64(top)}, {X: 0, Y: float64(bottom)}, {X: float64(res), Y: float64(bottom)}} {
		p := inv.Apply(c)
		r.Min.X, r.Min.Y = min(r.Min.X, int(p.X)), min(r.Min.Y, int(p.Y))
		r.Max.X, r.Max.Y = max(r.Max.X, int(p.X)), max(r.Max.Y, int(p.Y))
	}
	return r
}

func readFrames(t *testing.T, path string) []*raster.RGB {
	t.Helper()
	r, err := media.OpenFrames(context.Background(), path, media.DecodeOptions{FPS: 25})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var frames []*raster.RGB
	for {
		img := r.NewFrame()
		err := r.Next(img)
		if errors.Is(err, io.EOF) {
			return frames
		}
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, img)
	}
}

func TestSeedDeterminesOutput(t *testing.T) {
	pl := testPipeline(t)
	a := readFrames(t, sampleOutput(t, 1))
	again := filepath.Join(t.TempDir(), "again.mp4")
	if _, err := pl.Run(context.Background(), Request{VideoPath: sampleVideo, AudioPath: sampleAudio, OutputPath: again, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	b := readFrames(t, again)
	c := readFrames(t, sampleOutput(t, 2))
	if len(a) != len(b) || len(a) != len(c) {
		t.Fatalf("frame counts %d, %d, %d", len(a), len(b), len(c))
	}
	for k := range a {
		if string(a[k].Pix) != string(b[k].Pix) {
			t.Fatalf("same seed, frame %d differs", k)
		}
	}
	vinfo, _ := media.Probe(context.Background(), sampleVideo)
	transforms, err := pl.trackFaces(context.Background(), Request{VideoPath: sampleVideo}, vinfo, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []int{10, 90, 150} {
		mouth := cropRegion(t, transforms[k], pl.res, pl.p.Mask.Top+30, pl.p.Mask.Bottom-30)
		if d := meanAbsDiff(a[k], c[k], mouth); d < 0.5 {
			t.Errorf("frame %d: seeds 1 and 2 differ by only %.3f levels in the mouth region", k, d)
		} else {
			t.Logf("frame %d: seeds 1 and 2 differ by %.2f levels in the mouth region", k, d)
		}
	}
}

func meanAbsDiff(a, b *raster.RGB, r image.Rectangle) float64 {
	r = r.Intersect(image.Rect(0, 0, a.W, a.H))
	var sum float64
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			for c := range 3 {
				o := a.Offset(x, y) + c
				sum += math.Abs(float64(a.Pix[o]) - float64(b.Pix[o]))
			}
		}
	}
	return sum / float64(3*r.Dx()*r.Dy())
}

// Speech longer than the video: loop restarts the video, bounce plays it back.
func TestLengthModes(t *testing.T) {
	pl := testPipeline(t)
	short := mediatest.FFmpeg(t, "short.mp4", "-i", sampleVideo, "-t", "1.2", "-c:v", "libx264", "-g", "50", "-an")
	in := readFrames(t, short)
	if len(in) != 30 {
		t.Fatalf("short clip has %d frames", len(in))
	}
	cases := []struct {
		mode       SyncMode
		frame      int
		want, than int // output frame shows source frame want rather than than
	}{
		{Loop, 31, 1, 27},
		{Bounce, 31, 27, 1},
		{Bounce, 62, 4, 2}, // second forward run: period 58
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s-%d", c.mode, c.frame), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.mp4")
			res, err := pl.Run(context.Background(), Request{VideoPath: short, AudioPath: sampleAudio, OutputPath: out, SyncMode: c.mode})
			if err != nil {
				t.Fatal(err)
			}
			if res.Frames != 160 {
				t.Fatalf("%d frames, want the speech's 160", res.Frames)
			}
			got := readFrames(t, out)
			if len(got) != 160 {
				t.Fatalf("output has %d frames", len(got))
			}
			upper := image.Rect(0, 0, in[0].W, in[0].H/4) // background and hair: untouched by the mouth
			sw, _ := quality.SSIMRect(got[c.frame], in[c.want], upper)
			so, _ := quality.SSIMRect(got[c.frame], in[c.than], upper)
			if sw <= so {
				t.Errorf("output frame %d looks like source %d (SSIM %.4f) no more than %d (%.4f)", c.frame, c.want, sw, c.than, so)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	pl := testPipeline(t)
	noFace := mediatest.MP4(t, mediatest.Clip{W: 320, H: 240, Seconds: 3, Audio: true})
	cases := []struct {
		name         string
		video, audio string
		canceled     bool
		want         joberr.Code
	}{
		{"no face", noFace, sampleAudio, false, joberr.NoFaceDetected},
		{"video without audio as speech", mediatest.VideoOnlyMP4(t), sampleAudio, false, joberr.NoFaceDetected},
		{"speech without audio", sampleVideo, mediatest.VideoOnlyMP4(t), false, joberr.NoAudioStream},
		{"audio as video", mediatest.AudioM4A(t), sampleAudio, false, joberr.NoVideoStream},
		{"text named mp4", mediatest.TextAsMP4(t), sampleAudio, false, joberr.UnsupportedMedia},
		{"truncated", mediatest.TruncatedMP4(t), sampleAudio, false, joberr.CorruptMedia},
		{"missing", filepath.Join(t.TempDir(), "nope.mp4"), sampleAudio, false, joberr.InvalidRequest},
		{"canceled", sampleVideo, sampleAudio, true, joberr.Canceled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			work := t.TempDir()
			out := filepath.Join(t.TempDir(), "out.mp4")
			req := Request{VideoPath: c.video, AudioPath: c.audio, OutputPath: out, WorkDir: work}
			if c.canceled {
				req.Canceled = func(context.Context) bool { return true }
			}
			_, err := pl.Run(context.Background(), req)
			if got := joberr.CodeOf(err); got != c.want {
				t.Fatalf("error %v: code %s, want %s", err, got, c.want)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("output exists after a failure: %v", err)
			}
			if left, _ := os.ReadDir(work); len(left) != 0 {
				t.Errorf("job directory not cleaned up: %v", left)
			}
		})
	}
}
