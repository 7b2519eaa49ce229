package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/latentsync/latentsync-service/internal/tail"

	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/raster"
)

// DefaultFPS is the frame rate LatentSync works at.
const DefaultFPS = 25

// seekMargin is how far before the wanted frame a seek lands. The frame that
// fills output slot k may be older than k/FPS by up to one source frame
// interval, so sources with gaps between frames longer than this can make a
// seek start one frame late; 1 s covers every real camera rate.
const seekMargin = time.Second

// DecodeOptions selects frames of the constant-rate sequence ffmpeg's
// fps filter makes from the first video stream.
type DecodeOptions struct {
	FPS        int // output frame rate; 0 means DefaultFPS
	StartFrame int // index, in the FPS sequence, of the first frame delivered
	MaxFrames  int // 0 means until the end of the video
}

// FrameReader streams decoded rgb24 frames from an ffmpeg process.
// It is not safe for concurrent use.
type FrameReader struct {
	name   string
	w, h   int
	max    int
	read   int
	cmd    *exec.Cmd
	out    io.ReadCloser
	stderr *tail.Buffer
	ctx    context.Context
	waited bool
	err    error // the process's outcome once waited
}

// OpenFrames probes path and starts decoding its first video stream. See
// OpenProbed.
func OpenFrames(ctx context.Context, path string, opts DecodeOptions) (*FrameReader, error) {
	info, err := Probe(ctx, path)
	if err != nil {
		return nil, err
	}
	return OpenProbed(ctx, info, opts)
}

// OpenProbed starts decoding info's first video stream to rgb24 at a constant
// opts.FPS, rotated for display (ffmpeg's default autorotation), so frames
// are Width x Height of info.Video. Frame k is the same image whether it is
// reached by reading from the start or by opening with StartFrame k:
//
//   - timestamps are kept as stored (-copyts), so the fps filter rounds every
//     source frame to the same absolute output slot in both cases;
//   - a seek lands seekMargin before frame k on the keyframe before that
//     (-noaccurate_seek: the fps filter, not ffmpeg's seek trim, decides
//     which source frame fills a slot), and a trim filter then drops the
//     slots before k.
//
// Starting at frame k costs a process start plus decoding from the keyframe
// before k/FPS - 1 s; the skipped frames are dropped before their conversion
// to RGB. OpenFrames adds an ffprobe run (~50 ms); callers opening many
// blocks of one file can probe once and use OpenProbed.
func OpenProbed(ctx context.Context, info *Info, opts DecodeOptions) (*FrameReader, error) {
	if err := RequireVideo(info); err != nil {
		return nil, err
	}
	fps := opts.FPS
	if fps == 0 {
		fps = DefaultFPS
	}
	if fps < 0 || opts.StartFrame < 0 || opts.MaxFrames < 0 {
		return nil, fmt.Errorf("decode %s: invalid options %+v", filepath.Base(info.Path), opts)
	}
	v := info.Video

	args := []string{"-nostdin", "-v", "error", "-xerror", "-copyts"}
	filter := "fps=" + strconv.Itoa(fps)
	if opts.StartFrame > 0 {
		// Absolute slot of the wanted frame: slot of the first frame + k.
		slot := firstSlot(v, fps) + int64(opts.StartFrame)
		target := time.Duration(slot)*time.Second/time.Duration(fps) - seekMargin - info.StartTime
		if target > 0 {
			args = append(args, "-noaccurate_seek", "-ss", secs(target))
		}
		filter += ",trim=start_pts=" + strconv.FormatInt(slot, 10)
	}
	args = append(args, "-i", inputURL(info.Path),
		"-map", "0:"+strconv.Itoa(v.Index), "-an", "-sn", "-dn",
		"-vf", filter)
	if opts.MaxFrames > 0 {
		args = append(args, "-frames:v", strconv.Itoa(opts.MaxFrames))
	}
	args = append(args, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1")

	cmd := command(ctx, "ffmpeg", args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", filepath.Base(info.Path), err)
	}
	stderr := tail.New(stderrTail)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("decode %s: start ffmpeg: %w", filepath.Base(info.Path), err)
	}
	return &FrameReader{
		name: filepath.Base(info.Path), w: v.Width, h: v.Height, max: opts.MaxFrames,
		cmd: cmd, out: out, stderr: stderr, ctx: ctx,
	}, nil
}

