package media

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/latentsync/latentsync-service/internal/tail"

	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/raster"
)

// EncodeOptions configures an Encoder.
type EncodeOptions struct {
	Width, Height int    // size of the frames written; odd sides are padded (see CreateEncoder)
	FPS           int    // 0 means DefaultFPS
	AudioPath     string // the speech to mux; "" writes a video-only file
	// Frames, when > 0, is the number of frames the caller will write;
	// Close fails if a different number was written.
	Frames int
	CRF    int    // x264 quality; 0 means 18 (visually lossless; lossless is not offered)
	Preset string // x264 preset; "" means "veryfast"
}

// Encoder writes rgb24 frames to an H.264 + AAC MP4.
//
// It works in two steps so that the output is exact and appears atomically:
// Write streams frames into an ffmpeg that encodes a video-only temporary
// file; Close then knows the frame count and muxes that video (copied, not
// re-encoded) with the speech encoded to AAC, padded with silence or cut to
// exactly frames/FPS seconds, with the index at the front (+faststart), into
// a second temporary file in the output's directory, renamed onto the output
// when complete. A failure or Abort removes both temporary files, so the
// output path only ever holds a complete file.
//
// H.264 in yuv420p needs even sides: an odd width or height is padded by one
// column or row repeating the last one, so the output is then one pixel
// larger than the frames. Colours are converted with BT.709 and tagged so.
//
// An Encoder is not safe for concurrent use.
type Encoder struct {
	ctx      context.Context
	out      string
	opts     EncodeOptions
	tmpVideo string
	cmd      *exec.Cmd
	in       io.WriteCloser
	stderr   *tail.Buffer
	frames   int
	done     bool  // Close or Abort ran
	err      error // first failure of the video process
}

// CreateEncoder starts encoding to out. Call Close to finish it, or Abort.
func CreateEncoder(ctx context.Context, out string, opts EncodeOptions) (*Encoder, error) {
	if opts.Width <= 0 || opts.Height <= 0 {
		return nil, fmt.Errorf("encode %s: invalid frame size %dx%d", out, opts.Width, opts.Height)
	}
	if opts.FPS == 0 {
		opts.FPS = DefaultFPS
	}
	if opts.CRF == 0 {
		opts.CRF = 18
	}
	if opts.Preset == "" {
		opts.Preset = "veryfast"
	}
	if opts.FPS < 0 || opts.Frames < 0 || opts.CRF < 0 || opts.CRF > 51 {
		return nil, fmt.Errorf("encode %s: invalid options %+v", out, opts)
	}
	if opts.AudioPath != "" {
		if _, err := os.Stat(opts.AudioPath); err != nil {
			return nil, fmt.Errorf("encode %s: audio: %w", out, err)
		}
	}
	tmpVideo, err := tempName(out, "video")
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", out, err)
	}

	filter := "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p"
	if padW, padH := opts.Width%2, opts.Height%2; padW+padH > 0 {
		filter = fmt.Sprintf("pad=%d:%d,fillborders=right=%d:bottom=%d:mode=smear,",
			opts.Width+padW, opts.Height+padH, padW, padH) + filter
	}
	cmd := command(ctx, "ffmpeg", "-nostdin", "-v", "error", "-y",
		"-f", "rawvideo", "-pix_fmt", "rgb24",
		"-video_size", fmt.Sprintf("%dx%d", opts.Width, opts.Height),
		"-framerate", strconv.Itoa(opts.FPS), "-i", "pipe:0",
		"-vf", filter,
		"-c:v", "libx264", "-preset", opts.Preset, "-crf", strconv.Itoa(opts.CRF),
		"-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
		"-an", "-f", "mp4", inputURL(tmpVideo))
	in, err := cmd.StdinPipe()
	if err != nil {
		os.Remove(tmpVideo)
		return nil, fmt.Errorf("encode %s: %w", out, err)
	}
	stderr := tail.New(stderrTail)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		os.Remove(tmpVideo)
		return nil, fmt.Errorf("encode %s: start ffmpeg: %w", out, err)
	}
	return &Encoder{ctx: ctx, out: out, opts: opts, tmpVideo: tmpVideo, cmd: cmd, in: in, stderr: stderr}, nil
}

// Frames is the number of frames written so far.
func (e *Encoder) Frames() int { return e.frames }

