package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/latentsync/latentsync-service/gpuworker/pipeline"
	"github.com/latentsync/latentsync-service/internal/joberr"
)

type runFlags struct {
	video, audio, out string
	bundle, ortLib    string
	steps             int
	guidance          float64
	seed              uint64
	syncMode          string
	cuda              bool
	jsonReport        bool
	quiet             bool
}

func runCommand(ctx context.Context, args []string, env environment) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	var f runFlags
	fs.StringVar(&f.video, "video", "", "input talking-head video (required)")
	fs.StringVar(&f.audio, "audio", "", "input speech track, or any file with an audio stream (required)")
	fs.StringVar(&f.out, "out", "", "output mp4 path (required)")
	fs.StringVar(&f.bundle, "bundle", firstSet(env.getenv("LATENTSYNC_BUNDLE"), env.defaultBundle), "model bundle directory")
	fs.StringVar(&f.ortLib, "onnxruntime", firstSet(env.getenv("LATENTSYNC_ORT_LIB"), env.defaultORTLib), "path of libonnxruntime.so")
	fs.IntVar(&f.steps, "steps", 0, "denoising steps (default: the bundle's, 20)")
	fs.Float64Var(&f.guidance, "guidance", 0, "classifier-free guidance scale (default: the bundle's, 1.5)")
	fs.Uint64Var(&f.seed, "seed", 0, "noise seed: the same seed gives the same output")
	fs.StringVar(&f.syncMode, "sync-mode", "cut_off", "length matching: cut_off, loop or bounce")
	fs.BoolVar(&f.cuda, "cuda", true, "use the CUDA execution provider when available")
	fs.BoolVar(&f.jsonReport, "json", false, "print the result as JSON on stdout")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress bar")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.stderr, "latentsync run: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	req, err := f.request()
	if err != nil {
		return reportError(env, err)
	}

	logger := commandLogger(env)
	started := time.Now()
	rt, err := openRuntime(f.ortLib, f.cuda, logger)
	if err != nil {
		return reportError(env, err)
	}
	defer rt.Close()
	b, p, err := openPipeline(ctx, rt, f.bundle, logger)
	if err != nil {
		return reportError(env, err)
	}
	defer b.Close()
	loadSeconds := time.Since(started).Seconds()

	bar := newProgress(env, f.quiet || f.jsonReport)
	req.Progress = bar.update
	req.JobID = "local-" + started.UTC().Format("20060102T150405.000")
	res, err := p.Run(ctx, req)
	bar.finish()
	if err != nil {
		return reportError(env, err)
	}
	report := runReport{
		Output:       f.out,
		Frames:       res.Frames,
		Width:        res.Width,
		Height:       res.Height,
		Duration:     res.DurationSeconds,
		LoadSeconds:  loadSeconds,
		TotalSeconds: time.Since(started).Seconds(),
		Stages:       res.Stages,
		PeakRSSMiB:   peakRSSMiB(),
		Provider:     b.Provider(),
		Quality: runQuality{
			SyncConfidence: res.SyncConfidence, SyncOffset: res.SyncOffset,
			SSIMFrames: res.SSIMFrames, Warnings: res.Warnings,
		},
	}
	if res.SSIMFrames > 0 {
		report.Quality.SSIMOverall, report.Quality.SSIMPreserved = &res.SSIMOverall, &res.SSIMPreserved
	}
	if err := emit(env, f.jsonReport, report); err != nil {
		return reportError(env, err)
	}
	return exitOK
}

func (f runFlags) request() (pipeline.Request, error) {
	for _, required := range []struct{ name, value string }{{"--video", f.video}, {"--audio", f.audio}, {"--out", f.out}} {
		if required.value == "" {
			return pipeline.Request{}, joberr.New(joberr.InvalidRequest, "%s is required", required.name)
		}
	}
	mode, err := pipeline.ParseSyncMode(f.syncMode)
	if err != nil {
		return pipeline.Request{}, joberr.Wrap(joberr.InvalidRequest, err, "%v", err)
	}
	if f.steps < 0 || f.steps > 1000 {
		return pipeline.Request{}, joberr.New(joberr.InvalidRequest, "--steps %d: want 1 to 1000", f.steps)
	}
	if f.guidance < 0 || f.guidance > 20 {
		return pipeline.Request{}, joberr.New(joberr.InvalidRequest, "--guidance %g: want 0 to 20 (1 disables guidance)", f.guidance)
	}
	out, err := filepath.Abs(f.out)
	if err != nil {
		return pipeline.Request{}, joberr.Wrap(joberr.InvalidRequest, err, "--out %s", f.out)
	}
	if st, err := os.Stat(filepath.Dir(out)); err != nil || !st.IsDir() {
		return pipeline.Request{}, joberr.New(joberr.InvalidRequest, "--out %s: directory %s does not exist", f.out, filepath.Dir(out))
	}
	return pipeline.Request{
		VideoPath: f.video, AudioPath: f.audio, OutputPath: out,
		Steps: f.steps, Guidance: f.guidance, Seed: f.seed, SyncMode: mode,
	}, nil
}

