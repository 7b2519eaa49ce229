package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/latentsync/latentsync-service/gpuworker/evalbundle"
	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/quality"
)

// pairsFile, when present in a pairs directory, lists the pairs explicitly.
const pairsFile = "pairs.json"

type evalFlags struct {
	pairs, evalBundle, ortLib string
	frameStride, clipStride   int
	cuda, jsonReport          bool
}

// evalBundleFlag is the --eval-bundle flag of eval and smoke.
func evalBundleFlag(fs *flag.FlagSet, env environment, dst *string) {
	fs.StringVar(dst, "eval-bundle", firstSet(env.getenv("LATENTSYNC_EVAL_BUNDLE"), besideDefaultBundle(env, "evalbundle")),
		"evaluation bundle directory (FID/FVD feature networks)")
}

func evalCommand(ctx context.Context, args []string, env environment) int {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	var f evalFlags
	fs.StringVar(&f.pairs, "pairs", "", "directory of NAME.input.* / NAME.output.* video pairs, or with a pairs.json (required)")
	evalBundleFlag(fs, env, &f.evalBundle)
	fs.StringVar(&f.ortLib, "onnxruntime", firstSet(env.getenv("LATENTSYNC_ORT_LIB"), env.defaultORTLib), "path of libonnxruntime.so")
	fs.IntVar(&f.frameStride, "frame-stride", evalbundle.DefaultFrameStride, "FID measures every n-th frame")
	fs.IntVar(&f.clipStride, "clip-stride", 0, "FVD clips start every n frames (default: the clip length, no overlap)")
	fs.BoolVar(&f.cuda, "cuda", true, "use the CUDA execution provider when available")
	fs.BoolVar(&f.jsonReport, "json", false, "print the result as JSON on stdout")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.stderr, "latentsync eval: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if f.pairs == "" {
		return reportError(env, joberr.New(joberr.InvalidRequest, "--pairs is required"))
	}
	if f.frameStride <= 0 || f.clipStride < 0 {
		return reportError(env, joberr.New(joberr.InvalidRequest, "--frame-stride %d, --clip-stride %d: want positive strides", f.frameStride, f.clipStride))
	}
	pairs, err := readPairs(f.pairs)
	if err != nil {
		return reportError(env, err)
	}
	if f.evalBundle == "" {
		return reportError(env, joberr.New(joberr.ModelUnavailable, "no evaluation bundle: pass --eval-bundle or set LATENTSYNC_EVAL_BUNDLE"))
	}

	rt, err := openRuntime(f.ortLib, f.cuda, commandLogger(env))
	if err != nil {
		return reportError(env, err)
	}
	defer rt.Close()
	eb, err := evalbundle.Load(ctx, rt, f.evalBundle)
	if err != nil {
		return reportError(env, err)
	}
	defer eb.Close()

	sampling := evalbundle.Sampling{FrameStride: f.frameStride, ClipStride: f.clipStride}
	report := evalReport{EvalBundle: eb.Manifest.Name + "@" + eb.Manifest.Version}
	var inputs, outputs []*evalbundle.Features
	for _, p := range pairs {
		in, err := eb.VideoFeatures(ctx, p.Input, sampling)
		if err != nil {
			return reportError(env, err)
		}
		out, err := eb.VideoFeatures(ctx, p.Output, sampling)
		if err != nil {
			return reportError(env, err)
		}
		s, err := scorePair(p.Name, in, out)
		if err != nil {
			return reportError(env, err)
		}
		report.Pairs = append(report.Pairs, s)
		inputs, outputs = append(inputs, in), append(outputs, out)
	}
	if report.All, err = scorePair("all", merge(inputs), merge(outputs)); err != nil {
		return reportError(env, err)
	}
	if err := emit(env, f.jsonReport, report); err != nil {
		return reportError(env, err)
	}
	return exitOK
}

// videoPair is one generated video and the input it was made from.
type videoPair struct {
	Name   string `json:"name"`
	Input  string `json:"input"`
	Output string `json:"output"`
}

// readPairs lists dir's pairs: from dir/pairs.json when it exists
// ({"pairs":[{"name","input","output"}]}, paths relative to dir), otherwise
// every NAME.input.EXT with its NAME.output.EXT (extensions may differ).
// A file of one side without the other is an error, not silently skipped.
func readPairs(dir string) ([]videoPair, error) {
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		return nil, joberr.New(joberr.InvalidRequest, "--pairs %s: not a directory", dir)
	}
	raw, err := os.ReadFile(filepath.Join(dir, pairsFile))
	switch {
	case err == nil:
		return parsePairsFile(dir, raw)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, joberr.Wrap(joberr.InvalidRequest, err, "read %s", filepath.Join(dir, pairsFile))
	}
	return matchSides(dir, "input", "output")
}

