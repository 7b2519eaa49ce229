package pipeline

import "fmt"

// SyncMode says how a video and a speech track of different lengths are matched.
type SyncMode string

const (
	// CutOff ends the output with the shorter of the two inputs.
	CutOff SyncMode = "cut_off"
	// Loop repeats the video from its start until the speech ends.
	Loop SyncMode = "loop"
	// Bounce plays the video forward, then backward, and so on until the
	// speech ends (LatentSync's own behaviour; no jump cut at the seam).
	Bounce SyncMode = "bounce"
)

// ParseSyncMode validates a mode name; "" means CutOff.
func ParseSyncMode(s string) (SyncMode, error) {
	switch m := SyncMode(s); m {
	case "":
		return CutOff, nil
	case CutOff, Loop, Bounce:
		return m, nil
	}
	return "", fmt.Errorf("sync mode %q: want cut_off, loop or bounce", s)
}

// OutputFrames is the length of the output in frames for videoFrames of
// video and audioFrames of speech. Speech longer than the video extends the
// video only in the loop and bounce modes; speech shorter cuts the video in
// every mode, since lip-syncing silence is not what anyone asked for.
func (m SyncMode) OutputFrames(videoFrames, audioFrames int) int {
	if m == CutOff || audioFrames <= videoFrames {
		return min(videoFrames, audioFrames)
	}
	return audioFrames
}

// SourceFrame maps output frame o to the video frame shown there.
func (m SyncMode) SourceFrame(o, videoFrames int) int {
	if o < videoFrames {
		return o
	}
	switch m {
	case Loop:
		return o % videoFrames
	case Bounce:
		if videoFrames == 1 {
			return 0
		}
		// Period 2(n-1): 0..n-1 then n-2..1, so no frame repeats at the turns.
		period := 2 * (videoFrames - 1)
		p := o % period
		if p < videoFrames {
			return p
		}
		return period - p
	}
	return videoFrames - 1
}
