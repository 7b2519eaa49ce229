package aws_test

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	awsadapter "github.com/latentsync/latentsync-service/internal/adapters/aws"
	"github.com/latentsync/latentsync-service/internal/adapters/aws/awstest"
	"github.com/latentsync/latentsync-service/internal/blob"
	"github.com/latentsync/latentsync-service/internal/blob/blobtest"
)

// fauxqs accepts any presigned request, signed or not; real S3 enforces
// what TestPresignPutSignsTypeAndLength shows is in the signature.
var fauxqsGaps = map[blobtest.Gap]string{
	blobtest.GapSignature:     "fauxqs checks no signatures",
	blobtest.GapExpiry:        "fauxqs ignores X-Amz-Expires",
	blobtest.GapContentType:   "fauxqs checks no signed headers",
	blobtest.GapContentLength: "fauxqs checks no signed headers",
}

func TestBlobStoreConformance(t *testing.T) {
	f := awstest.StartFauxqs(t)
	bucket := f.CreateBucket(t, awstest.Name(t, "uploads"))
	blobtest.Run(t, func(t *testing.T) blob.Store {
		return awsadapter.NewBlobStore(f.S3, bucket)
	}, &http.Client{Timeout: 30 * time.Second}, blobtest.Options{Gaps: fauxqsGaps})
}

// S3 refuses a presigned PUT whose signed headers differ from the request:
// the URL must sign Content-Type and Content-Length, and tell the client
// to send both.
func TestPresignPutSignsTypeAndLength(t *testing.T) {
	f := awstest.StartFauxqs(t)
	st := awsadapter.NewBlobStore(f.S3, "uploads")
	tests := []struct {
		contentType string
		size        int64
	}{
		{"video/mp4", 1},
		{"audio/wav", 104_857_600},
	}
	for _, tc := range tests {
		t.Run(tc.contentType, func(t *testing.T) {
			p, err := st.PresignPut(t.Context(), "uploads/t/j/video", tc.contentType, tc.size, 15*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(p.URL)
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			signed := strings.Split(q.Get("X-Amz-SignedHeaders"), ";")
			for _, h := range []string{"content-length", "content-type", "host"} {
				if !slices.Contains(signed, h) {
					t.Errorf("X-Amz-SignedHeaders = %v, missing %s", signed, h)
				}
			}
			if got := q.Get("X-Amz-Expires"); got != "900" {
				t.Errorf("X-Amz-Expires = %s, want 900", got)
			}
			// Values the signature covers must not ride in the query, where
			// a client could not be held to them by headers.
			for k := range q {
				if strings.HasPrefix(strings.ToLower(k), "x-amz-checksum") || strings.EqualFold(k, "x-amz-sdk-checksum-algorithm") {
					t.Errorf("URL carries %s=%s: a checksum of no body would refuse every upload", k, q.Get(k))
				}
			}
			if p.Headers["Content-Type"] != tc.contentType || p.Headers["Content-Length"] != strconvI(tc.size) {
				t.Errorf("Headers = %v, want Content-Type %s and Content-Length %d", p.Headers, tc.contentType, tc.size)
			}
			if u.Host != strings.TrimPrefix(f.Endpoint, "http://") || !strings.HasPrefix(u.Path, "/uploads/uploads/t/j/video") {
				t.Errorf("URL %s is not path-style on the emulator", p.URL)
			}
		})
	}
	if _, err := st.PresignPut(t.Context(), "k", "video/mp4", 0, time.Minute); err == nil {
		t.Error("PresignPut of 0 bytes succeeded; its length could not be signed")
	}
}

func strconvI(n int64) string { return strconv.FormatInt(n, 10) }