type runReport struct {
	Output       string                 `json:"output"`
	Frames       int                    `json:"frames"`
	Width        int                    `json:"width"`
	Height       int                    `json:"height"`
	Duration     float64                `json:"duration_s"`
	LoadSeconds  float64                `json:"load_s"`
	TotalSeconds float64                `json:"total_s"`
	Stages       []pipeline.StageTiming `json:"stages"`
	PeakRSSMiB   float64                `json:"peak_rss_mib"`
	Provider     string                 `json:"provider"`
	Quality      runQuality             `json:"quality"`
}

// runQuality is the pipeline's measure of its output; the fields a run
// could not measure (no SyncNet in the bundle, a clip too short) are absent.
type runQuality struct {
	SyncConfidence *float64 `json:"sync_confidence,omitempty"`
	SyncOffset     *int     `json:"sync_offset,omitempty"`
	SSIMOverall    *float64 `json:"ssim,omitempty"`
	SSIMPreserved  *float64 `json:"ssim_preserved,omitempty"`
	SSIMFrames     int      `json:"ssim_frames"`
	Warnings       []string `json:"warnings,omitempty"`
}

func (r runReport) print(w io.Writer) {
	fmt.Fprintf(w, "wrote %s: %dx%d, %d frames, %.2f s\n", r.Output, r.Width, r.Height, r.Frames, r.Duration)
	fmt.Fprintf(w, "%-20s %9s\n", "stage", "seconds")
	fmt.Fprintf(w, "%-20s %9.3f\n", "00|load-bundle", r.LoadSeconds)
	for _, s := range r.Stages {
		fmt.Fprintf(w, "%-20s %9.3f\n", s.Stage, s.Seconds)
	}
	fmt.Fprintf(w, "%-20s %9.3f\n", "total", r.TotalSeconds)
	fmt.Fprintf(w, "execution provider %s, peak RSS %.0f MiB\n", r.Provider, r.PeakRSSMiB)
	q := r.Quality
	if q.SyncConfidence != nil {
		fmt.Fprintf(w, "sync confidence %.3f, offset %+d frames\n", *q.SyncConfidence, *q.SyncOffset)
	} else {
		fmt.Fprintln(w, "sync confidence not measured (no SyncNet in the bundle, or under 20 frames)")
	}
	if q.SSIMPreserved != nil {
		fmt.Fprintf(w, "SSIM outside the mouth %.4f, whole face %.4f (%d frames)\n", *q.SSIMPreserved, *q.SSIMOverall, q.SSIMFrames)
	}
	for _, c := range q.Warnings {
		fmt.Fprintf(w, "warning: %s\n", c)
	}
}

// peakRSSMiB is this process's high-water resident set size.
func peakRSSMiB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024 // Linux reports KiB
}

func firstSet(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// progress draws a bar on a terminal and stays silent otherwise, so logs and
// pipes get no control characters.
type progress struct {
	bar   *progressbar.ProgressBar
	stage string
	out   io.Writer
}

func newProgress(env environment, quiet bool) *progress {
	p := &progress{out: env.stderr}
	if f, ok := env.stderr.(*os.File); quiet || !ok || !term.IsTerminal(int(f.Fd())) {
		p.out = nil
	}
	return p
}

func (p *progress) update(u pipeline.Progress) {
	if p.out == nil {
		return
	}
	if p.bar == nil || u.Stage != p.stage {
		if p.bar != nil {
			p.bar.Finish()
			fmt.Fprintln(p.out)
		}
		p.stage = u.Stage
		p.bar = progressbar.NewOptions(u.Total,
			progressbar.OptionSetWriter(p.out),
			progressbar.OptionSetDescription(u.Stage),
			progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("frames"),
			progressbar.OptionShowIts(),
			progressbar.OptionThrottle(100*time.Millisecond),
		)
	}
	p.bar.Set(u.Done)
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
		fmt.Fprintln(p.out)
	}
}
