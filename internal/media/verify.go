package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/latentsync/latentsync-service/internal/joberr"
)

// VerifyDecodable decodes the first and the last window of the probed file's
// video and audio streams and fails with CORRUPT_MEDIA when ffmpeg reports a
// corrupt packet or the end holds nothing decodable. It catches the common
// damage Probe cannot see, a file cut short whose header survived (an MP4
// with its moov box first, a WebM), at the cost of about two windows of
// decoding. Damage in the middle is caught later, by FrameReader.Next.
// Files no longer than two windows are decoded whole.
func VerifyDecodable(ctx context.Context, info *Info, window time.Duration) error {
	name := filepath.Base(info.Path)
	var maps []string
	for _, idx := range info.streamIndexes() {
		maps = append(maps, "0:"+strconv.Itoa(idx))
	}
	if len(maps) == 0 {
		return joberr.New(joberr.UnsupportedMedia, "file %q is not a video or audio file", name)
	}
	args := []string{"-nostdin", "-v", "error", "-xerror"}
	whole := info.Duration <= 2*window
	if whole {
		args = append(args, "-i", inputURL(info.Path))
	} else {
		tail := info.Duration - window
		args = append(args,
			"-t", secs(window), "-i", inputURL(info.Path),
			"-ss", secs(tail), "-i", inputURL(info.Path))
		for _, idx := range info.streamIndexes() {
			maps = append(maps, "1:"+strconv.Itoa(idx))
		}
	}
	for _, m := range maps {
		args = append(args, "-map", m)
	}
	// framecrc prints one line per decoded frame, so the tail window can be
	// checked for content; checksumming a second of frames is cheap.
	args = append(args, "-f", "framecrc", "-")
	out, stderr, err := runTool(ctx, "ffmpeg", args...)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("verify %s: %w", name, ctx.Err())
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return fmt.Errorf("verify %s: %w", name, err)
		}
		return joberr.Wrap(joberr.CorruptMedia, &ToolError{Tool: "ffmpeg", Err: err, Stderr: stderr},
			"file %q is damaged and cannot be decoded", name)
	}
	counts := frameCounts(out)
	firstTail := 0
	if !whole {
		firstTail = len(maps) / 2
	}
	n := 0
	for i := firstTail; i < len(maps); i++ {
		n += counts[i]
	}
	if n == 0 {
		return joberr.Wrap(joberr.CorruptMedia, &ToolError{Tool: "ffmpeg", Err: errors.New("no frames decoded"), Stderr: stderr},
			"file %q is incomplete: it ends before its stated duration of %s", name, info.Duration.Round(time.Millisecond))
	}
	return nil
}

// streamIndexes lists the container indexes of the streams the service uses.
func (info *Info) streamIndexes() []int {
	var idx []int
	if info.Video != nil {
		idx = append(idx, info.Video.Index)
	}
	if info.Audio != nil {
		idx = append(idx, info.Audio.Index)
	}
	return idx
}

// frameCounts counts framecrc lines per output stream ("0, 0, 0, 1, 2304, 0x...").
func frameCounts(out []byte) map[int]int {
	counts := map[int]int{}
	for line := range bytes.Lines(out) {
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		stream, _, ok := bytes.Cut(line, []byte(","))
		if !ok {
			continue
		}
		if i, err := strconv.Atoi(string(bytes.TrimSpace(stream))); err == nil {
			counts[i]++
		}
	}
	return counts
}

// secs formats a duration as ffmpeg's decimal seconds.
func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 6, 64) }
