package media_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/media"
	"github.com/latentsync/latentsync-service/internal/media/mediatest"
)

func TestProbeRejects(t *testing.T) {
	mediatest.Require(t, "ffmpeg", "ffprobe")
	tests := []struct {
		name     string
		file     func(t *testing.T) string
		code     joberr.Code
		contains string
	}{
		{"missing file", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope.mp4") },
			joberr.InvalidRequest, "does not exist"},
		{"directory", func(t *testing.T) string { return t.TempDir() },
			joberr.InvalidRequest, "directory"},
		{"zero bytes", func(t *testing.T) string { return mediatest.Empty(t) },
			joberr.UnsupportedMedia, "not a video or audio file"},
		{"text named .mp4", func(t *testing.T) string { return mediatest.TextAsMP4(t) },
			joberr.UnsupportedMedia, "not a video or audio file"},
		{"random bytes named .mov", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "noise.mov")
			b := make([]byte, 4096)
			for i := range b {
				b[i] = byte(i*7919 + i>>3)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}, joberr.UnsupportedMedia, "not a video or audio file"},
		{"mp4 cut before its moov", func(t *testing.T) string { return mediatest.TruncatedMP4(t) },
			joberr.CorruptMedia, "damaged or incomplete"},
		{"AVI container", func(t *testing.T) string {
			return mediatest.FFmpeg(t, "clip.avi", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25", "-t", "0.4", "-c:v", "mpeg4")
		}, joberr.UnsupportedMedia, `container "avi" is not supported`},
		{"Ogg container", func(t *testing.T) string {
			return mediatest.FFmpeg(t, "tone.ogg", "-f", "lavfi", "-i", "sine", "-t", "0.5", "-c:a", "libvorbis")
		}, joberr.UnsupportedMedia, `container "ogg" is not supported`},
		{"PNG image", func(t *testing.T) string {
			return mediatest.FFmpeg(t, "still.png", "-f", "lavfi", "-i", "testsrc2=size=64x64", "-frames:v", "1")
		}, joberr.UnsupportedMedia, "is an image"},
		{"MJPEG video in Matroska", func(t *testing.T) string {
			return mediatest.FFmpeg(t, "mjpeg.mkv", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25", "-t", "0.4", "-c:v", "mjpeg")
		}, joberr.UnsupportedMedia, `video codec "mjpeg" is not supported`},
		{"AC-3 audio in MP4", func(t *testing.T) string {
			return mediatest.FFmpeg(t, "ac3.mp4", "-f", "lavfi", "-i", "sine", "-t", "0.5", "-c:a", "ac3")
		}, joberr.UnsupportedMedia, `audio codec "ac3" is not supported`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.file(t)
			info, err := media.Probe(context.Background(), path)
			if err == nil {
				t.Fatalf("Probe succeeded: %+v", info)
			}
			if got := joberr.CodeOf(err); got != tc.code {
				t.Errorf("code = %s, want %s (%v)", got, tc.code, err)
			}
			msg := joberr.MessageOf(err)
			if !strings.Contains(msg, tc.contains) {
				t.Errorf("message %q does not contain %q", msg, tc.contains)
			}
			if !strings.Contains(msg, filepath.Base(path)) {
				t.Errorf("message %q does not name the file %q", msg, filepath.Base(path))
			}
		})
	}
}

