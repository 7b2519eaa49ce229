package job

import (
	"encoding/json"
	"fmt"
	"strings"
)

// MessageVersion is the queue message schema version; a worker rejects
// versions it does not know instead of guessing.
const MessageVersion = 1

// Message is the jobs queue message (DESIGN.md section 3): small, versioned,
// validated on receipt. The trace header travels as a message attribute.
type Message struct {
	Version  int     `json:"v"`
	JobID    string  `json:"job_id"`
	Tenant   string  `json:"tenant"`
	VideoKey string  `json:"video_key"`
	AudioKey string  `json:"audio_key"`
	Options  Options `json:"options"`
	Bundle   string  `json:"bundle,omitempty"`
}

// NewMessage builds the message for a job whose uploads are validated.
func NewMessage(j *Job, bundle string) Message {
	return Message{
		Version: MessageVersion, JobID: j.ID, Tenant: j.Tenant,
		VideoKey: UploadKey(j.Tenant, j.ID, VideoInput), AudioKey: UploadKey(j.Tenant, j.ID, AudioInput),
		Options: j.Options, Bundle: bundle,
	}
}

// ParseMessage decodes and validates a queue message body.
func ParseMessage(body []byte) (Message, error) {
	var m Message
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Message{}, fmt.Errorf("queue message: %w", err)
	}
	switch {
	case m.Version != MessageVersion:
		return Message{}, fmt.Errorf("queue message version %d, want %d", m.Version, MessageVersion)
	case m.JobID == "" || m.Tenant == "" || m.VideoKey == "" || m.AudioKey == "":
		return Message{}, fmt.Errorf("queue message misses job_id, tenant or keys: %s", body)
	}
	if err := m.Options.Normalize(); err != nil {
		return Message{}, fmt.Errorf("queue message: %w", err)
	}
	return m, nil
}
