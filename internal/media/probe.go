// Package media probes, decodes and encodes the service's audio and video
// through the ffprobe and ffmpeg command-line tools (found on PATH), so that
// no cgo binding is needed and a crashing decoder cannot take the worker down.
//
// Input classification, one public error code per kind of bad input:
//
//	file missing or a directory                  INVALID_REQUEST
//	empty, or bytes no demuxer recognises        UNSUPPORTED_MEDIA "not a video or audio file"
//	a whitelisted container that cannot be read  CORRUPT_MEDIA (e.g. an MP4 cut before its moov box)
//	container outside MP4/MOV/M4A, WebM/Matroska, WAV, MP3   UNSUPPORTED_MEDIA
//	first video or audio stream's codec outside the whitelist UNSUPPORTED_MEDIA
//	no video / no audio stream                   NO_VIDEO_STREAM / NO_AUDIO_STREAM (RequireVideo, RequireAudio)
//	too long / too large                         MEDIA_TOO_LONG / MEDIA_TOO_LARGE (Limits.Check)
//	header fine, payload truncated or damaged    CORRUPT_MEDIA (VerifyDecodable, or FrameReader.Next while decoding)
package media

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/latentsync/latentsync-service/internal/joberr"
)

// Info describes a probed file: its container and the first video and audio
// streams, which are the ones the service uses.
type Info struct {
	Path string
	// Container is one of "mp4", "mov", "m4a", "webm", "matroska", "wav", "mp3".
	Container string
	// FormatName is ffprobe's demuxer name list, e.g. "mov,mp4,m4a,3gp,3g2,mj2".
	FormatName string
	Duration   time.Duration // 0 when unknown
	Size       int64         // bytes on disk
	// StartTime is the container's first timestamp; seeking is relative to it.
	StartTime time.Duration
	Video     *VideoStream // nil when the file has none
	Audio     *AudioStream // nil when the file has none
}

// VideoStream is the first video stream that is not a cover picture.
type VideoStream struct {
	Index int    // stream index in the container
	Codec string // ffprobe codec name: h264, hevc, vp9, ...
	// Width and Height are the displayed size, after rotation: the size of
	// the frames FrameReader delivers.
	Width, Height int
	// CodedWidth and CodedHeight are the stored size, before rotation.
	CodedWidth, CodedHeight int
	PixFmt                  string
	FrameRate               Rational // average frame rate (r_frame_rate when unknown)
	FPS                     float64  // FrameRate as a float; 0 when unknown
	Frames                  int64    // frames in the stream as stored; 0 when unknown
	// Rotation is the display rotation in degrees as ffprobe reports it,
	// normalised to 0, 90, 180 or 270; ffmpeg applies it when decoding.
	Rotation int
	Duration time.Duration // 0 when unknown
	// StartPTS and TimeBase give the first frame's exact timestamp; the frame
	// index arithmetic of seeking needs it without decimal rounding.
	StartPTS int64
	TimeBase Rational
}

// AudioStream is the first audio stream.
type AudioStream struct {
	Index      int
	Codec      string
	SampleRate int
	Channels   int
	Duration   time.Duration // 0 when unknown
}

// Rational is an exact ratio such as a frame rate of 30000/1001.
type Rational struct{ Num, Den int64 }

// Float returns the ratio, or 0 when the denominator is 0.
func (r Rational) Float() float64 {
	if r.Den == 0 {
		return 0
	}
	return float64(r.Num) / float64(r.Den)
}

func (r Rational) String() string { return fmt.Sprintf("%d/%d", r.Num, r.Den) }

// Whitelists of DESIGN.md section 3. Matroska is accepted with WebM: it is
// the same demuxer (ffprobe reports "matroska,webm" for both), telling them
// apart needs the EBML DocType, and the codec whitelist is what guarantees
// the file can be processed.
var (
	videoCodecs = map[string]bool{"h264": true, "hevc": true, "vp8": true, "vp9": true, "av1": true, "mpeg4": true}
	audioCodecs = map[string]bool{"aac": true, "mp3": true, "opus": true, "vorbis": true, "flac": true}
)

const supportedContainers = "MP4, MOV, M4A, WebM, WAV or MP3"

