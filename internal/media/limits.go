package media

import (
	"path/filepath"
	"time"

	"github.com/latentsync/latentsync-service/internal/joberr"
)

// RequireVideo fails with NO_VIDEO_STREAM when info has no video stream.
func RequireVideo(info *Info) error {
	if info.Video == nil {
		return joberr.New(joberr.NoVideoStream, "file %q has no video stream", filepath.Base(info.Path))
	}
	return nil
}

// RequireAudio fails with NO_AUDIO_STREAM when info has no audio stream.
func RequireAudio(info *Info) error {
	if info.Audio == nil {
		return joberr.New(joberr.NoAudioStream, "file %q has no audio stream", filepath.Base(info.Path))
	}
	return nil
}

// Limits bounds an input; a zero field is no limit.
type Limits struct {
	MaxDuration time.Duration // MEDIA_TOO_LONG above it
	MaxSide     int           // MEDIA_TOO_LARGE when a displayed frame side exceeds it
	MaxBytes    int64         // MEDIA_TOO_LARGE above it
}

// VideoLimits are DESIGN.md's defaults for the video input (sizes in
// decimal megabytes, the unit the API documents).
func VideoLimits() Limits {
	return Limits{MaxDuration: 10 * time.Minute, MaxSide: 4096, MaxBytes: 500_000_000}
}

// AudioLimits are DESIGN.md's defaults for the speech input.
func AudioLimits() Limits {
	return Limits{MaxDuration: 10 * time.Minute, MaxBytes: 100_000_000}
}

// Check reports the first limit info exceeds: size, then duration, then frame size.
func (l Limits) Check(info *Info) error {
	name := filepath.Base(info.Path)
	if l.MaxBytes > 0 && info.Size > l.MaxBytes {
		return joberr.New(joberr.MediaTooLarge, "file %q is %d bytes; the limit is %d", name, info.Size, l.MaxBytes)
	}
	if l.MaxDuration > 0 && info.Duration > l.MaxDuration {
		return joberr.New(joberr.MediaTooLong, "file %q is %s long; the limit is %s",
			name, info.Duration.Round(time.Millisecond), l.MaxDuration)
	}
	if v := info.Video; l.MaxSide > 0 && v != nil && (v.Width > l.MaxSide || v.Height > l.MaxSide) {
		return joberr.New(joberr.MediaTooLarge, "file %q has %dx%d frames; the limit is %d pixels per side",
			name, v.Width, v.Height, l.MaxSide)
	}
	return nil
}
