package s3event

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/latentsync/latentsync-service/internal/validate"
)

// recorder notes what the dispatch asked for; the validator itself is
// tested with real adapters in the validate package.
type recorder struct {
	uploads []validate.Upload
	sweeps  int
}

func (r *recorder) Handle(_ context.Context, u validate.Upload) error {
	r.uploads = append(r.uploads, u)
	return nil
}

func (r *recorder) Sweep(context.Context) (validate.SweepResult, error) {
	r.sweeps++
	return validate.SweepResult{}, nil
}

func TestInvokeDispatches(t *testing.T) {
	read := func(name string) json.RawMessage {
		b, err := os.ReadFile("../../../events/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cases := []struct {
		name            string
		event           json.RawMessage
		uploads, sweeps int
		wantErr         bool
	}{
		{"s3 notification", read("s3-object-created-video.json"), 1, 0, false},
		{"schedule", read("eventbridge-scheduled-sweep.json"), 0, 1, false},
		{"job event sent to the wrong function", read("eventbridge-job-succeeded.json"), 0, 0, true},
		{"not json", json.RawMessage(`{`), 0, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &recorder{}
			err := Invoke(context.Background(), log, r, c.event)
			if (err != nil) != c.wantErr || len(r.uploads) != c.uploads || r.sweeps != c.sweeps {
				t.Errorf("err %v, %d uploads, %d sweeps", err, len(r.uploads), r.sweeps)
			}
		})
	}
}
