package job

import "time"

// Event types (DESIGN.md section 3).
const (
	EventSucceeded = "job.succeeded"
	EventFailed    = "job.failed"
	EventCanceled  = "job.canceled"
)

// Event is published when a job reaches a terminal status; notify turns it
// into a webhook and an email. ID is stable per job and type, so a redelivered
// event is recognised as the same (webhook-id).
type Event struct {
	ID      string    `json:"id"`
	Type    string    `json:"type"`
	Time    time.Time `json:"time"`
	Tenant  string    `json:"tenant"`
	JobID   string    `json:"job_id"`
	Webhook string    `json:"webhook_url,omitempty"`
	Email   string    `json:"notify_email,omitempty"`
	Detail  View      `json:"detail"`
}

// EventFor returns the terminal event of j, or false when j is not terminal
// (expired jobs notify as failed: the client's uploads never arrived).
func EventFor(j *Job, view View, now time.Time) (Event, bool) {
	var typ string
	switch j.Status {
	case Succeeded:
		typ = EventSucceeded
	case Failed, Expired:
		typ = EventFailed
	case Canceled:
		typ = EventCanceled
	default:
		return Event{}, false
	}
	return Event{
		ID: "evt_" + j.ID + "_" + string(j.Status), Type: typ, Time: now,
		Tenant: j.Tenant, JobID: j.ID, Webhook: j.WebhookURL, Email: j.NotifyEmail, Detail: view,
	}, true
}
