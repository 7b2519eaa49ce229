package aws_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	sestypes "github.com/aws/aws-sdk-go-v2/service/sesv2/types"

	awsadapter "github.com/latentsync/latentsync-service/internal/adapters/aws"
	"github.com/latentsync/latentsync-service/internal/adapters/aws/awstest"
	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/joberr"
)

// recorded is one request a fake AWS endpoint received.
type recorded struct {
	method, path, target, contentType, auth string
	body                                    []byte
}

// fakeAWS is a 127.0.0.1 server that records requests and answers each
// with status and body, as much of an AWS JSON protocol as a test needs.
func fakeAWS(t *testing.T, status int, headers map[string]string, body string) (*httptest.Server, func() []recorded) {
	t.Helper()
	var mu sync.Mutex
	var reqs []recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading request: %v", err)
		}
		mu.Lock()
		reqs = append(reqs, recorded{r.Method, r.URL.Path, r.Header.Get("X-Amz-Target"), r.Header.Get("Content-Type"), r.Header.Get("Authorization"), b})
		mu.Unlock()
		for k, v := range headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []recorded {
		mu.Lock()
		defer mu.Unlock()
		return append([]recorded(nil), reqs...)
	}
}

func terminalEvent(t *testing.T) job.Event {
	t.Helper()
	now := time.Date(2025, 5, 1, 12, 0, 7, 0, time.UTC)
	j := &job.Job{ID: "job_1", Tenant: "tenant-a", Status: job.Processing, CreatedAt: now.Add(-time.Minute),
		WebhookURL: "https://hooks.example.com/x", NotifyEmail: "a@example.com"}
	if err := j.Fail(joberr.NoFaceDetected, "no face in the first 50 frames", now); err != nil {
		t.Fatal(err)
	}
	e, ok := job.EventFor(j, j.View(nil), now)
	if !ok {
		t.Fatal("failed job has no event")
	}
	return e
}

func TestPublisher(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		headers  map[string]string
		response string
		wantErr  string // "" for success
	}{
		{"accepted", 200, nil, `{"FailedEntryCount":0,"Entries":[{"EventId":"11710aed-b79e-4468-a20b-bb3c0c3b4860"}]}`, ""},
		{"entry refused", 200, nil, `{"FailedEntryCount":1,"Entries":[{"ErrorCode":"InternalFailure","ErrorMessage":"try again"}]}`, "InternalFailure: try again"},
		{"bus missing", 400, map[string]string{"X-Amzn-ErrorType": "ResourceNotFoundException"}, `{"__type":"ResourceNotFoundException","message":"Event bus jobs does not exist."}`, "ResourceNotFoundException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, requests := fakeAWS(t, tc.status, tc.headers, tc.response)
			pub := awsadapter.NewPublisher(eventbridge.NewFromConfig(awstest.Config(t, srv.URL)), "jobs")
			e := terminalEvent(t)
			err := pub.Publish(t.Context(), e)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Publish: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Publish = %v, want an error with %q", err, tc.wantErr)
			}
			if tc.name == "bus missing" {
				var rnf *ebtypes.ResourceNotFoundException
				if !errors.As(err, &rnf) {
					t.Errorf("error %v does not unwrap to ResourceNotFoundException", err)
				}
			}
			reqs := requests()
			if len(reqs) != 1 {
				t.Fatalf("server got %d requests, want 1 (no retry of a refused entry)", len(reqs))
			}
			r := reqs[0]
			if r.method != http.MethodPost || r.target != "AWSEvents.PutEvents" || r.contentType != "application/x-amz-json-1.1" {
				t.Errorf("request %s %s target %q type %q, want POST AWSEvents.PutEvents JSON 1.1", r.method, r.path, r.target, r.contentType)
			}
			if !strings.Contains(r.auth, "/us-east-1/events/aws4_request") {
				t.Errorf("Authorization = %q, want a SigV4 signature for events in us-east-1", r.auth)
			}
			var in struct {
				Entries []struct {
					Source, DetailType, Detail, EventBusName string
					Time                                     float64
				}
			}
			if err := json.Unmarshal(r.body, &in); err != nil {
				t.Fatalf("request body %s: %v", r.body, err)
			}
			if len(in.Entries) != 1 {
				t.Fatalf("%d entries, want 1: %s", len(in.Entries), r.body)
			}
			got := in.Entries[0]
			if got.Source != "latentsync" || got.DetailType != "job.failed" || got.EventBusName != "jobs" {
				t.Errorf("entry source %q detail-type %q bus %q, want latentsync, job.failed, jobs", got.Source, got.DetailType, got.EventBusName)
			}
			if int64(got.Time) != e.Time.Unix() {
				t.Errorf("entry time %v, want %d", got.Time, e.Time.Unix())
			}
			var detail job.Event
			if err := json.Unmarshal([]byte(got.Detail), &detail); err != nil {
				t.Fatalf("detail %s: %v", got.Detail, err)
			}
			want, _ := json.Marshal(e)
			back, _ := json.Marshal(detail)
			if string(back) != string(want) {
				t.Errorf("detail round-trips to\n %s\nwant\n %s", back, want)
			}
		})
	}
}

