// Package pipeline runs LatentSync on one video and one speech track: it
// streams the video through ffmpeg chunk by chunk (16 frames), aligns the face,
// denoises the mouth region with the audio-conditioned UNet and blends the
// result back into the original frames.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/latentsync/latentsync-service/gpuworker/audio"
	"github.com/latentsync/latentsync-service/gpuworker/bundle"
	"github.com/latentsync/latentsync-service/gpuworker/ddim"
	"github.com/latentsync/latentsync-service/gpuworker/face"
	"github.com/latentsync/latentsync-service/gpuworker/infer"
	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/media"
	"github.com/latentsync/latentsync-service/internal/raster"
)

// FaceSearchFrames is how far into the video a face must appear before the
// job fails with NO_FACE_DETECTED.
const FaceSearchFrames = 50

// Request is one lip-sync job.
type Request struct {
	JobID                            string // carried on every log line
	VideoPath, AudioPath, OutputPath string
	Steps                            int     // 0: the bundle's default
	Guidance                         float64 // 0: the bundle's default; 1 disables guidance
	Seed                             uint64
	SyncMode                         SyncMode
	// WorkDir is where the job's own temporary directory is made ("" = os.TempDir()).
	WorkDir string
	// Progress, when set, is called after each chunk.
	Progress func(Progress)
	// Canceled, when set, is asked between chunks; true stops the job with CANCELED.
	Canceled func(context.Context) bool
	// MinPreservedSSIM is the SSIM outside the mouth below which the result
	// carries WarnLowPreservation (0: DefaultMinPreservedSSIM).
	MinPreservedSSIM float64
}

// Progress reports frames done in the current stage.
type Progress struct {
	Stage       string
	Done, Total int
}

// Result describes the written output.
type Result struct {
	Frames          int
	Width, Height   int
	DurationSeconds float64
	Stages          []StageTiming

	// SyncConfidence and SyncOffset are the SyncNet evaluation of the output
	// (offset in frames, within +-SyncMaxShift); nil when the bundle has no
	// SyncNet or the clip is too short for the offset search.
	SyncConfidence *float64
	SyncOffset     *int
	// SSIMPreserved is the mean SSIM between input and output frames outside
	// the mouth region, SSIMOverall over the whole face box, over SSIMFrames
	// sampled frames (both 0 when SSIMFrames is 0).
	SSIMPreserved, SSIMOverall float64
	SSIMFrames                 int
	// Warnings are codes of problems the output has though the job succeeded
	// (WarnLowPreservation).
	Warnings []string
}

// Pipeline holds the loaded bundle and the per-bundle constants; one job runs
// at a time on it (the sessions are not shared between concurrent runs).
type Pipeline struct {
	b        *bundle.Bundle
	p        bundle.Parameters
	detector *face.Detector
	template face.Template
	log      *slog.Logger

	res, lat   int       // crop side and latent side
	pixelMask  []float32 // res*res: 1 keep, 0 regenerate (the masked-image input)
	latentMask []float32 // lat*lat, the UNet's mask channel
	alpha      []float32 // res*res blend weight of generated pixels
	mouth      image.Rectangle
	sync       *syncContract // nil: no SyncNet in the bundle
}

// New prepares a pipeline for a loaded bundle.
func New(b *bundle.Bundle, log *slog.Logger) (*Pipeline, error) {
	p := b.Manifest.Parameters
	det, err := face.NewDetector(b.FaceDetector)
	if err != nil {
		return nil, joberr.Wrap(joberr.ModelUnavailable, err, "face detector of bundle %s", b.Dir)
	}
	tmpl := face.Template{
		RightEye: face.Point{X: p.FaceTemplate.RightEye[0], Y: p.FaceTemplate.RightEye[1]},
		LeftEye:  face.Point{X: p.FaceTemplate.LeftEye[0], Y: p.FaceTemplate.LeftEye[1]},
		Nose:     face.Point{X: p.FaceTemplate.Nose[0], Y: p.FaceTemplate.Nose[1]},
	}
	if err := tmpl.Validate(); err != nil {
		return nil, joberr.Wrap(joberr.ModelUnavailable, err, "face template of bundle %s", b.Dir)
	}
	res := p.Resolution
	pl := &Pipeline{b: b, p: p, detector: det, template: tmpl, log: log, res: res, lat: res / 8}
	if pl.pixelMask, err = face.MouthMask(res, p.Mask.Bounds()); err != nil {
		return nil, joberr.Wrap(joberr.ModelUnavailable, err, "mask of bundle %s", b.Dir)
	}
	pl.mouth = p.Mask.Bounds()
	pl.latentMask = downsampleMask(pl.pixelMask, res, pl.lat)
	if b.SyncNet != nil {
		if pl.sync, err = newSyncContract(b.SyncNet, p.FPS); err != nil {
			return nil, joberr.Wrap(joberr.ModelUnavailable, err, "syncnet of bundle %s: %v", b.Dir, err)
		}
	}
	// Erode so the seam sits inside the generated region and feather within
	// that margin, so nothing outside the mask changes; both scale with the crop.
	if pl.alpha, err = face.BlendAlpha(pl.pixelMask, res/32, float64(res)/128); err != nil {
		return nil, joberr.Wrap(joberr.ModelUnavailable, err, "mask of bundle %s", b.Dir)
	}
	return pl, nil
}

