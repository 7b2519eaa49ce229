package media

import (
	"strings"
	"testing"
)

func TestFirstSlotRoundsLikeTheFPSFilter(t *testing.T) {
	tests := []struct {
		name string
		pts  int64
		tb   Rational
		fps  int
		want int64
	}{
		{"zero", 0, Rational{1, 12800}, 25, 0},
		{"on the grid", 1024, Rational{1, 12800}, 25, 2},
		{"below half", 370, Rational{1, 1000}, 25, 9}, // 9.25
		{"half rounds away from zero", 20, Rational{1, 1000}, 25, 1},
		{"negative half rounds away from zero", -20, Rational{1, 1000}, 25, -1},
		{"negative", -1001, Rational{1, 30000}, 25, -1}, // -0.834
		{"unknown time base", 5, Rational{}, 25, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := &VideoStream{StartPTS: tc.pts, TimeBase: tc.tb}
			if got := firstSlot(v, tc.fps); got != tc.want {
				t.Errorf("firstSlot = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestSniff(t *testing.T) {
	tests := []struct {
		name string
		head string
		want string
	}{
		{"mp4 ftyp", "\x00\x00\x00\x20ftypisom", "mp4"},
		{"mov wide", "\x00\x00\x00\x08wide", "mp4"},
		{"matroska", "\x1a\x45\xdf\xa3\x01", "matroska"},
		{"wav", "RIFF\x24\x00\x00\x00WAVEfmt ", "wav"},
		{"mp3 id3", "ID3\x04\x00", "mp3"},
		{"mp3 frame sync", "\xff\xfb\x90\x00", "mp3"},
		{"riff but avi", "RIFF\x24\x00\x00\x00AVI LIST", ""},
		{"text", "These are my notes", ""},
		{"short", "\x00\x00", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := sniff([]byte(tc.head)); got != tc.want {
				t.Errorf("sniff = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestClockDuration(t *testing.T) {
	for in, want := range map[string]string{
		"00:00:02.000000000": "2s",
		"01:02:03.500000000": "1h2m3.5s",
		"":                   "0s",
		"N/A":                "0s",
	} {
		if got := clockDuration(in).String(); !strings.EqualFold(got, want) {
			t.Errorf("clockDuration(%q) = %s, want %s", in, got, want)
		}
	}
}
