package aws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/latentsync/latentsync-service/internal/blob"
)

// BlobStore is blob.Store on one S3 bucket.
type BlobStore struct {
	client  *s3.Client
	presign *s3.PresignClient
	bucket  string
}

// NewBlobStore returns a store on bucket. Presigned URLs are signed with
// the client's credentials; when those are temporary (a Lambda role), a URL
// stops working when they expire, whatever its own expiry says.
func NewBlobStore(client *s3.Client, bucket string) *BlobStore {
	return &BlobStore{client: client, presign: s3.NewPresignClient(client), bucket: bucket}
}

// PresignPut implements blob.Store. Content-Type and Content-Length are
// signed headers, so S3 refuses an upload of another type or size.
func (s *BlobStore) PresignPut(ctx context.Context, key, contentType string, size int64, ttl time.Duration) (blob.Presigned, error) {
	// The signer signs Content-Length only when it is positive; an empty
	// upload could not be bound to its size.
	if size < 1 {
		return blob.Presigned{}, fmt.Errorf("presign put %s: size %d, want at least 1 byte", key, size)
	}
	if contentType == "" {
		return blob.Presigned{}, fmt.Errorf("presign put %s: content type required", key)
	}
	expires := time.Now().Add(ttl)
	req, err := s.presign.PresignPutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.bucket), Key: aws.String(key),
		ContentType: aws.String(contentType), ContentLength: aws.Int64(size),
	}, s3.WithPresignExpires(ttl))
	if err != nil {
		return blob.Presigned{}, fmt.Errorf("presign put %s: %w", key, err)
	}
	return presigned(req.URL, req.Method, req.SignedHeader, expires), nil
}

// PresignGet implements blob.Store.
func (s *BlobStore) PresignGet(ctx context.Context, key string, ttl time.Duration) (blob.Presigned, error) {
	expires := time.Now().Add(ttl)
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)},
		s3.WithPresignExpires(ttl))
	if err != nil {
		return blob.Presigned{}, fmt.Errorf("presign get %s: %w", key, err)
	}
	return presigned(req.URL, req.Method, req.SignedHeader, expires), nil
}

// presigned lists the signed headers a client must send; Host is the
// URL's own and net/http sets it.
func presigned(url, method string, signed http.Header, expires time.Time) blob.Presigned {
	h := map[string]string{}
	for k, v := range signed {
		if k != "Host" && len(v) > 0 {
			h[k] = v[0]
		}
	}
	return blob.Presigned{URL: url, Method: method, Headers: h, ExpiresAt: expires}
}

// Attributes implements blob.Store with HeadObject.
func (s *BlobStore) Attributes(ctx context.Context, key string) (blob.Attributes, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		return blob.Attributes{}, fmt.Errorf("head %s: %w", key, notFound(err))
	}
	return blob.Attributes{
		Size: aws.ToInt64(out.ContentLength), ContentType: aws.ToString(out.ContentType), ModTime: aws.ToTime(out.LastModified),
	}, nil
}

// NewRangeReader implements blob.Store with a ranged GetObject.
func (s *BlobStore) NewRangeReader(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, fmt.Errorf("read %s: negative offset %d", key, offset)
	}
	in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)}
	switch {
	case length == 0:
		// No byte range is empty in HTTP; check existence, read nothing.
		if _, err := s.Attributes(ctx, key); err != nil {
			return nil, err
		}
		return io.NopCloser(eofReader{}), nil
	case length > 0:
		in.Range = aws.String("bytes=" + strconv.FormatInt(offset, 10) + "-" + strconv.FormatInt(offset+length-1, 10))
	case offset > 0:
		in.Range = aws.String("bytes=" + strconv.FormatInt(offset, 10) + "-")
	}
	out, err := s.client.GetObject(ctx, in, func(o *s3.Options) {
		// Objects uploaded through presigned URLs carry no checksum and
		// ranges never do; the SDK would log that on every read.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, notFound(err))
	}
	return out.Body, nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// Put implements blob.Store with one PutObject: S3 stores an object only
// when the whole body arrived, so readers never see a partial one.
func (s *BlobStore) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	body, err := s.body(r, size)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	var opts []func(*s3.Options)
	if _, seekable := body.(io.Seeker); !seekable && strings.HasPrefix(aws.ToString(s.client.Options().BaseEndpoint), "http://") {
		// The SDK checksums an unseekable body only as an aws-chunked
		// trailer, which it sends over TLS only; a plain-HTTP endpoint is
		// an emulator on loopback, where an unsigned payload is enough.
		opts = append(opts, func(o *s3.Options) {
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
		})
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.bucket), Key: aws.String(key),
		Body: body, ContentLength: aws.Int64(size), ContentType: aws.String(contentType),
	}, opts...)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// body limits r to size bytes. A seekable source (a file, a byte slice)
// stays seekable, so the SDK can checksum it and retry; its length is
// checked before anything is sent.
func (s *BlobStore) body(r io.Reader, size int64) (io.Reader, error) {
	if size < 0 {
		return nil, fmt.Errorf("negative size %d", size)
	}
	type readSeekerAt interface {
		io.ReadSeeker
		io.ReaderAt
	}
	if rs, ok := r.(readSeekerAt); ok {
		cur, err := rs.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		end, err := rs.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, err
		}
		if _, err := rs.Seek(cur, io.SeekStart); err != nil {
			return nil, err
		}
		if end-cur < size {
			return nil, fmt.Errorf("body has %d bytes, want %d: %w", end-cur, size, io.ErrUnexpectedEOF)
		}
		return io.NewSectionReader(rs, cur, size), nil
	}
	return &exactReader{r: r, left: size}, nil
}

// exactReader fails the upload when r ends before size bytes, instead of
// letting a short body through as a smaller object.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		return n, fmt.Errorf("body ended %d bytes short: %w", e.left, io.ErrUnexpectedEOF)
	}
	if err == io.EOF {
		err = nil // the next call reports EOF once size bytes are read
	}
	return n, err
}

// Delete implements blob.Store; S3 deletes missing keys without error.
func (s *BlobStore) Delete(ctx context.Context, key string) error {
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)}); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// notFound maps S3's missing-object answers (NoSuchKey from GET, a bare
// 404 from HEAD) to blob.ErrNotFound.
func notFound(err error) error {
	var api smithy.APIError
	if errors.As(err, &api) && (api.ErrorCode() == "NoSuchKey" || api.ErrorCode() == "NotFound") {
		return fmt.Errorf("%w (%s)", blob.ErrNotFound, api.ErrorCode())
	}
	var resp *awshttp.ResponseError
	if errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusNotFound {
		return fmt.Errorf("%w (%v)", blob.ErrNotFound, err)
	}
	return err
}
