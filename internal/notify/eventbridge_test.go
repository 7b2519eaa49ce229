package notify

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/joberr"
	"github.com/latentsync/latentsync-service/internal/webhook"
)

func TestFromEventBridgeSamples(t *testing.T) {
	tests := []struct {
		file       string
		wantType   string
		wantStatus job.Status
		wantEmail  string
		check      func(t *testing.T, e job.Event)
	}{
		{file: "eventbridge-job-succeeded.json", wantType: job.EventSucceeded, wantStatus: job.Succeeded, wantEmail: "ada@example.com",
			check: func(t *testing.T, e job.Event) {
				v := e.Detail
				if v.Output == nil || v.Output.SizeBytes != 1843200 || v.Metrics == nil || v.Metrics.Frames != 250 || v.CompletedAt == nil {
					t.Fatalf("view %+v", v)
				}
			}},
		{file: "eventbridge-job-failed.json", wantType: job.EventFailed, wantStatus: job.Failed,
			check: func(t *testing.T, e job.Event) {
				if e.Detail.Error == nil || e.Detail.Error.Code != joberr.Code("NO_FACE_DETECTED") || e.Detail.Output != nil {
					t.Fatalf("view %+v", e.Detail)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			ev, e := sampleEvent(t, tc.file)
			if e.Type != tc.wantType || e.Detail.Status != tc.wantStatus || e.Email != tc.wantEmail {
				t.Fatalf("type %q status %q email %q", e.Type, e.Detail.Status, e.Email)
			}
			if e.JobID != e.Detail.ID || e.ID != "evt_"+e.JobID+"_"+string(tc.wantStatus) || e.Tenant == "" {
				t.Fatalf("ids: event %q job %q view %q tenant %q", e.ID, e.JobID, e.Detail.ID, e.Tenant)
			}
			if e.Webhook != "https://hooks.example.com/latentsync" || e.Time.IsZero() || e.Time.After(ev.Time) {
				t.Fatalf("webhook %q time %s (envelope %s)", e.Webhook, e.Time, ev.Time)
			}
			tc.check(t, e)
		})
	}
}

func TestFromEventBridgeRefusesOtherEvents(t *testing.T) {
	good, _ := sampleEvent(t, "eventbridge-job-succeeded.json")
	detail := func(edit func(map[string]any)) json.RawMessage {
		var m map[string]any
		if err := json.Unmarshal(good.Detail, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name string
		edit func(*events.CloudWatchEvent)
	}{
		{"other source", func(ev *events.CloudWatchEvent) { ev.Source = "aws.s3" }},
		{"detail-type differs from detail.type", func(ev *events.CloudWatchEvent) { ev.DetailType = job.EventFailed }},
		{"unknown event type", func(ev *events.CloudWatchEvent) {
			ev.DetailType = "job.started"
			ev.Detail = detail(func(m map[string]any) { m["type"] = "job.started" })
		}},
		{"detail not an object", func(ev *events.CloudWatchEvent) { ev.Detail = json.RawMessage(`"job.succeeded"`) }},
		{"no detail", func(ev *events.CloudWatchEvent) { ev.Detail = nil }},
		{"no event id", func(ev *events.CloudWatchEvent) { ev.Detail = detail(func(m map[string]any) { delete(m, "id") }) }},
		{"no tenant", func(ev *events.CloudWatchEvent) { ev.Detail = detail(func(m map[string]any) { m["tenant"] = "" }) }},
		{"time not a time", func(ev *events.CloudWatchEvent) {
			ev.Detail = detail(func(m map[string]any) { m["time"] = "yesterday" })
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := good
			tc.edit(&ev)
			if _, err := FromEventBridge(ev); !errors.Is(err, ErrBadEvent) {
				t.Fatalf("FromEventBridge = %v, want ErrBadEvent", err)
			}
		})
	}
}

// What a publisher puts on the bus comes back unchanged.
func TestFromEventBridgeRoundTrip(t *testing.T) {
	now := time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC)
	j := &job.Job{ID: job.NewID(now), Tenant: "tenant-1", Status: job.Processing, CreatedAt: now, UpdatedAt: now,
		WebhookURL: "https://hooks.example.com/x", ClientReference: "ref-1"}
	if err := j.Apply(job.Canceled, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	want, ok := job.EventFor(j, j.View(nil), now.Add(time.Minute))
	if !ok {
		t.Fatal("no event for a canceled job")
	}
	detail, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := FromEventBridge(events.CloudWatchEvent{Source: EventSource, DetailType: want.Type, Detail: detail})
	if err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(got)
	if string(gb) != string(detail) {
		t.Fatalf("round trip:\n got %s\nwant %s", gb, detail)
	}
}

func TestHandleEventBridgeDeliversTheSample(t *testing.T) {
	rc := newReceiver(t, statuses())
	ev, _ := sampleEvent(t, "eventbridge-job-failed.json")
	// Point the sample at the local receiver, as `serve` would.
	var d map[string]any
	if err := json.Unmarshal(ev.Detail, &d); err != nil {
		t.Fatal(err)
	}
	d["webhook_url"] = rc.URL
	ev.Detail, _ = json.Marshal(d)
	c := newClock()
	n := testNotifier(c, Config{AllowPrivate: true})
	if err := n.HandleEventBridge(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	reqs := rc.requests()
	if len(reqs) != 1 || webhook.Verify(testKey, reqs[0].header, reqs[0].body, c.Now()) != nil {
		t.Fatalf("%d requests, or a bad signature", len(reqs))
	}
	ev.Source = "someone.else"
	if err := n.HandleEventBridge(context.Background(), ev); !errors.Is(err, ErrBadEvent) {
		t.Fatalf("HandleEventBridge(foreign event) = %v, want ErrBadEvent", err)
	}
	if len(rc.requests()) != 1 {
		t.Fatal("a foreign event was delivered")
	}
}
