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

const (
	sampleVideo = "../../testdata/sample/face.mp4"
	sampleAudio = "../../testdata/sample/speech.wav"
)

func testEnv(stdout, stderr *bytes.Buffer) environment {
	lib := os.Getenv("LATENTSYNC_ORT_LIB")
	if lib == "" {
		lib = "../../.deps/onnxruntime-1.24.1/libonnxruntime.so.1.24.1"
	}
	return environment{
		stdout: stdout, stderr: stderr,
		getenv:        func(string) string { return "" },
		defaultBundle: "../../testdata/bundle",
		defaultORTLib: lib,
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	noFace := mediatest.MP4(t, mediatest.Clip{W: 320, H: 240, Seconds: 3, Audio: true})
	out := filepath.Join(t.TempDir(), "out.mp4")
	missing := filepath.Join(t.TempDir(), "missing.mp4")
	cases := []struct {
		name string
		args []string
		exit int
		want string // in the one-line error
	}{
		{"no video flag", []string{"--audio", sampleAudio, "--out", out}, exitBadInput, "INVALID_REQUEST: --video is required"},
		{"bad sync mode", []string{"--video", sampleVideo, "--audio", sampleAudio, "--out", out, "--sync-mode", "stretch"}, exitBadInput, `INVALID_REQUEST: sync mode "stretch"`},
		{"bad steps", []string{"--video", sampleVideo, "--audio", sampleAudio, "--out", out, "--steps", "-3"}, exitBadInput, "INVALID_REQUEST: --steps -3"},
		{"output directory missing", []string{"--video", sampleVideo, "--audio", sampleAudio, "--out", filepath.Join(missing, "o.mp4")}, exitBadInput, "does not exist"},
		{"missing file", []string{"--video", missing, "--audio", sampleAudio, "--out", out}, exitBadInput, "missing.mp4"},
		{"not a video", []string{"--video", mediatest.TextAsMP4(t), "--audio", sampleAudio, "--out", out}, exitBadInput, "UNSUPPORTED_MEDIA"},
		{"zero bytes", []string{"--video", mediatest.Empty(t), "--audio", sampleAudio, "--out", out}, exitBadInput, "UNSUPPORTED_MEDIA"},
		{"no video stream", []string{"--video", mediatest.AudioM4A(t), "--audio", sampleAudio, "--out", out}, exitBadInput, "NO_VIDEO_STREAM"},
		{"no audio stream", []string{"--video", sampleVideo, "--audio", mediatest.VideoOnlyMP4(t), "--out", out}, exitBadInput, "NO_AUDIO_STREAM"},
		{"corrupt file", []string{"--video", mediatest.TruncatedMP4(t), "--audio", sampleAudio, "--out", out}, exitBadInput, "CORRUPT_MEDIA"},
		{"no face", []string{"--video", noFace, "--audio", sampleAudio, "--out", out}, exitBadInput, "NO_FACE_DETECTED"},
		{"bundle missing", []string{"--video", sampleVideo, "--audio", sampleAudio, "--out", out, "--bundle", missing}, exitModel, "MODEL_UNAVAILABLE"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := dispatch(context.Background(), append([]string{"run"}, c.args...), testEnv(&stdout, &stderr))
			if code != c.exit {
				t.Errorf("exit %d, want %d; stderr: %s", code, c.exit, stderr.String())
			}
			requireOneLineError(t, stderr.String(), c.want)
			if _, err := os.Stat(out); err == nil {
				t.Error("an output was written")
			}
		})
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"run", "--no-such-flag"}, {"run", "extra"}} {
		var stdout, stderr bytes.Buffer
		if code := dispatch(context.Background(), args, testEnv(&stdout, &stderr)); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}

func TestRunReportsJSON(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.mp4")
	var stdout, stderr bytes.Buffer
	code := dispatch(context.Background(), []string{"run", "--video", sampleVideo, "--audio", sampleAudio,
		"--out", out, "--steps", "4", "--guidance", "1", "--json"}, testEnv(&stdout, &stderr))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var rep runReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report %q: %v", stdout.String(), err)
	}
	if rep.Output != out || rep.Frames != 160 || rep.Width != 512 || rep.Provider != "CPU" || rep.PeakRSSMiB <= 0 {
		t.Errorf("report %+v", rep)
	}
	if len(rep.Stages) < 10 {
		t.Errorf("stages %v", rep.Stages)
	}
	// The stand-in bundle has a SyncNet: the output's quality is measured.
	if q := rep.Quality; q.SyncConfidence == nil || q.SyncOffset == nil || q.SSIMPreserved == nil || q.SSIMOverall == nil || q.SSIMFrames == 0 {
		t.Errorf("quality %s", stdout.String())
	}
	if st, err := os.Stat(out); err != nil || st.Size() == 0 {
		t.Errorf("output: %v", err)
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr not empty: %q", stderr.String())
	}
}

// requireOneLineError checks the CLI's error contract: exactly one line,
// "latentsync: CODE: message", naming the problem.
func requireOneLineError(t *testing.T, stderr, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "latentsync: ") || !strings.Contains(lines[0], want) {
		t.Errorf("stderr %q: want one line containing %q", stderr, want)
	}
}
