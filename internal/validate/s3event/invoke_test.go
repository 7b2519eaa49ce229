package s3event

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"slices"
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
	scan := read("eventbridge-guardduty-scan-result.json")
	// edit returns the scan-result sample with one top-level field replaced.
	edit := func(field string, value any) json.RawMessage {
		var m map[string]any
		if err := json.Unmarshal(scan, &m); err != nil {
			t.Fatal(err)
		}
		m[field] = value
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	scanned := validate.Upload{Bucket: "latentsync-uploads-123456789012-eu-west-1",
		Key: "uploads/k7x9q2demo/job_0196a5c2e7f3b9d04c1e2f5a6b7c8d9/video"}
	cases := []struct {
		name    string
		event   json.RawMessage
		uploads []validate.Upload // nil: do not compare, only count
		count   int
		sweeps  int
		wantErr bool
	}{
		{"s3 notification", read("s3-object-created-video.json"), nil, 1, 0, false},
		{"guardduty scan result", scan, []validate.Upload{scanned}, 1, 0, false},
		{"guardduty scan result naming no object", edit("detail", map[string]any{"scanStatus": "COMPLETED"}), nil, 0, 0, true},
		{"guardduty event of another kind", edit("detail-type", "GuardDuty Finding"), nil, 0, 0, true},
		{"scan result detail type from another source", edit("source", "custom.spoof"), nil, 0, 0, true},
		{"schedule", read("eventbridge-scheduled-sweep.json"), nil, 0, 1, false},
		{"job event sent to the wrong function", read("eventbridge-job-succeeded.json"), nil, 0, 0, true},
		{"not json", json.RawMessage(`{`), nil, 0, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &recorder{}
			err := Invoke(context.Background(), log, r, c.event)
			if (err != nil) != c.wantErr || len(r.uploads) != c.count || r.sweeps != c.sweeps {
				t.Errorf("err %v, %d uploads, %d sweeps", err, len(r.uploads), r.sweeps)
			}
			if c.uploads != nil && !slices.Equal(r.uploads, c.uploads) {
				t.Errorf("uploads %+v, want %+v", r.uploads, c.uploads)
			}
		})
	}
}
