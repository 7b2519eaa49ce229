package notify

import (
	"context"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latentsync/latentsync-service/internal/job"
)

// readMail parses every .eml file in dir.
func readMail(t *testing.T, dir string) []*mail.Message {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []*mail.Message
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), ".") {
			t.Fatalf("temporary file %s left behind", f)
		}
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := mail.ReadMessage(fh)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		body, err := io.ReadAll(quotedprintable.NewReader(m.Body))
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
		m.Body = strings.NewReader(string(body))
		out = append(out, m)
	}
	return out
}

func subjectOf(t *testing.T, m *mail.Message) string {
	t.Helper()
	s, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func bodyOf(t *testing.T, m *mail.Message) string {
	t.Helper()
	b, err := io.ReadAll(m.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEmailForEachOutcome(t *testing.T) {
	_, succeeded := sampleEvent(t, "eventbridge-job-succeeded.json")
	_, failed := sampleEvent(t, "eventbridge-job-failed.json")
	canceled := failed
	canceled.Type, canceled.Detail.Status, canceled.Detail.Error = "job.canceled", "canceled", nil
	tests := []struct {
		name        string
		event       func() job.Event
		wantSubject string
		wantBody    []string
	}{
		{name: "succeeded", event: func() job.Event { return succeeded },
			wantSubject: "LatentSync job " + succeeded.JobID + " succeeded",
			wantBody:    []string{"succeeded", succeeded.Detail.Output.URL, "campaign-42/clip-7", "1843200 bytes", "/v1/jobs/" + succeeded.JobID}},
		{name: "failed", event: func() job.Event { return failed },
			wantSubject: "LatentSync job " + failed.JobID + " failed",
			wantBody:    []string{"failed", "NO_FACE_DETECTED", "no face found in the first 50 frames"}},
		{name: "canceled", event: func() job.Event { return canceled },
			wantSubject: "LatentSync job " + canceled.JobID + " was canceled",
			wantBody:    []string{"was canceled"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			mailer, err := NewDirMailer(dir, "LatentSync <noreply@latentsync.local>")
			if err != nil {
				t.Fatal(err)
			}
			e := tc.event()
			e.Webhook, e.Email = "", "ada@example.com"
			if err := testNotifier(newClock(), Config{Mailer: mailer}).Handle(context.Background(), e); err != nil {
				t.Fatal(err)
			}
			msgs := readMail(t, dir)
			if len(msgs) != 1 {
				t.Fatalf("%d messages, want 1", len(msgs))
			}
			m := msgs[0]
			to, err := m.Header.AddressList("To")
			if err != nil || len(to) != 1 || to[0].Address != "ada@example.com" {
				t.Fatalf("To %v, %v", to, err)
			}
			if from, err := m.Header.AddressList("From"); err != nil || from[0].Address != "noreply@latentsync.local" {
				t.Fatalf("From %v, %v", from, err)
			}
			if got := subjectOf(t, m); got != tc.wantSubject {
				t.Fatalf("subject %q, want %q", got, tc.wantSubject)
			}
			if _, err := m.Header.Date(); err != nil {
				t.Fatalf("Date: %v", err)
			}
			body := bodyOf(t, m)
			for _, want := range tc.wantBody {
				if !strings.Contains(body, want) {
					t.Fatalf("body lacks %q:\n%s", want, body)
				}
			}
			if tc.name != "succeeded" && strings.Contains(body, "Download") {
				t.Fatalf("a %s job's email offers a download:\n%s", tc.name, body)
			}
		})
	}
}

func TestDirMailerKeepsHeadersIntact(t *testing.T) {
	dir := t.TempDir()
	mailer, err := NewDirMailer(dir, "noreply@latentsync.local")
	if err != nil {
		t.Fatal(err)
	}
	subject := "Résultat prêt\r\nBcc: attacker@example.com"
	body := "line one\nline two with a very long tail " + strings.Repeat("x", 120) + "\n= not an escape\n"
	if err := mailer.Send(context.Background(), "Zoë Client <zoe@example.com>", subject, body); err != nil {
		t.Fatal(err)
	}
	if err := mailer.Send(context.Background(), "second@example.com", "two", "b"); err != nil {
		t.Fatal(err)
	}
	msgs := readMail(t, dir)
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2 (one file each)", len(msgs))
	}
	for _, m := range msgs {
		if m.Header.Get("Bcc") != "" {
			t.Fatal("a Bcc header was injected through the subject")
		}
		if subjectOf(t, m) == "two" {
			continue
		}
		if got := subjectOf(t, m); got != subject {
			t.Fatalf("subject %q, want %q", got, subject)
		}
		to, err := m.Header.AddressList("To")
		if err != nil || to[0].Name != "Zoë Client" || to[0].Address != "zoe@example.com" {
			t.Fatalf("To %v, %v", to, err)
		}
		if got := bodyOf(t, m); got != strings.ReplaceAll(body, "\n", "\r\n") {
			t.Fatalf("body %q", got)
		}
	}
}

func TestEmailFailures(t *testing.T) {
	_, e := sampleEvent(t, "eventbridge-job-succeeded.json")
	e.Webhook = ""
	t.Run("bad recipient is rejected, not retried", func(t *testing.T) {
		mailer, err := NewDirMailer(t.TempDir(), "noreply@latentsync.local")
		if err != nil {
			t.Fatal(err)
		}
		if err := mailer.Send(context.Background(), "not an address", "s", "b"); !errors.Is(err, ErrRejected) {
			t.Fatalf("Send = %v, want ErrRejected", err)
		}
		e := e
		e.Email = "not an address"
		if err := testNotifier(newClock(), Config{Mailer: mailer}).Handle(context.Background(), e); err != nil {
			t.Fatalf("Handle = %v; a rejected email needs no retry", err)
		}
	})
	t.Run("a failing mailer makes the event retried", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "mail")
		mailer, err := NewDirMailer(dir, "noreply@latentsync.local")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(dir); err != nil { // the "mail service" goes away
			t.Fatal(err)
		}
		err = testNotifier(newClock(), Config{Mailer: mailer}).Handle(context.Background(), e)
		if err == nil || errors.Is(err, ErrRejected) {
			t.Fatalf("Handle = %v, want a retryable error", err)
		}
	})
	t.Run("bad sender", func(t *testing.T) {
		if _, err := NewDirMailer(t.TempDir(), "nobody"); err == nil {
			t.Fatal("NewDirMailer accepted a sender without an address")
		}
	})
}

func TestEmailAndWebhookBothGo(t *testing.T) {
	rc := newReceiver(t, statuses())
	dir := t.TempDir()
	mailer, err := NewDirMailer(dir, "noreply@latentsync.local")
	if err != nil {
		t.Fatal(err)
	}
	_, e := sampleEvent(t, "eventbridge-job-succeeded.json")
	e.Webhook = rc.URL
	if err := testNotifier(newClock(), Config{Mailer: mailer, AllowPrivate: true}).Handle(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	if len(rc.requests()) != 1 || len(readMail(t, dir)) != 1 {
		t.Fatalf("%d webhooks, %d emails; want one each", len(rc.requests()), len(readMail(t, dir)))
	}
}
