package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/latentsync/latentsync-service/gpuworker/pipeline"
)

// The quality lines follow the timings; unmeasured values say so.
func TestRunReportPrintsQuality(t *testing.T) {
	conf, off, ssim, kept := 6.5, -2, 0.81, 0.64
	cases := []struct {
		name    string
		q       runQuality
		want    []string
		wantNot []string
	}{
		{"measured, with a warning", runQuality{SyncConfidence: &conf, SyncOffset: &off, SSIMOverall: &ssim, SSIMPreserved: &kept, SSIMFrames: 20,
			Warnings: []string{pipeline.WarnLowPreservation}},
			[]string{"sync confidence 6.500, offset -2 frames", "SSIM outside the mouth 0.6400, whole face 0.8100 (20 frames)", "warning: LOW_PRESERVATION"}, nil},
		{"not measured", runQuality{},
			[]string{"sync confidence not measured"}, []string{"SSIM", "warning"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			runReport{Output: "out.mp4", Stages: []pipeline.StageTiming{{Stage: pipeline.StageDenoise, Seconds: 1}}, Quality: c.q}.print(&b)
			out := b.String()
			timings := strings.Index(out, "total")
			for _, w := range c.want {
				if i := strings.Index(out, w); i < 0 || i < timings {
					t.Errorf("output lacks %q after the timings:\n%s", w, out)
				}
			}
			for _, w := range c.wantNot {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
		})
	}
}
