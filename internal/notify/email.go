package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/latentsync/latentsync-service/internal/job"
)

// compose writes the email of e: a subject and a plain-text body.
func compose(e job.Event) (subject, text string) {
	v := e.Detail
	var b strings.Builder
	switch e.Type {
	case job.EventSucceeded:
		subject = fmt.Sprintf("LatentSync job %s succeeded", e.JobID)
		fmt.Fprintf(&b, "Your lip-sync job %s succeeded.\n", e.JobID)
	case job.EventCanceled:
		subject = fmt.Sprintf("LatentSync job %s was canceled", e.JobID)
		fmt.Fprintf(&b, "Your lip-sync job %s was canceled.\n", e.JobID)
	default:
		subject = fmt.Sprintf("LatentSync job %s failed", e.JobID)
		fmt.Fprintf(&b, "Your lip-sync job %s failed (status %s).\n", e.JobID, v.Status)
	}
	if v.ClientReference != "" {
		fmt.Fprintf(&b, "Your reference: %s\n", v.ClientReference)
	}
	if v.Error != nil {
		fmt.Fprintf(&b, "\nError %s: %s\n", v.Error.Code, v.Error.Message)
	}
	if v.Output != nil && v.Output.URL != "" {
		fmt.Fprintf(&b, "\nDownload the result (%d bytes) until %s:\n%s\n",
			v.Output.SizeBytes, v.Output.ExpiresAt.UTC().Format(time.RFC1123), v.Output.URL)
	}
	if self := v.Links["self"]; self != "" {
		fmt.Fprintf(&b, "\nJob details: GET %s\n", self)
	}
	return subject, b.String()
}

// DirMailer is the local Mailer: each message becomes an .eml file in a
// directory, readable by any mail client or by tests.
type DirMailer struct {
	dir  string
	from string
	now  func() time.Time
}

// NewDirMailer writes messages from the address from into dir, creating it.
func NewDirMailer(dir, from string) (*DirMailer, error) {
	if _, err := mail.ParseAddress(from); err != nil {
		return nil, fmt.Errorf("notify: sender address %q: %w", from, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("notify: mail directory: %w", err)
	}
	return &DirMailer{dir: dir, from: from, now: time.Now}, nil
}

// Send writes one RFC 5322 message. An unparsable recipient is rejected
// (ErrRejected), like a real mail service would.
func (m *DirMailer) Send(ctx context.Context, to, subject, textBody string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	rcpt, err := mail.ParseAddress(to)
	if err != nil {
		return fmt.Errorf("%w: recipient %q: %v", ErrRejected, to, err)
	}
	from, _ := mail.ParseAddress(m.from) // checked by NewDirMailer
	id := randomHex(8)
	now := m.now()

	var msg bytes.Buffer
	// Header values are ours or parsed addresses; the subject is Q-encoded
	// whenever it holds anything but printable ASCII (so no CR/LF gets in).
	fmt.Fprintf(&msg, "From: %s\r\n", from)
	fmt.Fprintf(&msg, "To: %s\r\n", rcpt)
	fmt.Fprintf(&msg, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", subject))
	fmt.Fprintf(&msg, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&msg, "Message-ID: <%s@latentsync.local>\r\n", id)
	msg.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	qp := quotedprintable.NewWriter(&msg)
	if _, err := qp.Write([]byte(strings.ReplaceAll(strings.ReplaceAll(textBody, "\r\n", "\n"), "\n", "\r\n"))); err != nil {
		return fmt.Errorf("notify: encode email: %w", err)
	}
	if err := qp.Close(); err != nil {
		return fmt.Errorf("notify: encode email: %w", err)
	}

	// Write then rename, so a reader never sees half a message.
	name := fmt.Sprintf("%s-%s.eml", now.UTC().Format("20060102T150405.000000000Z"), id)
	tmp, err := os.CreateTemp(m.dir, ".tmp-*.eml")
	if err != nil {
		return fmt.Errorf("notify: write email: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(msg.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("notify: write email: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("notify: write email: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(m.dir, name)); err != nil {
		return fmt.Errorf("notify: write email: %w", err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}
