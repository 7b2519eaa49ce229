// Package apiclient is a Go client of the public HTTP API: what `latentsync
// submit`, `make demo` and the end-to-end tests use to act exactly as an API
// client would (create, upload through presigned URLs, poll, download).
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/latentsync/latentsync-service/internal/blob"
	"github.com/latentsync/latentsync-service/internal/job"
)

// Client talks to one API endpoint with one API key.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:8080
	APIKey  string
	HTTP    *http.Client
}

// CreateRequest is the body of POST /v1/jobs.
type CreateRequest struct {
	Video           job.Media    `json:"video"`
	Audio           job.Media    `json:"audio"`
	Options         *job.Options `json:"options,omitempty"`
	Webhook         *Webhook     `json:"webhook,omitempty"`
	NotifyEmail     string       `json:"notify_email,omitempty"`
	ClientReference string       `json:"client_reference,omitempty"`
}

// Webhook is where job events are delivered.
type Webhook struct {
	URL string `json:"url"`
}

// Created is the response of POST /v1/jobs.
type Created struct {
	ID      string                       `json:"id"`
	Status  job.Status                   `json:"status"`
	Uploads map[job.Input]blob.Presigned `json:"uploads"`
	Links   map[string]string            `json:"links"`
}

// Error is an API error response.
type Error struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message) }

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// Create creates a job; idempotencyKey may be empty.
func (c *Client) Create(ctx context.Context, req CreateRequest, idempotencyKey string) (*Created, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("create job: %w", err)
	}
	h := http.Header{"Content-Type": {"application/json"}}
	if idempotencyKey != "" {
		h.Set("Idempotency-Key", idempotencyKey)
	}
	var out Created
	if err := c.do(ctx, http.MethodPost, "/v1/jobs", h, body, &out); err != nil {
		return nil, fmt.Errorf("create job: %w", err)
	}
	return &out, nil
}

// Get returns the job's public view.
func (c *Client) Get(ctx context.Context, id string) (*job.View, error) {
	var v job.View
	if err := c.do(ctx, http.MethodGet, "/v1/jobs/"+id, nil, nil, &v); err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, err)
	}
	return &v, nil
}

// Cancel cancels the job.
func (c *Client) Cancel(ctx context.Context, id string) (*job.View, error) {
	var v job.View
	if err := c.do(ctx, http.MethodDelete, "/v1/jobs/"+id, nil, nil, &v); err != nil {
		return nil, fmt.Errorf("cancel job %s: %w", id, err)
	}
	return &v, nil
}

// Wait polls the job until it is terminal, every interval.
func (c *Client) Wait(ctx context.Context, id string, interval time.Duration) (*job.View, error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		v, err := c.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if v.Status.Terminal() {
			return v, nil
		}
		select {
		case <-ctx.Done():
			return v, fmt.Errorf("wait for job %s (last %s): %w", id, v.Status, ctx.Err())
		case <-t.C:
		}
	}
}

func (c *Client) do(ctx context.Context, method, path string, h http.Header, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("x-api-key", c.APIKey)
	resp, err := c.http().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error Error `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		e.Error.Status = resp.StatusCode
		return &e.Error
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}

// Upload PUTs the file at path to a presigned upload URL with the headers it
// was signed for, streaming it.
func Upload(ctx context.Context, client *http.Client, p blob.Presigned, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("upload %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("upload %s: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, p.Method, p.URL, f)
	if err != nil {
		return fmt.Errorf("upload %s: %w", path, err)
	}
	req.ContentLength = st.Size()
	for k, v := range p.Headers {
		if http.CanonicalHeaderKey(k) != "Content-Length" {
			req.Header.Set(k, v)
		}
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("upload %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("upload %s: HTTP %d: %s", path, resp.StatusCode, bytes.TrimSpace(msg))
	}
	return nil
}

// Download saves a URL to path atomically.
func Download(ctx context.Context, client *http.Client, url, path string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("download: %w", err)
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("download: HTTP %d", resp.StatusCode)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".download-*")
	if err != nil {
		return 0, fmt.Errorf("download to %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, resp.Body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("download to %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return 0, fmt.Errorf("download to %s: %w", path, err)
	}
	return n, nil
}

// ContentType guesses the upload content type of a media file by extension,
// the way a browser uploader would.
func ContentType(path string) string {
	switch filepath.Ext(path) {
	case ".mp4":
		return "video/mp4"
	case ".mov":
		return "video/quicktime"
	case ".webm":
		return "video/webm"
	case ".m4a":
		return "audio/mp4"
	case ".mp3":
		return "audio/mpeg"
	case ".wav":
		return "audio/wav"
	}
	return "application/octet-stream"
}