// Write encodes one frame; it must be Width x Height.
func (e *Encoder) Write(frame *raster.RGB) error {
	switch {
	case e.done:
		return fmt.Errorf("encode %s: write after Close or Abort", e.out)
	case e.err != nil:
		return e.err
	case frame.W != e.opts.Width || frame.H != e.opts.Height || len(frame.Pix) != 3*frame.W*frame.H:
		return fmt.Errorf("encode %s: frame %d is %dx%d with %d bytes, want %dx%d",
			e.out, e.frames, frame.W, frame.H, len(frame.Pix), e.opts.Width, e.opts.Height)
	}
	if _, err := e.in.Write(frame.Pix); err != nil {
		// ffmpeg died and closed its end of the pipe: its exit says why.
		e.in.Close()
		e.err = e.failure("encode video", e.cmd.Wait(), e.stderr.String())
		if e.err == nil {
			e.err = fmt.Errorf("encode %s: write frame %d: %w", e.out, e.frames, err)
		}
		return e.err
	}
	e.frames++
	return nil
}

// Close finishes the video, muxes the audio and renames the result onto the
// output path. On failure nothing is left at the output path.
func (e *Encoder) Close() error {
	if e.done {
		return fmt.Errorf("encode %s: already closed", e.out)
	}
	e.done = true
	defer os.Remove(e.tmpVideo)
	if e.err != nil {
		return e.err
	}
	e.in.Close()
	if err := e.failure("encode video", e.cmd.Wait(), e.stderr.String()); err != nil {
		return err
	}
	switch {
	case e.frames == 0:
		return fmt.Errorf("encode %s: no frames written", e.out)
	case e.opts.Frames > 0 && e.frames != e.opts.Frames:
		return fmt.Errorf("encode %s: %d frames written, %d announced", e.out, e.frames, e.opts.Frames)
	}

	tmpOut, err := tempName(e.out, "part")
	if err != nil {
		return fmt.Errorf("encode %s: %w", e.out, err)
	}
	committed := false
	defer func() {
		if !committed {
			os.Remove(tmpOut)
		}
	}()
	duration := time.Duration(e.frames) * time.Second / time.Duration(e.opts.FPS)
	args := []string{"-nostdin", "-v", "error", "-y", "-i", inputURL(e.tmpVideo)}
	if e.opts.AudioPath != "" {
		args = append(args, "-i", inputURL(e.opts.AudioPath), "-map", "0:v:0", "-map", "1:a:0",
			// apad makes the speech at least as long as the video; -t cuts both.
			"-af", "apad", "-c:a", "aac", "-b:a", "128k")
	} else {
		args = append(args, "-map", "0:v:0")
	}
	args = append(args, "-c:v", "copy", "-t", secs(duration),
		"-movflags", "+faststart", "-f", "mp4", inputURL(tmpOut))
	_, stderr, err := runTool(e.ctx, "ffmpeg", args...)
	if err := e.failure("mux audio", err, stderr); err != nil {
		return err
	}
	// CreateTemp made it private; the result is an ordinary file.
	if err := os.Chmod(tmpOut, 0o644); err != nil {
		return fmt.Errorf("encode %s: %w", e.out, err)
	}
	if err := syncFile(tmpOut); err != nil {
		return fmt.Errorf("encode %s: %w", e.out, err)
	}
	if err := os.Rename(tmpOut, e.out); err != nil {
		return fmt.Errorf("encode %s: %w", e.out, err)
	}
	committed = true
	return nil
}

// Abort stops ffmpeg and removes everything written. It is a no-op after
// Close, so `defer enc.Abort()` is safe on every path.
func (e *Encoder) Abort() {
	if e.done {
		return
	}
	e.done = true
	e.in.Close()
	if e.err == nil { // otherwise already reaped by Write
		_ = e.cmd.Process.Kill()
		_ = e.cmd.Wait()
	}
	os.Remove(e.tmpVideo)
}

// failure turns a finished ffmpeg run's error into the encoder's error.
func (e *Encoder) failure(step string, err error, stderr string) error {
	if err == nil {
		return nil
	}
	if e.ctx.Err() != nil {
		return fmt.Errorf("encode %s: %s: %w", e.out, step, e.ctx.Err())
	}
	return joberr.Wrap(joberr.ProcessingFailed, &ToolError{Tool: "ffmpeg", Err: err, Stderr: stderr},
		"encoding the output video failed (%s)", step)
}

// tempName reserves a hidden unique name next to out, so the final rename
// stays on one file system.
func tempName(out, kind string) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*."+kind)
	if err != nil {
		return "", err
	}
	name := f.Name()
	if err := f.Close(); err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