// Probe reads path's container and streams with ffprobe and checks them
// against the container and codec whitelists. It does not decode the
// payload: see VerifyDecodable.
func Probe(ctx context.Context, path string) (*Info, error) {
	name := filepath.Base(path)
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, joberr.Wrap(joberr.InvalidRequest, err, "file %q does not exist", name)
	case err != nil:
		return nil, fmt.Errorf("probe %s: %w", path, err)
	case st.IsDir():
		return nil, joberr.New(joberr.InvalidRequest, "%q is a directory, not a media file", name)
	case !st.Mode().IsRegular(): // a FIFO or device would block ffprobe
		return nil, joberr.New(joberr.InvalidRequest, "%q is not a regular file", name)
	case st.Size() == 0:
		return nil, joberr.New(joberr.UnsupportedMedia, "file %q is empty: not a video or audio file", name)
	}
	head, err := readHead(path, 64)
	if err != nil {
		return nil, fmt.Errorf("probe %s: %w", path, err)
	}

	stdout, stderr, err := runTool(ctx, "ffprobe", "-v", "error", "-print_format", "json",
		"-show_format", "-show_streams", inputURL(path))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("probe %s: %w", name, ctx.Err())
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return nil, fmt.Errorf("probe %s: %w", name, err) // ffprobe missing or not runnable
		}
		cause := &ToolError{Tool: "ffprobe", Err: err, Stderr: stderr}
		if sniff(head) != "" {
			// The signature of a supported container but unreadable
			// structure: damaged or incomplete rather than foreign.
			return nil, joberr.Wrap(joberr.CorruptMedia, cause, "file %q is damaged or incomplete and cannot be read", name)
		}
		return nil, joberr.Wrap(joberr.UnsupportedMedia, cause, "file %q is not a video or audio file", name)
	}

	var raw ffprobeOutput
	if err := json.Unmarshal(stdout, &raw); err != nil {
		return nil, fmt.Errorf("probe %s: parse ffprobe output: %w", name, err)
	}
	info, err := raw.info(path, st.Size(), head)
	if err != nil {
		return nil, err
	}
	return info, nil
}

func (p *ffprobeOutput) info(path string, size int64, head []byte) (*Info, error) {
	name := filepath.Base(path)
	info := &Info{
		Path:       path,
		FormatName: p.Format.FormatName,
		Duration:   seconds(p.Format.Duration),
		Size:       size,
		StartTime:  seconds(p.Format.StartTime),
	}
	for i := range p.Streams {
		s := &p.Streams[i]
		switch {
		case s.CodecType == "video" && info.Video == nil && s.Disposition["attached_pic"] == 0:
			info.Video = s.video()
		case s.CodecType == "audio" && info.Audio == nil:
			info.Audio = s.audio()
		}
	}
	if info.Video == nil && info.Audio == nil {
		return nil, joberr.New(joberr.UnsupportedMedia, "file %q is not a video or audio file", name)
	}
	info.Container = container(p.Format.FormatName, p.Format.Tags["major_brand"], head)
	if info.Container == "" {
		if isImage(p.Format.FormatName) {
			return nil, joberr.New(joberr.UnsupportedMedia, "file %q is an image, not a video or audio file", name)
		}
		return nil, joberr.New(joberr.UnsupportedMedia, "file %q: container %q is not supported (use %s)",
			name, p.Format.FormatName, supportedContainers)
	}
	if v := info.Video; v != nil && !videoCodecs[v.Codec] {
		return nil, joberr.New(joberr.UnsupportedMedia, "file %q: video codec %q is not supported (use H.264, HEVC, VP8, VP9, AV1 or MPEG-4)", name, v.Codec)
	}
	if a := info.Audio; a != nil && !audioCodecs[a.Codec] && !strings.HasPrefix(a.Codec, "pcm_") {
		return nil, joberr.New(joberr.UnsupportedMedia, "file %q: audio codec %q is not supported (use AAC, MP3, Opus, Vorbis, PCM or FLAC)", name, a.Codec)
	}
	if v := info.Video; v != nil && (v.Width <= 0 || v.Height <= 0) {
		// Decoding needs the frame size up front; ffprobe leaves it 0
		// when the stream's headers are unreadable.
		return nil, joberr.New(joberr.CorruptMedia, "file %q: the video's frame size cannot be read", name)
	}
	if info.Duration == 0 {
		if info.Video != nil {
			info.Duration = info.Video.Duration
		}
		if info.Audio != nil && info.Audio.Duration > info.Duration {
			info.Duration = info.Audio.Duration
		}
	}
	return info, nil
}

// container maps ffprobe's demuxer to a whitelisted container, or "".
func container(formatName, brand string, head []byte) string {
	switch formatName {
	case "mov,mp4,m4a,3gp,3g2,mj2":
		// One demuxer for the whole ISO-BMFF family; the major brand tells
		// QuickTime and audio-only M4A apart. Other brands (3GP, ...) are
		// left to the codec whitelist.
		switch strings.TrimSpace(brand) {
		case "qt":
			return "mov"
		case "M4A", "M4B":
			return "m4a"
		}
		return "mp4"
	case "matroska,webm":
		if bytes.Contains(head, []byte("webm")) {
			return "webm"
		}
		return "matroska"
	case "wav":
		return "wav"
	case "mp3":
		return "mp3"
	}
	return ""
}

func isImage(formatName string) bool {
	return strings.HasSuffix(formatName, "_pipe") || strings.HasPrefix(formatName, "image2")
}

// sniff names the whitelisted container whose signature starts head, or "".
// It only decides whether an unreadable file is damaged media (CORRUPT_MEDIA)
// or not media at all (UNSUPPORTED_MEDIA).
func sniff(head []byte) string {
	switch {
	case len(head) >= 8 && isBoxType(head[4:8]):
		return "mp4"
	case bytes.HasPrefix(head, []byte{0x1A, 0x45, 0xDF, 0xA3}):
		return "matroska"
	case len(head) >= 12 && bytes.Equal(head[:4], []byte("RIFF")) && bytes.Equal(head[8:12], []byte("WAVE")):
		return "wav"
	case bytes.HasPrefix(head, []byte("ID3")):
		return "mp3"
	case len(head) >= 2 && head[0] == 0xFF && head[1]&0xE0 == 0xE0 && head[1]&0x06 != 0:
		return "mp3" // MPEG audio frame sync with a valid layer
	}
	return ""
}