func TestMailer(t *testing.T) {
	tests := []struct {
		name      string
		configSet string
		status    int
		headers   map[string]string
		response  string
		wantErr   bool
	}{
		{"sent", "", 200, nil, `{"MessageId":"0100018f-aaaa"}`, false},
		{"sent with configuration set", "notify", 200, nil, `{"MessageId":"0100018f-bbbb"}`, false},
		{"rejected", "", 400, map[string]string{"X-Amzn-ErrorType": "MessageRejected"}, `{"message":"Email address is not verified."}`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, requests := fakeAWS(t, tc.status, tc.headers, tc.response)
			m := awsadapter.NewMailer(sesv2.NewFromConfig(awstest.Config(t, srv.URL)), "LatentSync <noreply@example.com>", tc.configSet)
			err := m.Send(t.Context(), "client@example.com", "Job job_1 failed", "No face was found.\n")
			if tc.wantErr {
				var rej *sestypes.MessageRejected
				if !errors.As(err, &rej) {
					t.Fatalf("Send = %v, want MessageRejected", err)
				}
			} else if err != nil {
				t.Fatalf("Send: %v", err)
			}
			reqs := requests()
			if len(reqs) != 1 {
				t.Fatalf("server got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.method != http.MethodPost || r.path != "/v2/email/outbound-emails" {
				t.Errorf("request %s %s, want POST /v2/email/outbound-emails", r.method, r.path)
			}
			if !strings.Contains(r.auth, "/us-east-1/ses/aws4_request") {
				t.Errorf("Authorization = %q, want a SigV4 signature for ses in us-east-1", r.auth)
			}
			var in struct {
				FromEmailAddress     string
				ConfigurationSetName string
				Destination          struct{ ToAddresses []string }
				Content              struct {
					Simple struct {
						Subject struct{ Data, Charset string }
						Body    struct {
							Text struct{ Data, Charset string }
						}
					}
				}
			}
			if err := json.Unmarshal(r.body, &in); err != nil {
				t.Fatalf("request body %s: %v", r.body, err)
			}
			s := in.Content.Simple
			if in.FromEmailAddress != "LatentSync <noreply@example.com>" || len(in.Destination.ToAddresses) != 1 ||
				in.Destination.ToAddresses[0] != "client@example.com" || in.ConfigurationSetName != tc.configSet {
				t.Errorf("from %q to %v configuration set %q, want the sender, client@example.com, %q",
					in.FromEmailAddress, in.Destination.ToAddresses, in.ConfigurationSetName, tc.configSet)
			}
			if s.Subject.Data != "Job job_1 failed" || s.Body.Text.Data != "No face was found.\n" || s.Body.Text.Charset != "UTF-8" {
				t.Errorf("content %+v, want the subject and text body in UTF-8", s)
			}
		})
	}
}
