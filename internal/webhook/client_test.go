package webhook

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// counting starts a receiver on 127.0.0.1 that counts requests.
func counting(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func post(t *testing.T, c *http.Client, url string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	return resp, err
}

func TestClientRefusesPrivateAddressAtConnectTime(t *testing.T) {
	srv, hits := counting(t, func(w http.ResponseWriter, _ *http.Request) {})
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	// The URLs skip CheckURL on purpose: the dialer must refuse on its own,
	// after resolution (localhost resolves to 127.0.0.1 only at dial time).
	for _, url := range []string{srv.URL, "http://localhost" + port} {
		_, err := post(t, NewClient(ClientConfig{}), url)
		if !errors.Is(err, ErrForbiddenURL) {
			t.Fatalf("%s: %v, want ErrForbiddenURL", url, err)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("receiver got %d requests", hits.Load())
	}
	resp, err := post(t, NewClient(ClientConfig{AllowPrivate: true}), "http://localhost"+port)
	if err != nil || resp.StatusCode != http.StatusOK || hits.Load() != 1 {
		t.Fatalf("with private allowed: %v, %v, %d hits", resp, err, hits.Load())
	}
}

func TestClientFollowsNoRedirect(t *testing.T) {
	target, targetHits := counting(t, func(w http.ResponseWriter, _ *http.Request) {})
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		origin, _ := counting(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/elsewhere", code)
		})
		resp, err := post(t, NewClient(ClientConfig{AllowPrivate: true}), origin.URL)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != code {
			t.Fatalf("status %d, want the redirect %d itself", resp.StatusCode, code)
		}
	}
	if targetHits.Load() != 0 {
		t.Fatalf("redirect target got %d requests", targetHits.Load())
	}
}

func TestClientTimeoutBoundsAnAttempt(t *testing.T) {
	release := make(chan struct{})
	srv, _ := counting(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	start := time.Now()
	_, err := post(t, NewClient(ClientConfig{AllowPrivate: true, Timeout: 200 * time.Millisecond}), srv.URL)
	if err == nil {
		t.Fatal("a receiver that never answers did not fail the attempt")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("attempt took %s with a 200 ms timeout", d)
	}
	if errors.Is(err, ErrForbiddenURL) {
		t.Fatalf("a timeout reported as forbidden: %v", err)
	}
}