func TestProbeAccepts(t *testing.T) {
	mediatest.Require(t, "ffmpeg", "ffprobe")
	tests := []struct {
		name      string
		file      func(t *testing.T) string
		container string
		duration  time.Duration
		video     *wantVideo
		audio     *wantAudio
	}{
		{"H.264 + AAC MP4", func(t *testing.T) string { return mediatest.AVMP4(t) },
			"mp4", 2 * time.Second, &wantVideo{"h264", 320, 240, 50, 0}, &wantAudio{"aac", 48000}},
		{"video-only MP4", func(t *testing.T) string { return mediatest.VideoOnlyMP4(t) },
			"mp4", 2 * time.Second, &wantVideo{"h264", 320, 240, 50, 0}, nil},
		{"rotated MP4 reports the displayed size", func(t *testing.T) string { return mediatest.RotatedMP4(t) },
			"mp4", 2 * time.Second, &wantVideo{"h264", 240, 320, 50, 90}, nil},
		{"AAC M4A", func(t *testing.T) string { return mediatest.AudioM4A(t) },
			"m4a", 2 * time.Second, nil, &wantAudio{"aac", 48000}},
		{"MOV", func(t *testing.T) string {
			return mediatest.FFmpeg(t, "clip.mov", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25", "-t", "1", "-c:v", "libx264")
		}, "mov", time.Second, &wantVideo{"h264", 64, 64, 25, 0}, nil},
		{"VP9 + Opus Matroska", func(t *testing.T) string { return mediatest.VP9MKV(t) },
			"matroska", 2 * time.Second, &wantVideo{"vp9", 320, 240, 0, 0}, &wantAudio{"opus", 48000}},
		{"VP8 + Vorbis WebM", func(t *testing.T) string {
			return mediatest.FFmpeg(t, "clip.webm", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25",
				"-f", "lavfi", "-i", "sine=sample_rate=44100", "-t", "1", "-c:v", "libvpx", "-c:a", "libvorbis")
		}, "webm", time.Second, &wantVideo{"vp8", 64, 64, 0, 0}, &wantAudio{"vorbis", 44100}},
		{"MP3 with cover art", func(t *testing.T) string {
			return mediatest.FFmpeg(t, "song.mp3", "-f", "lavfi", "-i", "sine=sample_rate=44100",
				"-f", "lavfi", "-i", "color=red:size=32x32", "-map", "0:a", "-map", "1:v", "-frames:v", "1",
				"-t", "1", "-c:a", "libmp3lame", "-c:v", "mjpeg", "-disposition:v", "attached_pic")
		}, "mp3", time.Second, nil, &wantAudio{"mp3", 44100}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info, err := media.Probe(context.Background(), tc.file(t))
			if err != nil {
				t.Fatal(err)
			}
			if info.Container != tc.container {
				t.Errorf("container = %q, want %q", info.Container, tc.container)
			}
			if d := info.Duration - tc.duration; d < -50*time.Millisecond || d > 50*time.Millisecond {
				t.Errorf("duration = %s, want %s", info.Duration, tc.duration)
			}
			if info.Size <= 0 {
				t.Errorf("size = %d", info.Size)
			}
			checkVideo(t, info.Video, tc.video)
			checkAudio(t, info.Audio, tc.audio)
		})
	}
}

type wantVideo struct {
	codec    string
	w, h     int
	frames   int64 // 0: unknown to the container
	rotation int
}

func checkVideo(t *testing.T, got *media.VideoStream, want *wantVideo) {
	t.Helper()
	if got == nil || want == nil {
		if (got == nil) != (want == nil) {
			t.Errorf("video = %+v, want %+v", got, want)
		}
		return
	}
	if got.Codec != want.codec || got.Width != want.w || got.Height != want.h ||
		got.Frames != want.frames || got.Rotation != want.rotation {
		t.Errorf("video = %+v, want %+v", got, want)
	}
	if got.FrameRate != (media.Rational{Num: 25, Den: 1}) || got.FPS != 25 {
		t.Errorf("frame rate = %v (%g), want 25/1", got.FrameRate, got.FPS)
	}
}

type wantAudio struct {
	codec string
	rate  int
}

func checkAudio(t *testing.T, got *media.AudioStream, want *wantAudio) {
	t.Helper()
	if got == nil || want == nil {
		if (got == nil) != (want == nil) {
			t.Errorf("audio = %+v, want %+v", got, want)
		}
		return
	}
	if got.Codec != want.codec || got.SampleRate != want.rate || got.Channels != 1 || got.Duration <= 0 {
		t.Errorf("audio = %+v, want %+v, mono, a duration", got, want)
	}
}