// isBoxType reports the top-level ISO-BMFF boxes a file can start with.
func isBoxType(t []byte) bool {
	switch string(t) {
	case "ftyp", "moov", "mdat", "free", "skip", "wide", "pnot":
		return true
	}
	return false
}

func readHead(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	k, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:k], nil
}

// inputURL keeps ffmpeg from reading a path as a protocol ("http:", "pipe:")
// or an option ("-x").
func inputURL(path string) string { return "file:" + path }

type ffprobeOutput struct {
	Streams []ffprobeStream `json:"streams"`
	Format  struct {
		FormatName string            `json:"format_name"`
		Duration   string            `json:"duration"`
		StartTime  string            `json:"start_time"`
		Tags       map[string]string `json:"tags"`
	} `json:"format"`
}

type ffprobeStream struct {
	Index        int               `json:"index"`
	CodecName    string            `json:"codec_name"`
	CodecType    string            `json:"codec_type"`
	Width        int               `json:"width"`
	Height       int               `json:"height"`
	PixFmt       string            `json:"pix_fmt"`
	RFrameRate   string            `json:"r_frame_rate"`
	AvgFrameRate string            `json:"avg_frame_rate"`
	TimeBase     string            `json:"time_base"`
	StartPTS     *int64            `json:"start_pts"`
	Duration     string            `json:"duration"`
	NbFrames     string            `json:"nb_frames"`
	SampleRate   string            `json:"sample_rate"`
	Channels     int               `json:"channels"`
	Disposition  map[string]int    `json:"disposition"`
	Tags         map[string]string `json:"tags"`
	SideDataList []struct {
		Rotation *float64 `json:"rotation"`
	} `json:"side_data_list"`
}

func (s *ffprobeStream) video() *VideoStream {
	v := &VideoStream{
		Index: s.Index, Codec: s.CodecName, PixFmt: s.PixFmt,
		Width: s.Width, Height: s.Height, CodedWidth: s.Width, CodedHeight: s.Height,
		Duration: s.duration(),
		TimeBase: parseRational(s.TimeBase),
	}
	v.FrameRate = parseRational(s.AvgFrameRate)
	if v.FrameRate.Num == 0 || v.FrameRate.Den == 0 {
		v.FrameRate = parseRational(s.RFrameRate)
	}
	v.FPS = v.FrameRate.Float()
	if n, err := strconv.ParseInt(s.NbFrames, 10, 64); err == nil {
		v.Frames = n
	} else if n, err := strconv.ParseInt(s.Tags["NUMBER_OF_FRAMES"], 10, 64); err == nil {
		v.Frames = n // Matroska keeps statistics in tags
	}
	if s.StartPTS != nil {
		v.StartPTS = *s.StartPTS
	}
	v.Rotation = s.rotation()
	if v.Rotation == 90 || v.Rotation == 270 {
		v.Width, v.Height = v.Height, v.Width
	}
	return v
}

func (s *ffprobeStream) audio() *AudioStream {
	rate, _ := strconv.Atoi(s.SampleRate)
	return &AudioStream{Index: s.Index, Codec: s.CodecName, SampleRate: rate, Channels: s.Channels, Duration: s.duration()}
}

// rotation reads the display matrix, or the legacy "rotate" tag (clockwise,
// the opposite sign of the matrix angle).
func (s *ffprobeStream) rotation() int {
	deg := 0.0
	found := false
	for _, sd := range s.SideDataList {
		if sd.Rotation != nil {
			deg, found = *sd.Rotation, true
			break
		}
	}
	if !found {
		if t, err := strconv.ParseFloat(s.Tags["rotate"], 64); err == nil {
			deg = -t
		}
	}
	r := int(deg) % 360
	if r < 0 {
		r += 360
	}
	return (r + 45) / 90 * 90 % 360
}

func (s *ffprobeStream) duration() time.Duration {
	if d := seconds(s.Duration); d > 0 {
		return d
	}
	return clockDuration(s.Tags["DURATION"]) // Matroska: "00:00:02.000000000"
}

// seconds parses ffprobe's decimal seconds; "N/A" and "" give 0.
func seconds(s string) time.Duration {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0
	}
	r.Mul(r, big.NewRat(int64(time.Second), 1))
	f, _ := r.Float64()
	return time.Duration(math.Round(f))
}

func clockDuration(s string) time.Duration {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0
	}
	h, err1 := strconv.Atoi(parts[0])
	m, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + seconds(parts[2])
}

func parseRational(s string) Rational {
	num, den, ok := strings.Cut(s, "/")
	if !ok {
		return Rational{}
	}
	n, err1 := strconv.ParseInt(num, 10, 64)
	d, err2 := strconv.ParseInt(den, 10, 64)
	if err1 != nil || err2 != nil {
		return Rational{}
	}
	return Rational{n, d}
}
