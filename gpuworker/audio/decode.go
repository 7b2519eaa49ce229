// Package audio turns a media file into the per-video-frame audio features
// LatentSync's UNet cross-attends to: ffmpeg decode to 16 kHz mono, Whisper's
// log-mel spectrogram in pure Go, and overlapping 30 s encoder windows so
// there is no seam every 30 s.
package audio

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/latentsync/latentsync-service/internal/tail"

	"github.com/latentsync/latentsync-service/internal/joberr"
)

// Decoder runs ffmpeg to read a file's first audio stream as 16 kHz mono
// float32. The zero value is usable.
//
// Raw f32le on a pipe is used rather than WAV: a WAV written to a pipe has
// 0xFFFFFFFF sizes that readers misinterpret.
//
// AAC priming: ffmpeg's AAC encoder puts 1024 priming samples in front of
// the audio (other encoders ~2112). ffmpeg 5.1 honours the MP4/MOV edit list
// on decode and drops them, so audio from .mp4/.m4a/.mov lines up with the
// source sample-exactly (tested: cross-correlation lag 0); only the padding
// of the last AAC frame remains at the end (< 1024 samples at the codec rate,
// i.e. under 64 ms of trailing silence), which is harmless here. Containers
// without an edit list (raw ADTS .aac, Matroska written by ffmpeg) keep the
// priming: their audio starts ~64 ms late. Nothing in such files says how
// long the priming is, so no trim is guessed.
type Decoder struct {
	// FFmpeg is the binary to run; "" means "ffmpeg" from PATH.
	FFmpeg string
	// MaxDuration rejects longer audio with MEDIA_TOO_LONG, stopping ffmpeg
	// as soon as the limit is passed instead of decoding the whole file.
	// Zero means no limit.
	MaxDuration time.Duration
}

// Decode is Decoder{}.Decode: no duration limit.
func Decode(ctx context.Context, path string) ([]float32, error) {
	return Decoder{}.Decode(ctx, path)
}

// stderrTail bounds how much of ffmpeg's stderr is kept for error messages.
const stderrTail = 2048

// Decode returns the first audio stream of path as 16 kHz mono samples.
// Failures carry a job error code: NO_AUDIO_STREAM (no audio stream, or one
// that decodes to nothing), MEDIA_TOO_LONG (over MaxDuration),
// CORRUPT_MEDIA (ffmpeg failed; the tail of its stderr is in the cause).
// Cancellation returns ctx's error.
func (d Decoder) Decode(ctx context.Context, path string) ([]float32, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("decode audio %s: %w", path, err)
	}
	bin := d.FFmpeg
	if bin == "" {
		bin = "ffmpeg"
	}
	// A child context so that stopping early (duration limit) kills ffmpeg.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(runCtx, bin,
		"-nostdin", "-hide_banner", "-loglevel", "error",
		"-i", path,
		"-map", "0:a:0", // first audio stream, whatever else the file holds
		"-vn", "-sn", "-dn",
		// rematrix_maxval=1 normalises the downmix (stereo -> (L+R)/2), as
		// ffmpeg does for the s16le output Whisper's load_audio reads; for
		// float output ffmpeg would otherwise mix (L+R)/√2, 3 dB louder
		// than what the model was trained on.
		"-af", fmt.Sprintf("aresample=osr=%d:ochl=mono:osf=flt:rematrix_maxval=1", SampleRate),
		"-f", "f32le", "-ac", "1", "-ar", fmt.Sprint(SampleRate),
		"pipe:1")
	stderr := tail.New(stderrTail)
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("decode audio %s: %w", path, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("decode audio %s: start ffmpeg: %w", path, err)
	}

	maxSamples := -1
	if d.MaxDuration > 0 {
		maxSamples = int(math.Ceil(d.MaxDuration.Seconds() * SampleRate))
	}
	samples, readErr := readF32LE(stdout, maxSamples)
	if errors.Is(readErr, errTooLong) {
		cancel()
		_ = cmd.Wait() // killed on purpose; its exit status says nothing
		return nil, joberr.Wrap(joberr.MediaTooLong, readErr,
			"audio is longer than the %s limit", d.MaxDuration)
	}
	waitErr := cmd.Wait()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("decode audio %s: %w", path, ctx.Err())
	}
	if waitErr != nil {
		msg := strings.TrimSpace(stderr.String())
		cause := fmt.Errorf("decode audio %s: ffmpeg: %w: %s", path, waitErr, msg)
		if strings.Contains(msg, "matches no streams") {
			return nil, joberr.Wrap(joberr.NoAudioStream, cause, "the media has no audio stream")
		}
		return nil, joberr.Wrap(joberr.CorruptMedia, cause, "the audio could not be decoded")
	}
	if readErr != nil {
		return nil, fmt.Errorf("decode audio %s: read ffmpeg output: %w", path, readErr)
	}
	if len(samples) == 0 {
		return nil, joberr.New(joberr.NoAudioStream, "the audio stream is empty")
	}
	return samples, nil
}

var errTooLong = errors.New("audio exceeds the duration limit")

// readF32LE reads little-endian float32 samples until EOF. With limit >= 0
// it stops with errTooLong as soon as more than limit samples arrive. A
// trailing partial sample (a truncated write) is dropped.
func readF32LE(r io.Reader, limit int) ([]float32, error) {
	buf := make([]byte, 64<<10)
	var out []float32
	have := 0 // bytes in buf not yet converted (< 4 between reads)
	for {
		n, err := r.Read(buf[have:])
		have += n
		whole := have &^ 3
		for i := 0; i < whole; i += 4 {
			out = append(out, math.Float32frombits(binary.LittleEndian.Uint32(buf[i:])))
		}
		have = copy(buf, buf[whole:have])
		if limit >= 0 && len(out) > limit {
			return nil, errTooLong
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}
