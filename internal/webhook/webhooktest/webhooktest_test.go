package webhooktest_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/internal/webhook"
	"github.com/latentsync/latentsync-service/internal/webhook/webhooktest"
)

func TestNextReturnsTheSignedPayload(t *testing.T) {
	key := []byte("webhooktest-key-0123456789abcdef")
	hooks := webhooktest.Start(t, key)
	body := []byte(`{"type":"job.failed","data":{"id":"job_7"}}`)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, hooks.URL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	h, err := webhook.Headers(key, "msg_7", time.Now(), body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("status %d", resp.StatusCode)
	}
	ev := hooks.Next(t, 5*time.Second)
	if ev["type"] != "job.failed" || ev["data"].(map[string]any)["id"] != "job_7" {
		t.Fatalf("payload %v", ev)
	}
}
