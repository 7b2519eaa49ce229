package validate_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/media/mediatest"
	"github.com/latentsync/latentsync-service/internal/validate"
)

// verdicts answers per input what a malware scanner would say.
type verdicts map[string]error

func (v verdicts) Screen(_ context.Context, u validate.Upload) error {
	_, _, in, _ := validate.ParseKey(u.Key)
	return v[string(in)]
}

func TestScreenerVerdicts(t *testing.T) {
	mediatest.Require(t, "ffmpeg", "ffprobe")
	outage := errors.New("scanner unavailable")
	cases := []struct {
		name       string
		verdict    error
		wantErr    bool
		wantStatus job.Status
		wantCode   joberr.Code
		validated  bool
	}{
		{"clean", nil, false, job.AwaitingUpload, "", true},
		{"threat", joberr.New(joberr.MalwareDetected, "the video upload contains malware"), false, job.Failed, joberr.MalwareDetected, false},
		// The scanner's result event validates again: nothing to retry, nothing changed.
		{"scan pending", fmt.Errorf("no tag yet: %w", validate.ErrVerdictPending), false, job.AwaitingUpload, "", false},
		{"scanner outage", outage, true, job.AwaitingUpload, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, validate.Config{Screener: verdicts{"video": c.verdict}}, wrap{})
			j := e.newJob(mediatest.AVMP4(t), speech(t))
			err := e.handle(j, job.VideoInput)
			if (err != nil) != c.wantErr {
				t.Fatalf("handle: %v, want error %v", err, c.wantErr)
			}
			got := e.get(j)
			if got.Status != c.wantStatus || got.VideoValidated != c.validated {
				t.Errorf("job %s, video validated %v; want %s, %v", got.Status, got.VideoValidated, c.wantStatus, c.validated)
			}
			if c.wantCode != "" && (got.Error == nil || got.Error.Code != c.wantCode) {
				t.Errorf("job error %+v, want %s", got.Error, c.wantCode)
			}
		})
	}
}
