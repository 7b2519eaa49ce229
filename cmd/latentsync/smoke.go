package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/latentsync/latentsync-service/gpuworker/evalbundle"
	"github.com/latentsync/latentsync-service/gpuworker/pipeline"
	"github.com/latentsync/latentsync-service/internal/joberr"
)

// exitThreshold: the smoke test ran and a quality threshold was missed.
const exitThreshold = 5

// Thresholds are bundle-specific (the FVD scale also depends on the
// evaluation bundle): without flags, smoke uses standinThresholds only for
// the stand-in bundle, where they were calibrated, and refuses to guess for
// any other. Calibration (seed 0, default steps, stand-in evaluation
// bundle): FVD 1.5 on the sample clip and 1.6 on its first 2 s; with the
// UNet swapped for one that outputs noise, 27.9 and 29.4. The limit of 5
// sits 3x above the healthy values and 5x below the broken ones. The
// stand-in SyncNet has no skill (confidence about 0.01 healthy or broken),
// so its limit only demands that the confidence was measured.
const standinBundleName = "latentsync-standin"

var standinThresholds = thresholds{
	MinSyncConfidence: 0,
	MaxFVD:            5,
	MinSSIMPreserved:  pipeline.DefaultMinPreservedSSIM,
}

type thresholds struct {
	MinSyncConfidence float64 `json:"min_sync_confidence"`
	MaxFVD            float64 `json:"max_fvd"`
	MinSSIMPreserved  float64 `json:"min_ssim_preserved"`
}

// optionalFloat is a float flag that knows whether it was given.
type optionalFloat struct {
	v   float64
	set bool
}

func (o *optionalFloat) String() string {
	if o == nil || !o.set {
		return ""
	}
	return strconv.FormatFloat(o.v, 'g', -1, 64)
}

func (o *optionalFloat) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("want a finite number")
	}
	o.v, o.set = v, true
	return nil
}

type smokeFlags struct {
	bundle, evalBundle, ortLib string
	clips, keep                string
	minSync, maxFVD, minSSIM   optionalFloat
	steps                      int
	seed                       uint64
	cuda, jsonReport           bool
}

func smokeCommand(ctx context.Context, args []string, env environment) int {
	fs := flag.NewFlagSet("smoke", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	var f smokeFlags
	fs.StringVar(&f.bundle, "bundle", firstSet(env.getenv("LATENTSYNC_BUNDLE"), env.defaultBundle), "model bundle directory under test")
	evalBundleFlag(fs, env, &f.evalBundle)
	fs.StringVar(&f.ortLib, "onnxruntime", firstSet(env.getenv("LATENTSYNC_ORT_LIB"), env.defaultORTLib), "path of libonnxruntime.so")
	fs.StringVar(&f.clips, "clips", "", "directory of NAME.video.* / NAME.audio.* evaluation clips (default: the sample face.mp4 + speech.wav)")
	fs.StringVar(&f.keep, "keep", "", "write the generated videos into this directory (default: a temporary one, removed)")
	fs.Var(&f.minSync, "expected-sync-conf", "fail when a clip's sync confidence is below this")
	fs.Var(&f.maxFVD, "expected-fvd", "fail when a clip's FVD between input and output is above this")
	fs.Var(&f.minSSIM, "expected-ssim", "fail when a clip's SSIM outside the mouth is below this")
	fs.IntVar(&f.steps, "steps", 0, "denoising steps (default: the bundle's)")
	fs.Uint64Var(&f.seed, "seed", 0, "noise seed")
	fs.BoolVar(&f.cuda, "cuda", true, "use the CUDA execution provider when available")
	fs.BoolVar(&f.jsonReport, "json", false, "print the result as JSON on stdout")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.stderr, "latentsync smoke: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if f.steps < 0 || f.steps > 1000 {
		return reportError(env, joberr.New(joberr.InvalidRequest, "--steps %d: want 1 to 1000", f.steps))
	}
	clips, err := smokeClips(env, f.clips)
	if err != nil {
		return reportError(env, err)
	}
	if f.evalBundle == "" {
		return reportError(env, joberr.New(joberr.ModelUnavailable, "no evaluation bundle: pass --eval-bundle or set LATENTSYNC_EVAL_BUNDLE"))
	}
	work := f.keep
	if work == "" {
		if work, err = os.MkdirTemp("", "latentsync-smoke-*"); err != nil {
			return reportError(env, fmt.Errorf("smoke work directory: %w", err))
		}
		defer os.RemoveAll(work)
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return reportError(env, joberr.Wrap(joberr.InvalidRequest, err, "--keep %s: %v", f.keep, err))
	}

	logger := commandLogger(env)
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
	limits, err := f.thresholds(b.Manifest.Name)
	if err != nil {
		return reportError(env, err)
	}
	eb, err := evalbundle.Load(ctx, rt, f.evalBundle)
	if err != nil {
		return reportError(env, err)
	}
	defer eb.Close()

	report := smokeReport{
		Bundle:     b.Manifest.Name + "@" + b.Manifest.Version,
		EvalBundle: eb.Manifest.Name + "@" + eb.Manifest.Version,
		Thresholds: limits,
		Passed:     true,
	}
	for _, c := range clips {
		r, err := smokeClip(ctx, p, eb, c, work, f)
		if err != nil {
			return reportError(env, err)
		}
		r.check(limits)
		report.Clips = append(report.Clips, r)
		report.Passed = report.Passed && len(r.Failures) == 0
	}
	if err := emit(env, f.jsonReport, report); err != nil {
		return reportError(env, err)
	}
	if !report.Passed {
		return exitThreshold
	}
	return exitOK
}

