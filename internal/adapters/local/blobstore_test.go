package local

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/internal/blob"
	"github.com/latentsync/latentsync-service/internal/blob/blobtest"
	"github.com/latentsync/latentsync-service/internal/fakeclock"
)

// serveBlobs starts a 127.0.0.1 server with the store's handler mounted at
// /blobs/, the way `serve` mounts it, and returns the store.
func serveBlobs(t *testing.T, dir string, cfg BlobConfig) (*BlobStore, *httptest.Server) {
	t.Helper()
	var store *BlobStore
	mux := http.NewServeMux()
	mux.Handle("/blobs/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { store.Handler().ServeHTTP(w, r) }))
	srv := httptest.NewServer(mux) // httptest listens on 127.0.0.1
	t.Cleanup(srv.Close)
	cfg.BaseURL = srv.URL + "/blobs/"
	var err error
	if store, err = OpenBlobStore(dir, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store, srv
}

func TestBlobStoreConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store {
		s, _ := serveBlobs(t, t.TempDir(), BlobConfig{})
		return s
	}, http.DefaultClient, blobtest.Options{})
}

func TestBlobStoreSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	first, _ := serveBlobs(t, dir, BlobConfig{})
	if err := first.Put(ctx, "outputs/t/j/result.mp4", strings.NewReader("result"), 6, "video/mp4"); err != nil {
		t.Fatal(err)
	}
	body := []byte("uploaded after the restart")
	p, err := first.PresignPut(ctx, "uploads/t/j/video", "video/mp4", int64(len(body)), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	first.Close()

	// Same directory, new process, new port: the URL's host changes, but its
	// signature (the persisted secret) must still be honoured.
	second, srv := serveBlobs(t, dir, BlobConfig{})
	a, err := second.Attributes(ctx, "outputs/t/j/result.mp4")
	if err != nil || a.Size != 6 || a.ContentType != "video/mp4" {
		t.Errorf("after restart: %+v, %v; want the stored result", a, err)
	}
	u := srv.URL + p.URL[strings.Index(p.URL, "/blobs/"):]
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(body))
	req.Header.Set("Content-Type", "video/mp4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT with a pre-restart URL: %d", resp.StatusCode)
	}
	r, err := second.NewRangeReader(ctx, "uploads/t/j/video", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, _ := io.ReadAll(r); !bytes.Equal(got, body) {
		t.Errorf("stored %q, want %q", got, body)
	}
}

func TestBlobHandlerRefuses(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := fakeclock.New(start) // read by the server goroutine
	store, _ := serveBlobs(t, t.TempDir(), BlobConfig{Secret: []byte("test secret"), Now: clock.Now})
	ctx := t.Context()
	const key = "uploads/t/j/audio"
	put, err := store.PresignPut(ctx, key, "audio/wav", 4, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, "outputs/t/j/result.mp4", strings.NewReader("data"), 4, "video/mp4"); err != nil {
		t.Fatal(err)
	}
	get, err := store.PresignGet(ctx, "outputs/t/j/result.mp4", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		method  string
		url     string
		body    io.Reader
		ctype   string
		advance time.Duration
		want    int
	}{
		{"upload URL used for download", http.MethodGet, put.URL, nil, "", 0, http.StatusForbidden},
		{"download URL used for upload", http.MethodPut, get.URL, strings.NewReader("evil"), "video/mp4", 0, http.StatusForbidden},
		{"size raised in the URL", http.MethodPut, strings.Replace(put.URL, "size=4", "size=5", 1), strings.NewReader("abcde"), "audio/wav", 0, http.StatusForbidden},
		{"chunked body without length", http.MethodPut, put.URL, io.MultiReader(strings.NewReader("ab"), strings.NewReader("cd")), "audio/wav", 0, http.StatusLengthRequired},
		{"expired by the store's clock", http.MethodPut, put.URL, strings.NewReader("abcd"), "audio/wav", time.Minute, http.StatusForbidden},
		{"DELETE", http.MethodDelete, get.URL, nil, "", 0, http.StatusMethodNotAllowed},
		{"HEAD of a download URL", http.MethodHead, get.URL, nil, "", 0, http.StatusOK},
		{"path outside the mount", http.MethodGet, strings.Replace(get.URL, "/blobs/", "/blobs/../", 1), nil, "", 0, http.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock.Set(start.Add(tc.advance))
			req, err := http.NewRequestWithContext(ctx, tc.method, tc.url, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%s = %d, want %d", tc.method, resp.StatusCode, tc.want)
			}
			if _, err := store.Attributes(ctx, key); err == nil {
				t.Errorf("refused request stored %s", key)
			}
		})
	}
}

func TestBlobKeysStayInside(t *testing.T) {
	store, _ := serveBlobs(t, t.TempDir(), BlobConfig{})
	for _, key := range []string{"", "/etc/passwd", "../x", "a/../../x", "a//b", "a/./b", "a/", ".", "a\\b", "a\nb"} {
		t.Run(key, func(t *testing.T) {
			if err := store.Put(t.Context(), key, strings.NewReader("x"), 1, "text/plain"); err == nil {
				t.Errorf("Put(%q) succeeded", key)
			}
			if _, err := store.PresignPut(t.Context(), key, "text/plain", 1, time.Minute); err == nil {
				t.Errorf("PresignPut(%q) succeeded", key)
			}
		})
	}
}
