package job

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/internal/joberr"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func TestStatusMachine(t *testing.T) {
	all := []Status{AwaitingUpload, Queued, Processing, Succeeded, Failed, Canceled, Expired}
	allowed := map[[2]Status]bool{
		{AwaitingUpload, Queued}: true, {AwaitingUpload, Failed}: true, {AwaitingUpload, Canceled}: true, {AwaitingUpload, Expired}: true,
		{Queued, Processing}: true, {Queued, Failed}: true, {Queued, Canceled}: true,
		{Processing, Succeeded}: true, {Processing, Failed}: true, {Processing, Canceled}: true, {Processing, Queued}: true,
	}
	for _, from := range all {
		for _, to := range all {
			if from == to {
				continue
			}
			j := &Job{ID: "j", Status: from}
			err := j.Apply(to, t0)
			switch {
			case allowed[[2]Status{from, to}]:
				if err != nil || j.Status != to {
					t.Errorf("%s -> %s refused: %v", from, to, err)
				}
			case from.Terminal():
				if !errors.Is(err, ErrTerminal) || j.Status != from {
					t.Errorf("%s -> %s: %v, want ErrTerminal", from, to, err)
				}
			default:
				if !errors.Is(err, ErrBadTransition) || j.Status != from {
					t.Errorf("%s -> %s: %v, want ErrBadTransition", from, to, err)
				}
			}
		}
	}
}

func TestApplyTimestamps(t *testing.T) {
	j := &Job{ID: "j", Status: Queued}
	if err := j.Apply(Processing, t0); err != nil || j.StartedAt == nil || !j.StartedAt.Equal(t0) {
		t.Fatalf("processing: %v, started %v", err, j.StartedAt)
	}
	j.Stage, j.Progress = "08|denoise-unet", 0.5
	later := t0.Add(time.Minute)
	if err := j.Apply(Succeeded, later); err != nil {
		t.Fatal(err)
	}
	if !j.CompletedAt.Equal(later) || !j.UpdatedAt.Equal(later) || j.Progress != 1 || j.Stage != "" {
		t.Errorf("succeeded job %+v", j)
	}
	f := &Job{ID: "k", Status: Processing}
	if err := f.Fail(joberr.NoFaceDetected, "no face", later); err != nil || f.Error.Code != joberr.NoFaceDetected || f.Status != Failed {
		t.Errorf("fail: %v %+v", err, f)
	}
	if err := f.Fail(joberr.Internal, "again", later); !errors.Is(err, ErrTerminal) || f.Error.Code != joberr.NoFaceDetected {
		t.Errorf("second failure changed a terminal job: %v %+v", err, f.Error)
	}
}

func TestOptionsNormalize(t *testing.T) {
	var o Options
	if err := o.Normalize(); err != nil || o != (Options{InferenceSteps: 20, GuidanceScale: 1.5, SyncMode: "cut_off"}) {
		t.Errorf("defaults %+v, %v", o, err)
	}
	bad := []struct {
		o    Options
		want string
	}{
		{Options{InferenceSteps: 101}, "inference_steps"},
		{Options{InferenceSteps: -1}, "inference_steps"},
		{Options{GuidanceScale: 0.5}, "guidance_scale"},
		{Options{GuidanceScale: 11}, "guidance_scale"},
		{Options{Seed: -4}, "seed"},
		{Options{SyncMode: "stretch"}, "sync_mode"},
	}
	for _, b := range bad {
		if err := b.o.Normalize(); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%+v: %v, want an error about %s", b.o, err, b.want)
		}
	}
}

func TestMessageRoundTrip(t *testing.T) {
	j := &Job{ID: "job_1", Tenant: "acme", Options: Options{InferenceSteps: 10, GuidanceScale: 2, Seed: 7, SyncMode: "loop"}}
	m := NewMessage(j, "v1")
	if m.VideoKey != "uploads/acme/job_1/video" || m.AudioKey != "uploads/acme/job_1/audio" {
		t.Errorf("keys %s %s", m.VideoKey, m.AudioKey)
	}
	body := `{"v":1,"job_id":"job_1","tenant":"acme","video_key":"uploads/acme/job_1/video","audio_key":"uploads/acme/job_1/audio","options":{"inference_steps":10,"guidance_scale":2,"seed":7,"sync_mode":"loop"},"bundle":"v1"}`
	got, err := ParseMessage([]byte(body))
	if err != nil || got != m {
		t.Errorf("parsed %+v, %v; want %+v", got, err, m)
	}
	for _, bad := range []string{
		`not json`,
		`{"v":2,"job_id":"a","tenant":"b","video_key":"c","audio_key":"d"}`,
		`{"v":1,"tenant":"b","video_key":"c","audio_key":"d"}`,
		`{"v":1,"job_id":"a","tenant":"b","video_key":"c","audio_key":"d","extra":1}`,
		`{"v":1,"job_id":"a","tenant":"b","video_key":"c","audio_key":"d","options":{"sync_mode":"x"}}`,
	} {
		if _, err := ParseMessage([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestEventFor(t *testing.T) {
	cases := map[Status]string{Succeeded: EventSucceeded, Failed: EventFailed, Expired: EventFailed, Canceled: EventCanceled}
	for status, typ := range cases {
		j := &Job{ID: "job_1", Tenant: "acme", Status: status, WebhookURL: "https://example.com/h"}
		e, ok := EventFor(j, j.View(nil), t0)
		if !ok || e.Type != typ || e.JobID != "job_1" || e.Webhook != "https://example.com/h" || e.Detail.Status != status {
			t.Errorf("%s: %+v %v", status, e, ok)
		}
		again, _ := EventFor(j, j.View(nil), t0.Add(time.Hour))
		if again.ID != e.ID {
			t.Errorf("%s: event id not stable: %s vs %s", status, e.ID, again.ID)
		}
	}
	if _, ok := EventFor(&Job{Status: Processing}, View{}, t0); ok {
		t.Error("event for a running job")
	}
}

func TestNewIDIsUniqueAndOrdered(t *testing.T) {
	a, b := NewID(t0), NewID(t0.Add(time.Millisecond))
	if a == b || a >= b || !strings.HasPrefix(a, "job_") {
		t.Errorf("ids %s, %s", a, b)
	}
}