// thresholds are the flags; for the stand-in bundle, its calibration fills
// those not given; for any other the sync and FVD limits are required and
// the SSIM limit defaults to the pipeline's own warning level, which does
// not depend on the model (paste-back is pipeline code).
func (f smokeFlags) thresholds(bundleName string) (thresholds, error) {
	t := thresholds{MinSSIMPreserved: pipeline.DefaultMinPreservedSSIM}
	if bundleName == standinBundleName {
		t = standinThresholds
	} else if !f.minSync.set || !f.maxFVD.set {
		return thresholds{}, joberr.New(joberr.InvalidRequest,
			"bundle %q: pass --expected-sync-conf and --expected-fvd (thresholds are calibrated per bundle; defaults exist only for the stand-in)", bundleName)
	}
	if f.minSync.set {
		t.MinSyncConfidence = f.minSync.v
	}
	if f.maxFVD.set {
		t.MaxFVD = f.maxFVD.v
	}
	if f.minSSIM.set {
		t.MinSSIMPreserved = f.minSSIM.v
	}
	return t, nil
}

// smokeInput is one evaluation clip: a talking-head video and a speech track.
type smokeInput struct {
	Name, Video, Audio string
}

// smokeClips is --clips DIR's NAME.video.* / NAME.audio.* pairs, or the
// sample clip beside the build's default bundle.
func smokeClips(env environment, dir string) ([]smokeInput, error) {
	if dir == "" {
		sample := besideDefaultBundle(env, "sample")
		if sample == "" {
			return nil, joberr.New(joberr.InvalidRequest, "no evaluation clips: pass --clips")
		}
		return []smokeInput{{Name: "sample", Video: filepath.Join(sample, "face.mp4"), Audio: filepath.Join(sample, "speech.wav")}}, nil
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, joberr.New(joberr.InvalidRequest, "--clips %s: not a directory", dir)
	}
	pairs, err := matchSides(dir, "video", "audio")
	if err != nil {
		return nil, err
	}
	out := make([]smokeInput, len(pairs))
	for i, p := range pairs {
		out[i] = smokeInput{Name: p.Name, Video: p.Input, Audio: p.Output}
	}
	return out, nil
}

// clipResult is one clip's measurements and the thresholds it missed.
type clipResult struct {
	Name           string   `json:"name"`
	Output         string   `json:"output"`
	Frames         int      `json:"frames"`
	SyncConfidence *float64 `json:"sync_confidence"` // nil: the bundle has no SyncNet
	SyncOffset     *int     `json:"sync_offset"`
	FVD            *float64 `json:"fvd"` // nil: too short for two FVD clips
	FID            *float64 `json:"fid"`
	SSIMPreserved  float64  `json:"ssim_preserved"`
	SSIMOverall    float64  `json:"ssim_overall"`
	SSIMFrames     int      `json:"ssim_frames"` // 0: SSIM not measured
	Warnings       []string `json:"warnings,omitempty"`
	Failures       []string `json:"failures,omitempty"`
}

