package job

import "time"

// View is the public JSON of a job (GET /v1/jobs/{id}); it never shows
// storage keys, the tenant or internal bookkeeping.
type View struct {
	ID              string            `json:"id"`
	Status          Status            `json:"status"`
	Stage           string            `json:"stage,omitempty"`
	Progress        float64           `json:"progress"`
	CreatedAt       time.Time         `json:"created_at"`
	UpdatedAt       time.Time         `json:"updated_at"`
	StartedAt       *time.Time        `json:"started_at,omitempty"`
	CompletedAt     *time.Time        `json:"completed_at,omitempty"`
	Options         Options           `json:"options"`
	ClientReference string            `json:"client_reference,omitempty"`
	Error           *Error            `json:"error,omitempty"`
	Metrics         *Metrics          `json:"metrics,omitempty"`
	Warnings        []Warning         `json:"warnings,omitempty"`
	Output          *OutputView       `json:"output,omitempty"`
	Links           map[string]string `json:"links,omitempty"`
}

// OutputView is where the result can be downloaded.
type OutputView struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
	SizeBytes int64     `json:"size_bytes"`
}

// View builds the public view; output is nil unless the job succeeded and
// the caller presigned a download URL.
func (j *Job) View(output *OutputView) View {
	return View{
		ID: j.ID, Status: j.Status, Stage: j.Stage, Progress: j.Progress,
		CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt, StartedAt: j.StartedAt, CompletedAt: j.CompletedAt,
		Options: j.Options, ClientReference: j.ClientReference, Error: j.Error, Metrics: j.Metrics, Warnings: j.Warnings,
		Output: output, Links: map[string]string{"self": "/v1/jobs/" + j.ID},
	}
}