func parsePairsFile(dir string, raw []byte) ([]videoPair, error) {
	var list struct {
		Pairs []videoPair `json:"pairs"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&list); err != nil {
		return nil, joberr.Wrap(joberr.InvalidRequest, err, "%s: %v", filepath.Join(dir, pairsFile), err)
	}
	if len(list.Pairs) == 0 {
		return nil, joberr.New(joberr.InvalidRequest, "%s lists no pairs", filepath.Join(dir, pairsFile))
	}
	seen := map[string]bool{}
	for i := range list.Pairs {
		p := &list.Pairs[i]
		if p.Input == "" || p.Output == "" {
			return nil, joberr.New(joberr.InvalidRequest, "%s: pair %d needs an input and an output", pairsFile, i)
		}
		if p.Name == "" {
			p.Name = strings.TrimSuffix(filepath.Base(p.Input), filepath.Ext(p.Input))
		}
		if seen[p.Name] {
			return nil, joberr.New(joberr.InvalidRequest, "%s: pair name %q repeated", pairsFile, p.Name)
		}
		seen[p.Name] = true
		for _, path := range []*string{&p.Input, &p.Output} {
			if !filepath.IsAbs(*path) {
				*path = filepath.Join(dir, *path)
			}
		}
	}
	return list.Pairs, nil
}

// matchSides pairs dir's NAME.<a>.EXT files with its NAME.<b>.EXT files.
func matchSides(dir, a, b string) ([]videoPair, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, joberr.Wrap(joberr.InvalidRequest, err, "read %s", dir)
	}
	sides := map[string]map[string]string{a: {}, b: {}} // side -> name -> path
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		stem := strings.TrimSuffix(e.Name(), filepath.Ext(e.Name()))
		dot := strings.LastIndexByte(stem, '.')
		if dot <= 0 {
			continue
		}
		name, side := stem[:dot], stem[dot+1:]
		files, ok := sides[side]
		if !ok {
			continue
		}
		if prev, dup := files[name]; dup {
			return nil, joberr.New(joberr.InvalidRequest, "%s: %s and %s are both the %s of %q", dir, filepath.Base(prev), e.Name(), side, name)
		}
		files[name] = filepath.Join(dir, e.Name())
	}
	var pairs []videoPair
	for name, first := range sides[a] {
		second, ok := sides[b][name]
		if !ok {
			return nil, joberr.New(joberr.InvalidRequest, "%s: %s has no %s.%s.* beside it", dir, filepath.Base(first), name, b)
		}
		pairs = append(pairs, videoPair{Name: name, Input: first, Output: second})
	}
	for name, second := range sides[b] {
		if _, ok := sides[a][name]; !ok {
			return nil, joberr.New(joberr.InvalidRequest, "%s: %s has no %s.%s.* beside it", dir, filepath.Base(second), name, a)
		}
	}
	if len(pairs) == 0 {
		return nil, joberr.New(joberr.InvalidRequest, "%s holds no NAME.%s.* / NAME.%s.* pairs and no %s", dir, a, b, pairsFile)
	}
	slices.SortFunc(pairs, func(x, y videoPair) int { return strings.Compare(x.Name, y.Name) })
	return pairs, nil
}

// pairScore is FID and FVD between one set of inputs and outputs; nil when
// a side has fewer than two samples (no covariance to fit).
type pairScore struct {
	Name         string   `json:"name"`
	InputFrames  int      `json:"input_frames"`
	OutputFrames int      `json:"output_frames"`
	FID          *float64 `json:"fid"`
	FVD          *float64 `json:"fvd"`
}

func scorePair(name string, in, out *evalbundle.Features) (pairScore, error) {
	s := pairScore{Name: name, InputFrames: in.Frames, OutputFrames: out.Frames}
	var err error
	if s.FID, err = frechet(in.Images, out.Images); err != nil {
		return s, fmt.Errorf("FID of %s: %w", name, err)
	}
	if s.FVD, err = frechet(in.Clips, out.Clips); err != nil {
		return s, fmt.Errorf("FVD of %s: %w", name, err)
	}
	return s, nil
}

// frechet fits a Gaussian to each feature set and returns their Fréchet
// distance, or nil when either set is too small to fit.
func frechet(a, b [][]float32) (*float64, error) {
	if len(a) < 2 || len(b) < 2 {
		return nil, nil
	}
	ga, err := quality.FitGaussian(a)
	if err != nil {
		return nil, err
	}
	gb, err := quality.FitGaussian(b)
	if err != nil {
		return nil, err
	}
	d, err := quality.Frechet(ga, gb)
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// merge pools several videos' features, as FID/FVD over a set do.
func merge(fs []*evalbundle.Features) *evalbundle.Features {
	all := &evalbundle.Features{}
	for _, f := range fs {
		all.Frames += f.Frames
		all.Images = append(all.Images, f.Images...)
		all.Clips = append(all.Clips, f.Clips...)
	}
	return all
}

type evalReport struct {
	EvalBundle string      `json:"eval_bundle"`
	Pairs      []pairScore `json:"pairs"`
	All        pairScore   `json:"all"`
}

func (r evalReport) print(w io.Writer) {
	fmt.Fprintf(w, "evaluation bundle %s\n", r.EvalBundle)
	fmt.Fprintf(w, "%-24s %15s %10s %10s\n", "pair", "frames in/out", "FID", "FVD")
	for _, p := range append(slices.Clone(r.Pairs), r.All) {
		fmt.Fprintf(w, "%-24s %15s %10s %10s\n", p.Name, fmt.Sprintf("%d/%d", p.InputFrames, p.OutputFrames), optional(p.FID), optional(p.FVD))
	}
	if r.All.FID == nil || r.All.FVD == nil {
		fmt.Fprintln(w, "-: too few samples (FID needs 2 sampled frames per side, FVD 2 whole clips)")
	}
}

func optional(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", *v)
}