// firstSlot is the fps filter's output slot of the first video frame: its
// timestamp times fps, rounded half away from zero like the filter does.
func firstSlot(v *VideoStream, fps int) int64 {
	if v.TimeBase.Den == 0 {
		return 0
	}
	r := new(big.Rat).SetFrac64(v.StartPTS*v.TimeBase.Num*int64(fps), v.TimeBase.Den)
	// Round half away from zero: floor(|r| + 1/2) with the sign restored.
	abs := new(big.Rat).Abs(r)
	abs.Add(abs, big.NewRat(1, 2))
	q := new(big.Int).Quo(abs.Num(), abs.Denom())
	if r.Sign() < 0 {
		q.Neg(q)
	}
	return q.Int64()
}

// Width is the width of the delivered frames.
func (r *FrameReader) Width() int { return r.w }

// Height is the height of the delivered frames.
func (r *FrameReader) Height() int { return r.h }

// Frames is the number of frames delivered so far.
func (r *FrameReader) Frames() int { return r.read }

// NewFrame allocates a buffer of the delivered size, for Next.
func (r *FrameReader) NewFrame() *raster.RGB { return raster.New(r.w, r.h) }

// Next fills dst with the next frame, reusing dst.Pix when it has the
// capacity (so a loop allocates nothing per frame). It returns io.EOF after
// the last frame, and CORRUPT_MEDIA when ffmpeg fails mid-stream.
func (r *FrameReader) Next(dst *raster.RGB) error {
	if r.waited {
		if r.err != nil {
			return r.err
		}
		return io.EOF
	}
	if r.max > 0 && r.read >= r.max {
		return io.EOF
	}
	n := 3 * r.w * r.h
	if cap(dst.Pix) < n {
		dst.Pix = make([]byte, n)
	}
	dst.W, dst.H, dst.Pix = r.w, r.h, dst.Pix[:n]
	k, err := io.ReadFull(r.out, dst.Pix)
	switch {
	case err == nil:
		r.read++
		return nil
	case errors.Is(err, io.EOF): // clean end of the pipe: how did ffmpeg end?
		if werr := r.wait(); werr != nil {
			return werr
		}
		return io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		if werr := r.wait(); werr != nil {
			return werr
		}
		r.err = joberr.New(joberr.CorruptMedia, "file %q: frame %d ended after %d of %d bytes", r.name, r.read, k, n)
		return r.err
	default:
		if werr := r.wait(); werr != nil {
			return werr
		}
		return fmt.Errorf("decode %s: read frame %d: %w", r.name, r.read, err)
	}
}

// Close stops ffmpeg if it is still running and reaps it. Stopping early is
// not an error; it returns the decode error if ffmpeg had failed.
func (r *FrameReader) Close() error {
	if !r.waited {
		r.waited = true
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait() // the kill's own exit status is not a failure
	}
	return r.err
}

// wait reaps ffmpeg after its output ended and classifies a failure.
func (r *FrameReader) wait() error {
	if r.waited {
		return r.err
	}
	r.waited = true
	err := r.cmd.Wait()
	switch {
	case err == nil:
	case r.ctx.Err() != nil:
		r.err = fmt.Errorf("decode %s: %w", r.name, r.ctx.Err())
	default:
		// The file probed as valid media, so ffmpeg failing on its
		// payload (-xerror stops at the first corrupt packet) is damage.
		r.err = joberr.Wrap(joberr.CorruptMedia, &ToolError{Tool: "ffmpeg", Err: err, Stderr: r.stderr.String()},
			"file %q is damaged: decoding failed after %d frames", r.name, r.read)
	}
	return r.err
}
