package pipeline

import (
	"slices"
	"testing"
)

func TestOutputFrames(t *testing.T) {
	cases := []struct {
		mode         SyncMode
		video, audio int
		want         int
	}{
		{CutOff, 100, 60, 60},
		{CutOff, 60, 100, 60},
		{Loop, 100, 60, 60},
		{Loop, 60, 100, 100},
		{Bounce, 60, 100, 100},
		{Bounce, 100, 100, 100},
	}
	for _, c := range cases {
		if got := c.mode.OutputFrames(c.video, c.audio); got != c.want {
			t.Errorf("%s(video %d, audio %d) = %d, want %d", c.mode, c.video, c.audio, got, c.want)
		}
	}
}

func TestSourceFrame(t *testing.T) {
	seq := func(m SyncMode, video, n int) []int {
		var s []int
		for o := range n {
			s = append(s, m.SourceFrame(o, video))
		}
		return s
	}
	cases := []struct {
		mode  SyncMode
		video int
		n     int
		want  []int
	}{
		{Loop, 4, 10, []int{0, 1, 2, 3, 0, 1, 2, 3, 0, 1}},
		{Bounce, 4, 12, []int{0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1}},
		{Bounce, 1, 3, []int{0, 0, 0}},
		{CutOff, 4, 3, []int{0, 1, 2}},
	}
	for _, c := range cases {
		if got := seq(c.mode, c.video, c.n); !slices.Equal(got, c.want) {
			t.Errorf("%s over %d frames: %v, want %v", c.mode, c.video, got, c.want)
		}
	}
}

func TestParseSyncMode(t *testing.T) {
	for in, want := range map[string]SyncMode{"": CutOff, "cut_off": CutOff, "loop": Loop, "bounce": Bounce} {
		got, err := ParseSyncMode(in)
		if err != nil || got != want {
			t.Errorf("ParseSyncMode(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseSyncMode("remap"); err == nil {
		t.Error("ParseSyncMode accepted remap")
	}
}
