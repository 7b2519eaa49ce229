// Package blobtest is the conformance suite of blob.Store: the local adapter
// and the aws adapter (against an S3 emulator) both run it. Presigned URLs
// are exercised the way clients use them: plain net/http, no credentials.
package blobtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/internal/blob"
)

// Gap names a check of the contract that a store under test does not
// enforce (an emulator that ignores signatures, for one).
type Gap string

const (
	// GapSignature: a presigned URL whose path (the key) was altered is refused.
	GapSignature Gap = "signature"
	// GapExpiry: a presigned URL is refused once it expired.
	GapExpiry Gap = "expiry"
	// GapContentType: a presigned PUT with another Content-Type is refused.
	GapContentType Gap = "content-type"
	// GapContentLength: a presigned PUT with another length is refused.
	GapContentLength Gap = "content-length"
)

// Options adapt the suite to one store.
type Options struct {
	// Gaps maps each check the store does not enforce to the reason; those
	// sub-tests are skipped with it, so the run documents the gap. The zero
	// value holds the store to the whole contract.
	Gaps map[Gap]string
}

func (o Options) skipIfGap(t *testing.T, g Gap) {
	t.Helper()
	if why, ok := o.Gaps[g]; ok {
		t.Skipf("store does not enforce %s: %s", g, why)
	}
}