func smokeClip(ctx context.Context, p *pipeline.Pipeline, eb *evalbundle.Bundle, c smokeInput, work string, f smokeFlags) (clipResult, error) {
	out := filepath.Join(work, c.Name+".output.mp4")
	res, err := p.Run(ctx, pipeline.Request{
		JobID:     "smoke-" + c.Name,
		VideoPath: c.Video, AudioPath: c.Audio, OutputPath: out,
		Steps: f.steps, Seed: f.seed, SyncMode: pipeline.CutOff,
	})
	if err != nil {
		return clipResult{}, err
	}
	r := clipResult{
		Name: c.Name, Output: out, Frames: res.Frames,
		SyncConfidence: res.SyncConfidence, SyncOffset: res.SyncOffset,
		SSIMPreserved: res.SSIMPreserved, SSIMOverall: res.SSIMOverall,
		SSIMFrames: res.SSIMFrames, Warnings: res.Warnings,
	}
	// The input's first Frames frames are the ones the output redrew (cut_off):
	// the rest would count as a difference the model did not make.
	sampling := evalbundle.Sampling{MaxFrames: res.Frames}
	in, err := eb.VideoFeatures(ctx, c.Video, sampling)
	if err != nil {
		return r, err
	}
	gen, err := eb.VideoFeatures(ctx, out, sampling)
	if err != nil {
		return r, fmt.Errorf("smoke %s: read the generated video: %w", c.Name, err)
	}
	s, err := scorePair(c.Name, in, gen)
	if err != nil {
		return r, err
	}
	r.FVD, r.FID = s.FVD, s.FID
	return r, nil
}

// check records every threshold r misses; a value that could not be measured
// misses its threshold too, since the gate cannot vouch for it.
func (r *clipResult) check(t thresholds) {
	switch {
	case r.SyncConfidence == nil:
		r.Failures = append(r.Failures, "sync confidence not measured (no syncnet in the bundle, or the clip is too short)")
	case *r.SyncConfidence < t.MinSyncConfidence:
		r.Failures = append(r.Failures, fmt.Sprintf("sync confidence %.2f < %.2f", *r.SyncConfidence, t.MinSyncConfidence))
	}
	switch {
	case r.FVD == nil:
		r.Failures = append(r.Failures, "FVD not measured (the clip is shorter than two FVD windows)")
	case *r.FVD > t.MaxFVD:
		r.Failures = append(r.Failures, fmt.Sprintf("FVD %.1f > %.1f", *r.FVD, t.MaxFVD))
	}
	switch {
	case r.SSIMFrames == 0:
		r.Failures = append(r.Failures, "SSIM outside the mouth not measured")
	case r.SSIMPreserved < t.MinSSIMPreserved:
		r.Failures = append(r.Failures, fmt.Sprintf("SSIM outside the mouth %.3f < %.3f", r.SSIMPreserved, t.MinSSIMPreserved))
	}
}

type smokeReport struct {
	Bundle     string       `json:"bundle"`
	EvalBundle string       `json:"eval_bundle"`
	Thresholds thresholds   `json:"thresholds"`
	Clips      []clipResult `json:"clips"`
	Passed     bool         `json:"passed"`
}

func (r smokeReport) print(w io.Writer) {
	fmt.Fprintf(w, "bundle %s, evaluation bundle %s\n", r.Bundle, r.EvalBundle)
	row := "%-20s %10s %7s %10s %10s %10s  %s\n"
	fmt.Fprintf(w, row, "clip", "sync conf", "offset", "FVD", "FID", "SSIM kept", "result")
	for _, c := range r.Clips {
		result := "pass"
		if len(c.Failures) > 0 {
			result = "FAIL"
		}
		offset := "-"
		if c.SyncOffset != nil {
			offset = strconv.Itoa(*c.SyncOffset)
		}
		ssim := "-"
		if c.SSIMFrames > 0 {
			ssim = fmt.Sprintf("%.3f", c.SSIMPreserved)
		}
		fmt.Fprintf(w, row, c.Name, optional(c.SyncConfidence), offset, optional(c.FVD), optional(c.FID), ssim, result)
	}
	t := r.Thresholds
	fmt.Fprintf(w, row, "threshold", fmt.Sprintf(">= %.2f", t.MinSyncConfidence), "", fmt.Sprintf("<= %.1f", t.MaxFVD), "",
		fmt.Sprintf(">= %.3f", t.MinSSIMPreserved), "")
	for _, c := range r.Clips {
		for _, msg := range c.Failures {
			fmt.Fprintf(w, "FAIL %s: %s\n", c.Name, msg)
		}
		if len(c.Warnings) > 0 {
			fmt.Fprintf(w, "warnings %s: %s\n", c.Name, strings.Join(c.Warnings, ", "))
		}
	}
	if r.Passed {
		fmt.Fprintln(w, "smoke test passed")
	} else {
		fmt.Fprintln(w, "smoke test FAILED")
	}
}
