package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latentsync/latentsync-service/gpuworker/bundle"
	"github.com/latentsync/latentsync-service/gpuworker/standin"
)

// standinCopy copies the stand-in bundle (face detector included) into a
// temporary directory that a test may alter.
func standinCopy(t *testing.T) string {
	t.Helper()
	const src = "../../testdata/bundle"
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// noiseBundle is the stand-in with its UNet swapped for one that outputs
// noise whatever its input, checksum updated so the bundle still loads.
func noiseBundle(t *testing.T) string {
	t.Helper()
	dir := standinCopy(t)
	unet, err := standin.NoiseUNet(standin.DefaultResolution)
	if err != nil {
		t.Fatal(err)
	}
	if err := standin.ReplaceModel(dir, bundle.UNetModel, unet); err != nil {
		t.Fatal(err)
	}
	return dir
}

// shortClips is a --clips directory holding the sample's first 2 s.
func shortClips(t *testing.T) string {
	t.Helper()
	video, audio := shortSample(t)
	dir := t.TempDir()
	link(t, video, filepath.Join(dir, "face.video.mp4"))
	link(t, audio, filepath.Join(dir, "face.audio.wav"))
	return dir
}

// TestSmokeGatesTheUNet is the acceptance test: with the stand-in's
// calibrated thresholds (no threshold flags) the healthy bundle passes and
// the same bundle with a noise UNet fails on FVD, with the table saying so.
func TestSmokeGatesTheUNet(t *testing.T) {
	clips := shortClips(t)
	cases := []struct {
		name   string
		bundle string
		exit   int
		want   []string // in the table
	}{
		{"healthy stand-in", "../../testdata/bundle", exitOK, []string{"face ", "pass", "smoke test passed"}},
		{"noise unet", noiseBundle(t), exitThreshold, []string{"FAIL", "FAIL face: FVD", "smoke test FAILED"}},
	}
	fvd := map[string]float64{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			keep := t.TempDir()
			var stdout, stderr bytes.Buffer
			code := dispatch(context.Background(), []string{"smoke", "--bundle", c.bundle, "--clips", clips, "--keep", keep, "--json"}, testEnv(&stdout, &stderr))
			if code != c.exit {
				t.Fatalf("exit %d, want %d; stdout %s; stderr: %s", code, c.exit, stdout.String(), stderr.String())
			}
			if stderr.Len() != 0 {
				t.Errorf("stderr: %q", stderr.String())
			}
			var rep smokeReport
			if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
				t.Fatalf("report %q: %v", stdout.String(), err)
			}
			if rep.Passed != (c.exit == exitOK) || len(rep.Clips) != 1 {
				t.Fatalf("report %+v", rep)
			}
			r := rep.Clips[0]
			if r.Frames != 50 || r.FVD == nil || r.SyncConfidence == nil || r.SyncOffset == nil || r.SSIMFrames == 0 {
				t.Fatalf("clip result %+v", r)
			}
			if rep.Thresholds != standinThresholds {
				t.Errorf("thresholds %+v, want the stand-in calibration %+v", rep.Thresholds, standinThresholds)
			}
			if _, err := os.Stat(filepath.Join(keep, "face.output.mp4")); err != nil {
				t.Errorf("--keep: %v", err)
			}
			fvd[c.name] = *r.FVD

			// What a person reads without --json.
			var table bytes.Buffer
			rep.print(&table)
			t.Logf("\n%s", table.String())
			for _, want := range c.want {
				if !strings.Contains(table.String(), want) {
					t.Errorf("table lacks %q", want)
				}
			}
		})
	}
	if h, n := fvd["healthy stand-in"], fvd["noise unet"]; !(n > 5*h) {
		t.Errorf("FVD healthy %.2f, noise UNet %.2f: want the broken model at least 5x worse", h, n)
	}
}

func TestSmokeThresholdFlags(t *testing.T) {
	clips := shortClips(t)
	// A renamed copy of the stand-in: a bundle with no calibration.
	other := standinCopy(t)
	path := filepath.Join(other, "manifest.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw = bytes.Replace(raw, []byte(`"name": "latentsync-standin"`), []byte(`"name": "latentsync-1.5"`), 1)
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		exit int
		want string // in stdout, or the one stderr line on an error; | separates parts expected in order
	}{
		{"uncalibrated bundle needs thresholds", []string{"--bundle", other}, exitBadInput, "INVALID_REQUEST: bundle \"latentsync-1.5\": pass --expected-sync-conf and --expected-fvd"},
		// One run crossing every limit: each failure is listed, and the flags
		// make an uncalibrated bundle testable.
		{"uncalibrated bundle, every limit crossed", []string{"--bundle", other, "--expected-sync-conf", "8.5", "--expected-fvd", "0.001", "--expected-ssim", "1.01"},
			exitThreshold, "FAIL face: sync confidence |< 8.50\nFAIL face: FVD |> 0.0\nFAIL face: SSIM outside the mouth |< 1.010\n"},
		{"not a number", []string{"--expected-fvd", "lots"}, exitUsage, "invalid value"},
		{"clips missing", []string{"--clips", filepath.Join(t.TempDir(), "none")}, exitBadInput, "not a directory"},
		{"evaluation bundle missing", []string{"--eval-bundle", t.TempDir()}, exitModel, "MODEL_UNAVAILABLE"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"smoke"}, c.args...)
			if !strings.Contains(strings.Join(c.args, " "), "--clips") {
				args = append(args, "--clips", clips)
			}
			var stdout, stderr bytes.Buffer
			code := dispatch(context.Background(), args, testEnv(&stdout, &stderr))
			if code != c.exit {
				t.Fatalf("exit %d, want %d; stdout %s; stderr %s", code, c.exit, stdout.String(), stderr.String())
			}
			out := stdout.String()
			if code == exitBadInput || code == exitModel || code == exitUsage {
				out = stderr.String()
			}
			rest := out
			for _, part := range strings.Split(c.want, "|") {
				i := strings.Index(rest, part)
				if i < 0 {
					t.Fatalf("output %q lacks %q (in order)", out, part)
				}
				rest = rest[i+len(part):]
			}
		})
	}
}