// Run processes one request end to end. On error nothing is left at the
// output path and the job's temporary directory is removed.
func (pl *Pipeline) Run(ctx context.Context, req Request) (*Result, error) {
	log := pl.log.With("job_id", req.JobID)
	res, err := pl.run(ctx, req, log)
	if err != nil {
		log.Error("lip-sync failed", "code", string(joberr.CodeOf(err)), "error", err.Error())
		return nil, err
	}
	attrs := []any{"frames", res.Frames, "duration_s", res.DurationSeconds,
		"ssim_preserved", res.SSIMPreserved, "ssim_overall", res.SSIMOverall}
	if res.SyncConfidence != nil {
		attrs = append(attrs, "sync_confidence", *res.SyncConfidence, "sync_offset", *res.SyncOffset)
	}
	for _, s := range res.Stages {
		attrs = append(attrs, s.Stage, s.Seconds)
	}
	log.Info("lip-sync done", attrs...)
	return res, nil
}

func (pl *Pipeline) run(ctx context.Context, req Request, log *slog.Logger) (*Result, error) {
	clock := newStageClock()
	steps, guidance := req.Steps, req.Guidance
	if steps == 0 {
		steps = pl.p.Defaults.InferenceSteps
	}
	if guidance == 0 {
		guidance = pl.p.Defaults.GuidanceScale
	}
	sched, err := ddim.New(pl.p.Scheduler.Config, steps)
	if err != nil {
		return nil, joberr.Wrap(joberr.InvalidRequest, err, "%d inference steps: %v", steps, err)
	}

	var vinfo *media.Info
	if err := clock.measure(StageProbe, func() error {
		var err error
		vinfo, err = probeInputs(ctx, req.VideoPath, req.AudioPath)
		return err
	}); err != nil {
		return nil, err
	}

	var feats *audio.Features
	var samples []float32
	if err := clock.measure(StageLoadAudio, func() error {
		var err error
		samples, err = audio.Decode(ctx, req.AudioPath)
		if err != nil {
			if joberr.CodeOf(err) == joberr.Internal {
				return joberr.Wrap(joberr.CorruptMedia, err, "cannot decode the audio of %s", filepath.Base(req.AudioPath))
			}
			return err // already says which input is at fault
		}
		cfg := pl.audioConfig()
		feats = audio.NewFeatures(samples, newAudioEncoder(pl.b.AudioEncoder, cfg), cfg)
		return nil
	}); err != nil {
		return nil, err
	}
	if feats.NumFrames() == 0 {
		return nil, joberr.New(joberr.NoAudioStream, "the audio of %s is empty", filepath.Base(req.AudioPath))
	}

	// Pass 1: find the face in every frame that can be shown. Fails fast,
	// before any diffusion work, when there is no face.
	mode := req.SyncMode
	if mode == "" {
		mode = CutOff
	}
	limit := 0 // all frames
	if mode == CutOff {
		limit = feats.NumFrames()
	}
	var transforms []face.Affine
	if err := clock.measure(StageDetectFaces, func() error {
		var err error
		transforms, err = pl.trackFaces(ctx, req, vinfo, limit)
		return err
	}); err != nil {
		return nil, err
	}
	videoFrames := len(transforms)
	total := mode.OutputFrames(videoFrames, feats.NumFrames())
	log.Info("inputs ready", "video_frames", videoFrames, "audio_frames", feats.NumFrames(),
		"output_frames", total, "sync_mode", string(mode), "steps", steps, "guidance", guidance, "seed", req.Seed)

	jobDir, err := os.MkdirTemp(req.WorkDir, "latentsync-job-*")
	if err != nil {
		return nil, fmt.Errorf("create job directory: %w", err)
	}
	defer os.RemoveAll(jobDir)

	enc, err := media.CreateEncoder(ctx, filepath.Join(jobDir, "result.mp4"), media.EncodeOptions{
		Width: vinfo.Video.Width, Height: vinfo.Video.Height, FPS: pl.p.FPS,
		AudioPath: req.AudioPath, Frames: total,
	})
	if err != nil {
		return nil, fmt.Errorf("start encoder: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			enc.Abort()
		}
	}()

	src := newFrameSource(vinfo, videoFrames, pl.p.FPS, mode)
	defer src.Close()
	job := pl.newChunkRunner(sched, guidance, req.Seed, clock)
	chunk := pl.p.FramesPerChunk
	frames := make([]*raster.RGB, chunk)
	for i := range frames {
		frames[i] = raster.New(vinfo.Video.Width, vinfo.Video.Height)
	}
	syncm := newSyncMeter(pl.sync, pl.res, chunk, total, samples)
	ssimm := newSSIMMeter(pl.res, pl.mouth, chunk, total, vinfo.Video.Width, vinfo.Video.Height)
	report(req, "lip-sync", 0, total)
	for start := 0; start < total; start += chunk {
		if req.Canceled != nil && req.Canceled(ctx) {
			return nil, joberr.New(joberr.Canceled, "job canceled")
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := min(chunk, total-start)
		srcIdx := make([]int, n)
		if err := clock.measure(StageDecode, func() error {
			for j := range n {
				srcIdx[j] = mode.SourceFrame(start+j, videoFrames)
				if err := src.Frame(ctx, srcIdx[j], frames[j]); err != nil {
					return err
				}
			}
			if ssimm != nil {
				ssimm.hold(start, frames[:n]) // the inputs SSIM compares with
			}
			return nil
		}); err != nil {
			return nil, err
		}
		var audioCtx []float32
		if err := clock.measure(StageAudioEncode, func() error {
			var err error
			audioCtx, err = feats.Frames(ctx, start, n)
			return err
		}); err != nil {
			return nil, fmt.Errorf("audio features for frames %d-%d: %w", start, start+n-1, err)
		}
		ms := make([]face.Affine, n)
		for j, s := range srcIdx {
			ms[j] = transforms[s]
		}
		if err := job.run(ctx, frames[:n], ms, audioCtx); err != nil {
			return nil, fmt.Errorf("frames %d-%d: %w", start, start+n-1, err)
		}
		if err := clock.measure(StageEncode, func() error {
			for j := range n {
				if err := enc.Write(frames[j]); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return nil, fmt.Errorf("encode: %w", err)
		}
		// Metrics never fail a job whose output is fine: a failure drops the metric.
		if syncm != nil {
			if err := clock.measure(StageSync, func() error { return syncm.add(ctx, job.crops, n) }); err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				log.Warn("sync metrics dropped", "error", err.Error())
				syncm = nil
			}
		}
		if ssimm != nil {
			if err := clock.measure(StageSSIM, func() error { return ssimm.measure(frames[:n], ms) }); err != nil {
				log.Warn("SSIM metrics dropped", "error", err.Error())
				ssimm = nil
			}
		}
		report(req, "lip-sync", start+n, total)
	}
	if err := clock.measure(StageEncode, enc.Close); err != nil {
		return nil, fmt.Errorf("finish encoding: %w", err)
	}
	committed = true
	if err := moveFile(filepath.Join(jobDir, "result.mp4"), req.OutputPath); err != nil {
		return nil, err
	}
	res := &Result{
		Frames: total, Width: vinfo.Video.Width, Height: vinfo.Video.Height,
		DurationSeconds: float64(total) / float64(pl.p.FPS),
	}
	if syncm != nil {
		if err := clock.measure(StageSync, func() error {
			off, conf, err := syncm.result()
			if err == nil {
				res.SyncOffset, res.SyncConfidence = &off, &conf
			}
			return err
		}); err != nil {
			log.Warn("sync metrics dropped", "error", err.Error())
		}
	}
	if ssimm != nil && ssimm.n > 0 {
		res.SSIMFrames = ssimm.n
		res.SSIMPreserved, res.SSIMOverall = ssimm.kept/float64(ssimm.n), ssimm.all/float64(ssimm.n)
		floor := req.MinPreservedSSIM
		if floor == 0 {
			floor = DefaultMinPreservedSSIM
		}
		if res.SSIMPreserved < floor {
			res.Warnings = append(res.Warnings, WarnLowPreservation)
			log.Warn("output changed outside the mouth region", "code", WarnLowPreservation,
				"ssim_preserved", res.SSIMPreserved, "threshold", floor)
		}
	}
	res.Stages = clock.timings()
	return res, nil
}

func (pl *Pipeline) audioConfig() audio.Config {
	a := pl.p.Audio
	c := audio.DefaultConfig()
	c.SampleRate, c.StepsPerSecond, c.WindowSeconds = a.SampleRate, a.StepsPerSecond, a.WindowSeconds
	c.Layers, c.Dim, c.ContextBefore, c.ContextAfter, c.FPS = a.Layers, a.Dim, a.ContextBefore, a.ContextAfter, pl.p.FPS
	return c
}

// probeInputs checks both inputs before any work: each must be readable
// media, the video must have a video stream and the speech an audio stream.
func probeInputs(ctx context.Context, videoPath, audioPath string) (*media.Info, error) {
	vinfo, err := media.Probe(ctx, videoPath)
	if err != nil {
		return nil, err
	}
	if err := media.RequireVideo(vinfo); err != nil {
		return nil, err
	}
	ainfo, err := media.Probe(ctx, audioPath)
	if err != nil {
		return nil, err
	}
	if err := media.RequireAudio(ainfo); err != nil {
		return nil, err
	}
	return vinfo, nil
}

// trackFaces decodes the video once (up to limit frames, 0 = all), detects the
// face in each frame and returns one smoothed frame-to-crop transform per frame.
func (pl *Pipeline) trackFaces(ctx context.Context, req Request, vinfo *media.Info, limit int) ([]face.Affine, error) {
	r, err := media.OpenProbed(ctx, vinfo, media.DecodeOptions{FPS: pl.p.FPS, MaxFrames: limit})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	img := raster.New(r.Width(), r.Height())
	// The frame count is known only at the end; the probe's duration is a
	// good estimate for the progress bar.
	expected := int(math.Ceil(vinfo.Duration.Seconds() * float64(pl.p.FPS)))
	if limit > 0 && (expected == 0 || limit < expected) {
		expected = limit
	}
	report(req, StageDetectFaces, 0, expected)
	var dets []*face.Detection
	var prev *face.Detection
	for {
		err := r.Next(img)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		d, err := pl.detector.Follow(ctx, img, prev)
		if err != nil {
			return nil, fmt.Errorf("detect face in frame %d: %w", len(dets), err)
		}
		dets = append(dets, d)
		if d != nil {
			prev = d
		}
		if len(dets)%8 == 0 {
			report(req, StageDetectFaces, min(len(dets), expected), expected)
		}
		if prev == nil && len(dets) >= FaceSearchFrames {
			break // Track reports NO_FACE_DETECTED; no need to read further
		}
	}
	if err := r.Close(); err != nil {
		return nil, err
	}
	if len(dets) == 0 {
		return nil, joberr.New(joberr.CorruptMedia, "no video frames could be decoded from %s", filepath.Base(req.VideoPath))
	}
	return face.Track(dets, face.TrackOptions{Template: pl.template, Size: pl.res, FirstFaceWithin: FaceSearchFrames})
}

func report(req Request, stage string, done, total int) {
	if req.Progress != nil {
		req.Progress(Progress{Stage: stage, Done: done, Total: total})
	}
}

// downsampleMask averages the pixel mask into the latent grid and rounds, so
// a latent cell is kept only when most of its pixels are.
func downsampleMask(mask []float32, res, lat int) []float32 {
	f := res / lat
	out := make([]float32, lat*lat)
	for y := range lat {
		for x := range lat {
			var s float32
			for dy := range f {
				for dx := range f {
					s += mask[(y*f+dy)*res+x*f+dx]
				}
			}
			out[y*lat+x] = float32(math.Round(float64(s) / float64(f*f)))
		}
	}
	return out
}

// noise returns seeded standard normal noise; the same noise starts every
// chunk, which keeps consecutive chunks consistent (less flicker at seams).
func noise(seed uint64, n int) []float32 {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64())
	}
	return out
}

// audioEncoder runs the bundle's Whisper-like encoder on one mel window,
// into one buffer reused for every window (Features copies what it keeps).
type audioEncoder struct {
	s   *infer.Session
	out []float32
}

func newAudioEncoder(s *infer.Session, cfg audio.Config) *audioEncoder {
	steps := cfg.WindowSeconds * cfg.StepsPerSecond
	return &audioEncoder{s: s, out: make([]float32, steps*cfg.Layers*cfg.Dim)}
}

func (a *audioEncoder) Encode(ctx context.Context, mel []float32) ([]float32, error) {
	in := a.s.Inputs()[0]
	err := a.s.RunInto(ctx, map[string]infer.Tensor{in.Name: {Shape: in.Shape, Float: mel}},
		map[string][]float32{a.s.Outputs()[0].Name: a.out})
	return a.out, err
}

// moveFile renames src to dst, copying when they are on different file systems.
func moveFile(src, dst string) error {
	if err := os.Rename(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("move output: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".latentsync-*.mp4")
	if err != nil {
		return fmt.Errorf("write output %s: %w", dst, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return fmt.Errorf("write output %s: %w", dst, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write output %s: %w", dst, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("write output %s: %w", dst, err)
	}
	return nil
}