func TestProbeSpeechWAV(t *testing.T) {
	mediatest.Require(t, "ffprobe")
	info, err := media.Probe(context.Background(), mediatest.SpeechWAV(t, "hello, this is a test of the speech track"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Container != "wav" || info.Video != nil || info.Audio == nil ||
		info.Audio.Codec != "pcm_s16le" || info.Audio.SampleRate != 22050 || info.Audio.Channels != 1 {
		t.Errorf("info = %+v, audio %+v", info, info.Audio)
	}
	if info.Duration < time.Second {
		t.Errorf("duration = %s, want the length of a sentence", info.Duration)
	}
}

func TestRequireStreams(t *testing.T) {
	v := &media.VideoStream{Codec: "h264", Width: 2, Height: 2}
	a := &media.AudioStream{Codec: "aac"}
	tests := []struct {
		name         string
		info         *media.Info
		videoErr     joberr.Code
		audioErr     joberr.Code
		wantContains string
	}{
		{"both", &media.Info{Path: "/x/in.mp4", Video: v, Audio: a}, "", "", ""},
		{"video only", &media.Info{Path: "/x/in.mp4", Video: v}, "", joberr.NoAudioStream, `"in.mp4" has no audio stream`},
		{"audio only", &media.Info{Path: "/x/in.m4a", Audio: a}, joberr.NoVideoStream, "", `"in.m4a" has no video stream`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			verr, aerr := media.RequireVideo(tc.info), media.RequireAudio(tc.info)
			if joberr.CodeOf(verr) != tc.videoErr || joberr.CodeOf(aerr) != tc.audioErr {
				t.Fatalf("RequireVideo = %v, RequireAudio = %v", verr, aerr)
			}
			for _, err := range []error{verr, aerr} {
				if err != nil && !strings.Contains(joberr.MessageOf(err), tc.wantContains) {
					t.Errorf("message %q does not contain %q", joberr.MessageOf(err), tc.wantContains)
				}
			}
		})
	}
}

func TestLimitsCheck(t *testing.T) {
	lim := media.Limits{MaxDuration: 10 * time.Minute, MaxSide: 4096, MaxBytes: 500_000_000}
	info := func(size int64, d time.Duration, w, h int) *media.Info {
		i := &media.Info{Path: "/jobs/video", Size: size, Duration: d}
		if w > 0 {
			i.Video = &media.VideoStream{Width: w, Height: h}
		}
		return i
	}
	tests := []struct {
		name string
		lim  media.Limits
		info *media.Info
		want joberr.Code
	}{
		{"within", lim, info(1e6, time.Minute, 1920, 1080), ""},
		{"at every limit", lim, info(500_000_000, 10*time.Minute, 4096, 4096), ""},
		{"too many bytes", lim, info(500_000_001, time.Minute, 1920, 1080), joberr.MediaTooLarge},
		{"too long", lim, info(1e6, 10*time.Minute+time.Millisecond, 1920, 1080), joberr.MediaTooLong},
		{"too wide", lim, info(1e6, time.Minute, 4097, 1080), joberr.MediaTooLarge},
		{"too tall", lim, info(1e6, time.Minute, 1080, 4097), joberr.MediaTooLarge},
		{"audio has no sides", lim, info(1e6, time.Minute, 0, 0), ""},
		{"zero limits are none", media.Limits{}, info(1e12, 100*time.Hour, 1e5, 1e5), ""},
		{"audio defaults", media.AudioLimits(), info(100_000_001, time.Minute, 0, 0), joberr.MediaTooLarge},
		{"video defaults", media.VideoLimits(), info(1e6, 11*time.Minute, 640, 480), joberr.MediaTooLong},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.lim.Check(tc.info)
			if got := joberr.CodeOf(err); got != tc.want {
				t.Fatalf("Check = %v, want code %q", err, tc.want)
			}
			if err != nil && !strings.Contains(joberr.MessageOf(err), `"video"`) {
				t.Errorf("message %q does not name the file", joberr.MessageOf(err))
			}
		})
	}
}

func TestVerifyDecodable(t *testing.T) {
	mediatest.Require(t, "ffmpeg", "ffprobe")
	tests := []struct {
		name   string
		file   func(t *testing.T) string
		window time.Duration
		want   joberr.Code
	}{
		{"intact MP4, head and tail", func(t *testing.T) string {
			return mediatest.MP4(t, mediatest.Clip{W: 160, H: 120, Seconds: 4, Audio: true})
		}, time.Second, ""},
		{"intact MP4, decoded whole", func(t *testing.T) string { return mediatest.AVMP4(t) }, time.Second, ""},
		{"intact Matroska", func(t *testing.T) string { return mediatest.VP9MKV(t) }, 500 * time.Millisecond, ""},
		{"intact WAV", func(t *testing.T) string { return mediatest.SpeechWAV(t, "one two three four five six") }, 200 * time.Millisecond, ""},
		{"MP4 with moov first, data cut", func(t *testing.T) string { return mediatest.TruncatedFaststartMP4(t) }, time.Second, joberr.CorruptMedia},
		{"WebM cut in half", func(t *testing.T) string { return mediatest.TruncatedWebM(t) }, time.Second, joberr.CorruptMedia},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			info, err := media.Probe(ctx, tc.file(t))
			if err != nil {
				t.Fatalf("Probe: %v (a truncated file with an intact header must probe)", err)
			}
			err = media.VerifyDecodable(ctx, info, tc.window)
			if err != nil {
				t.Log(err)
			}
			if got := joberr.CodeOf(err); got != tc.want {
				t.Fatalf("VerifyDecodable = %v, want code %q", err, tc.want)
			}
		})
	}
}
