package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latentsync/latentsync-service/internal/media/mediatest"
)

// shortSample is the sample's first 2 s (50 frames at 25 fps), re-encoded,
// and its speech cut to match: enough for three FVD clips, quick to run.
func shortSample(t *testing.T) (video, audio string) {
	t.Helper()
	video = mediatest.FFmpeg(t, "face.mp4", "-i", sampleVideo, "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p")
	audio = mediatest.FFmpeg(t, "speech.wav", "-i", sampleAudio, "-t", "2")
	return video, audio
}

// noiseVideo is 2 s of strong per-pixel noise, changing every frame, at the
// sample's size.
func noiseVideo(t *testing.T) string {
	t.Helper()
	return mediatest.FFmpeg(t, "noise.mp4", "-f", "lavfi", "-i", "color=c=gray:s=512x512:r=25:d=2,noise=alls=100:allf=t+u",
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")
}

func link(t *testing.T, src, dst string) {
	t.Helper()
	abs, err := filepath.Abs(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(abs, dst); err != nil {
		t.Fatal(err)
	}
}

func TestEvalScoresPairs(t *testing.T) {
	face, _ := shortSample(t)
	noise := noiseVideo(t)

	byName := t.TempDir()
	link(t, face, filepath.Join(byName, "same.input.mp4"))
	link(t, face, filepath.Join(byName, "same.output.mp4"))
	link(t, face, filepath.Join(byName, "noise.input.mp4"))
	link(t, noise, filepath.Join(byName, "noise.output.mp4"))

	// The same pairs listed in a pairs.json, paths relative to it or absolute.
	listed := t.TempDir()
	link(t, face, filepath.Join(listed, "face.mp4"))
	list := `{"pairs":[{"name":"same","input":"face.mp4","output":"face.mp4"},{"name":"noise","input":"face.mp4","output":"` + noise + `"}]}`
	if err := os.WriteFile(filepath.Join(listed, pairsFile), []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, dir := range []string{byName, listed} {
		var stdout, stderr bytes.Buffer
		code := dispatch(context.Background(), []string{"eval", "--pairs", dir, "--json"}, testEnv(&stdout, &stderr))
		if code != exitOK {
			t.Fatalf("%s: exit %d: %s", dir, code, stderr.String())
		}
		var rep evalReport
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatalf("report %q: %v", stdout.String(), err)
		}
		scores := map[string]pairScore{}
		for _, p := range rep.Pairs {
			scores[p.Name] = p
		}
		same, noisy := scores["same"], scores["noise"]
		if len(rep.Pairs) != 2 || same.FID == nil || same.FVD == nil || noisy.FID == nil || noisy.FVD == nil || rep.All.FVD == nil {
			t.Fatalf("report %s", stdout.String())
		}
		t.Logf("same: FID %.4g FVD %.4g; noise: FID %.4g FVD %.4g", *same.FID, *same.FVD, *noisy.FID, *noisy.FVD)
		if same.InputFrames != 50 || same.OutputFrames != 50 {
			t.Errorf("same: %d/%d frames, want 50/50", same.InputFrames, same.OutputFrames)
		}
		// Identical videos: the distances vanish up to eigensolver rounding.
		if *same.FID > 1e-6 || *same.FVD > 1e-6 {
			t.Errorf("identical videos: FID %g, FVD %g, want ~0", *same.FID, *same.FVD)
		}
		// Faces against noise: far apart on the stand-in's scale (the healthy
		// stand-in model scores under 2 on the same clip).
		if *noisy.FID < 100 || *noisy.FVD < 100 {
			t.Errorf("face vs noise: FID %g, FVD %g, want both over 100", *noisy.FID, *noisy.FVD)
		}
	}

	// The table names every pair and the pooled row.
	var stdout, stderr bytes.Buffer
	if code := dispatch(context.Background(), []string{"eval", "--pairs", byName}, testEnv(&stdout, &stderr)); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"FID", "FVD", "\nsame ", "\nnoise ", "\nall ", "50/50"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table %q lacks %q", stdout.String(), want)
		}
	}
}

func TestEvalRejectsBadInput(t *testing.T) {
	face := sampleVideo
	dir := func(files map[string]string) string {
		d := t.TempDir()
		for name, content := range files {
			if content == "" {
				link(t, face, filepath.Join(d, name))
			} else if err := os.WriteFile(filepath.Join(d, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	cases := []struct {
		name string
		args []string
		exit int
		want string
	}{
		{"no pairs flag", nil, exitBadInput, "INVALID_REQUEST: --pairs is required"},
		{"not a directory", []string{"--pairs", sampleVideo}, exitBadInput, "not a directory"},
		{"empty directory", []string{"--pairs", dir(nil)}, exitBadInput, "holds no NAME.input.*"},
		{"input without output", []string{"--pairs", dir(map[string]string{"a.input.mp4": "", "b.input.mp4": "", "b.output.mp4": ""})}, exitBadInput, "a.input.mp4 has no a.output.*"},
		{"output without input", []string{"--pairs", dir(map[string]string{"a.output.mp4": ""})}, exitBadInput, "a.output.mp4 has no a.input.*"},
		{"bad pairs.json", []string{"--pairs", dir(map[string]string{"pairs.json": `{"pairs":[{"input":"x.mp4"}]}`})}, exitBadInput, "needs an input and an output"},
		{"not a video", []string{"--pairs", dir(map[string]string{"a.input.mp4": "", "a.output.mp4": "plain text"})}, exitBadInput, "UNSUPPORTED_MEDIA"},
		{"bad stride", []string{"--pairs", dir(nil), "--frame-stride", "0"}, exitBadInput, "--frame-stride 0"},
		{"evaluation bundle missing", []string{"--pairs", dir(map[string]string{"a.input.mp4": "", "a.output.mp4": ""}), "--eval-bundle", t.TempDir()}, exitModel, "MODEL_UNAVAILABLE"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := dispatch(context.Background(), append([]string{"eval"}, c.args...), testEnv(&stdout, &stderr))
			if code != c.exit {
				t.Errorf("exit %d, want %d; stderr: %s", code, c.exit, stderr.String())
			}
			requireOneLineError(t, stderr.String(), c.want)
		})
	}
}