// Run runs the suite. newStore returns a store for each sub-test (they run
// in parallel and use distinct keys, so stores may share one bucket);
// client makes the presigned requests.
func Run(t *testing.T, newStore func(t *testing.T) blob.Store, client *http.Client, opts Options) {
	s := suite{client: client, opts: opts}
	tests := []struct {
		name string
		fn   func(t *testing.T, st blob.Store)
	}{
		{"PresignedPut", s.testPresignedPut},
		{"PresignedPutRefused", s.testPresignedPutRefused},
		{"PresignedPutExpired", s.testPresignedPutExpired},
		{"PresignedGet", s.testPresignedGet},
		{"PresignedGetExpired", s.testPresignedGetExpired},
		{"AttributesAndNotFound", s.testAttributes},
		{"RangeReads", s.testRangeReads},
		{"PutOverwriteAtomic", s.testPutOverwrite},
		{"PutShortReaderKeepsOld", s.testPutShortReader},
		{"DeleteIdempotent", s.testDelete},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

type suite struct {
	client *http.Client
	opts   Options
}

// key returns a storage-shaped key unique to the sub-test.
func key(t *testing.T, name string) string {
	test := strings.NewReplacer("/", "-", " ", "-", "=", "-").Replace(t.Name())
	return fmt.Sprintf("uploads/%s/%d/%s", test, time.Now().UnixNano(), name)
}

func payload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 42))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// send makes the request a client would make from a Presigned: its method,
// its headers, then the overrides, and body with its true length.
func (s suite) send(t *testing.T, p blob.Presigned, method string, body []byte, override map[string]string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, p.URL, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range p.Headers {
		switch http.CanonicalHeaderKey(k) {
		case "Host", "Content-Length": // net/http sets these from the request itself
		default:
			req.Header.Set(k, v)
		}
	}
	for k, v := range override {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, p.URL, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	return resp.StatusCode, got
}

func header(p blob.Presigned, name string) string {
	for k, v := range p.Headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

func readAll(t *testing.T, st blob.Store, k string, off, n int64) []byte {
	t.Helper()
	r, err := st.NewRangeReader(t.Context(), k, off, n)
	if err != nil {
		t.Fatalf("NewRangeReader(%s, %d, %d): %v", k, off, n, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading %s: %v", k, err)
	}
	return b
}

func mustPut(t *testing.T, st blob.Store, k string, b []byte, ct string) {
	t.Helper()
	if err := st.Put(t.Context(), k, bytes.NewReader(b), int64(len(b)), ct); err != nil {
		t.Fatalf("Put(%s): %v", k, err)
	}
}

func assertAbsent(t *testing.T, st blob.Store, k string) {
	t.Helper()
	if a, err := st.Attributes(t.Context(), k); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Attributes(%s) = %+v, %v; want ErrNotFound (nothing stored)", k, a, err)
	}
}

func (s suite) testPresignedPut(t *testing.T, st blob.Store) {
	k := key(t, "video")
	body := payload(100_003, 1)
	const ct = "video/mp4"
	const ttl = 10 * time.Minute
	before := time.Now()
	p, err := st.PresignPut(t.Context(), k, ct, int64(len(body)), ttl)
	if err != nil {
		t.Fatal(err)
	}
	if p.Method != http.MethodPut {
		t.Errorf("Method = %q, want PUT", p.Method)
	}
	if got := header(p, "Content-Type"); got != ct {
		t.Errorf("Headers[Content-Type] = %q, want %q (clients must be told to send it)", got, ct)
	}
	if lo, hi := before.Add(ttl-2*time.Second), time.Now().Add(ttl+2*time.Second); p.ExpiresAt.Before(lo) || p.ExpiresAt.After(hi) {
		t.Errorf("ExpiresAt = %s, want about %s", p.ExpiresAt, before.Add(ttl))
	}
	if code, resp := s.send(t, p, p.Method, body, nil); code/100 != 2 {
		t.Fatalf("presigned PUT: %d %s", code, resp)
	}
	a, err := st.Attributes(t.Context(), k)
	if err != nil {
		t.Fatal(err)
	}
	if a.Size != int64(len(body)) || a.ContentType != ct {
		t.Errorf("Attributes = %+v, want size %d type %s", a, len(body), ct)
	}
	if got := readAll(t, st, k, 0, -1); !bytes.Equal(got, body) {
		t.Errorf("stored %d bytes differ from the %d uploaded", len(got), len(body))
	}
}

func (s suite) testPresignedPutRefused(t *testing.T, st blob.Store) {
	const ct = "audio/wav"
	const size = 4096
	tests := []struct {
		name     string
		gap      Gap
		body     []byte
		override map[string]string
		tamper   bool
	}{
		{"shorter body", GapContentLength, payload(size-1, 2), nil, false},
		{"longer body", GapContentLength, payload(size+1, 2), nil, false},
		{"empty body", GapContentLength, []byte{}, nil, false},
		{"other content type", GapContentType, payload(size, 2), map[string]string{"Content-Type": "video/mp4"}, false},
		{"altered key", GapSignature, payload(size, 2), nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.opts.skipIfGap(t, tc.gap)
			k := key(t, "audio")
			p, err := st.PresignPut(t.Context(), k, ct, size, 10*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			target := k
			if tc.tamper {
				u, err := url.Parse(p.URL)
				if err != nil {
					t.Fatal(err)
				}
				u.Path, u.RawPath = u.Path+"-altered", ""
				p.URL = u.String()
				target = k + "-altered"
			}
			if code, resp := s.send(t, p, p.Method, tc.body, tc.override); code/100 != 4 {
				t.Errorf("PUT = %d %s, want 4xx", code, resp)
			}
			assertAbsent(t, st, k)
			assertAbsent(t, st, target)
		})
	}
}

// waitPast sleeps until the URL expired, with a margin for stores that
// count expiry in whole seconds.
func waitPast(p blob.Presigned) {
	time.Sleep(time.Until(p.ExpiresAt) + 1500*time.Millisecond)
}

func (s suite) testPresignedPutExpired(t *testing.T, st blob.Store) {
	s.opts.skipIfGap(t, GapExpiry)
	k := key(t, "video")
	body := payload(1000, 3)
	p, err := st.PresignPut(t.Context(), k, "video/mp4", int64(len(body)), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	waitPast(p)
	if code, resp := s.send(t, p, p.Method, body, nil); code/100 != 4 {
		t.Errorf("expired PUT = %d %s, want 4xx", code, resp)
	}
	assertAbsent(t, st, k)
}

func (s suite) testPresignedGet(t *testing.T, st blob.Store) {
	k := key(t, "result.mp4")
	body := payload(70_001, 4)
	mustPut(t, st, k, body, "video/mp4")
	p, err := st.PresignGet(t.Context(), k, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if p.Method != http.MethodGet {
		t.Errorf("Method = %q, want GET", p.Method)
	}
	code, got := s.send(t, p, p.Method, nil, nil)
	if code != http.StatusOK || !bytes.Equal(got, body) {
		t.Errorf("presigned GET = %d with %d bytes, want 200 with the %d stored", code, len(got), len(body))
	}

	missing, err := st.PresignGet(t.Context(), key(t, "missing"), 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := s.send(t, missing, missing.Method, nil, nil); code/100 != 4 {
		t.Errorf("presigned GET of a missing object = %d, want 4xx", code)
	}
	t.Run("altered key", func(t *testing.T) {
		s.opts.skipIfGap(t, GapSignature)
		other := key(t, "other")
		mustPut(t, st, other, []byte("secret"), "text/plain")
		u, err := url.Parse(p.URL)
		if err != nil {
			t.Fatal(err)
		}
		// A URL for one key must not read another.
		u.Path, u.RawPath = strings.TrimSuffix(u.Path, k)+other, ""
		p := p
		p.URL = u.String()
		if code, got := s.send(t, p, p.Method, nil, nil); code/100 != 4 {
			t.Errorf("GET with an altered key = %d %q, want 4xx", code, got)
		}
	})
}

func (s suite) testPresignedGetExpired(t *testing.T, st blob.Store) {
	s.opts.skipIfGap(t, GapExpiry)
	k := key(t, "result.mp4")
	mustPut(t, st, k, []byte("result"), "video/mp4")
	p, err := st.PresignGet(t.Context(), k, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	waitPast(p)
	if code, got := s.send(t, p, p.Method, nil, nil); code/100 != 4 {
		t.Errorf("expired GET = %d %q, want 4xx", code, got)
	}
}

func (s suite) testAttributes(t *testing.T, st blob.Store) {
	k := key(t, "video")
	assertAbsent(t, st, k)
	if r, err := st.NewRangeReader(t.Context(), k, 0, -1); !errors.Is(err, blob.ErrNotFound) {
		if err == nil {
			r.Close()
		}
		t.Errorf("NewRangeReader(missing) = %v, want ErrNotFound", err)
	}
	before := time.Now()
	body := payload(12_345, 5)
	mustPut(t, st, k, body, "video/quicktime")
	a, err := st.Attributes(t.Context(), k)
	if err != nil {
		t.Fatal(err)
	}
	if a.Size != int64(len(body)) || a.ContentType != "video/quicktime" {
		t.Errorf("Attributes = %+v, want size %d type video/quicktime", a, len(body))
	}
	// Stores keep seconds at least; allow for that and small clock skew.
	if a.ModTime.Before(before.Add(-time.Minute)) || a.ModTime.After(time.Now().Add(time.Minute)) {
		t.Errorf("ModTime = %s, want about %s", a.ModTime, before)
	}
	empty := key(t, "empty")
	mustPut(t, st, empty, nil, "application/octet-stream")
	if a, err := st.Attributes(t.Context(), empty); err != nil || a.Size != 0 {
		t.Errorf("Attributes(empty object) = %+v, %v; want size 0", a, err)
	}
}

func (s suite) testRangeReads(t *testing.T, st blob.Store) {
	k := key(t, "audio")
	body := payload(10_000, 6)
	mustPut(t, st, k, body, "audio/wav")
	n := int64(len(body))
	tests := []struct {
		name        string
		off, length int64
		want        []byte
	}{
		{"header", 0, 12, body[:12]},
		{"middle", 4000, 1000, body[4000:5000]},
		{"to the end", 9000, -1, body[9000:]},
		{"whole", 0, -1, body},
		{"last byte", n - 1, 1, body[n-1:]},
		{"past the end is cut", n - 10, 64 << 10, body[n-10:]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := readAll(t, st, k, tc.off, tc.length); !bytes.Equal(got, tc.want) {
				t.Errorf("read %d bytes, want the %d at %d", len(got), len(tc.want), tc.off)
			}
		})
	}
}

func (s suite) testPutOverwrite(t *testing.T, st blob.Store) {
	k := key(t, "result.mp4")
	// Two versions of different sizes and fillers: a torn read mixes them.
	versions := [][]byte{bytes.Repeat([]byte{'a'}, 300_000), bytes.Repeat([]byte{'b'}, 200_000)}
	mustPut(t, st, k, versions[0], "video/mp4")
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var reads, torn int
	var mu sync.Mutex
	for range 2 {
		wg.Go(func() {
			for ctx.Err() == nil {
				r, err := st.NewRangeReader(ctx, k, 0, -1)
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("reader: %v", err)
					}
					return
				}
				b, err := io.ReadAll(r)
				r.Close()
				if err != nil {
					continue // the context ended mid-read
				}
				mu.Lock()
				reads++
				if !bytes.Equal(b, versions[0]) && !bytes.Equal(b, versions[1]) {
					torn++
				}
				mu.Unlock()
			}
		})
	}
	for i := range 20 {
		v := versions[(i+1)%2]
		mustPut(t, st, k, v, fmt.Sprintf("video/v%d", (i+1)%2))
	}
	cancel()
	wg.Wait()
	if torn > 0 {
		t.Errorf("%d of %d concurrent reads saw neither whole version", torn, reads)
	}
	if reads == 0 {
		t.Error("no read completed during the overwrites")
	}
	last := versions[20%2]
	if got := readAll(t, st, k, 0, -1); !bytes.Equal(got, last) {
		t.Errorf("final object has %d bytes, want the last write", len(got))
	}
	a, err := st.Attributes(t.Context(), k)
	if err != nil {
		t.Fatal(err)
	}
	if a.Size != int64(len(last)) || a.ContentType != "video/v0" {
		t.Errorf("Attributes = %+v, want size %d type video/v0", a, len(last))
	}
}

func (s suite) testPutShortReader(t *testing.T, st blob.Store) {
	k := key(t, "result.mp4")
	old := payload(5000, 7)
	mustPut(t, st, k, old, "video/mp4")
	err := st.Put(t.Context(), k, bytes.NewReader(payload(100, 8)), 5000, "video/mp4")
	if err == nil {
		t.Fatal("Put of 100 bytes declared as 5000 succeeded")
	}
	if got := readAll(t, st, k, 0, -1); !bytes.Equal(got, old) {
		t.Errorf("failed Put changed the object: %d bytes", len(got))
	}
	fresh := key(t, "fresh")
	if err := st.Put(t.Context(), fresh, bytes.NewReader(payload(10, 9)), 20, "video/mp4"); err == nil {
		t.Fatal("short Put to a new key succeeded")
	}
	assertAbsent(t, st, fresh)
}

func (s suite) testDelete(t *testing.T, st blob.Store) {
	k := key(t, "video")
	mustPut(t, st, k, []byte("x"), "video/mp4")
	for i := range 2 {
		if err := st.Delete(t.Context(), k); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
		assertAbsent(t, st, k)
	}
	if err := st.Delete(t.Context(), key(t, "never")); err != nil {
		t.Errorf("Delete(never stored) = %v, want nil", err)
	}
}
