package local

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/latentsync/latentsync-service/internal/blob"
)

// BlobConfig configures a BlobStore.
type BlobConfig struct {
	// BaseURL is the absolute URL the Handler is mounted at, e.g.
	// http://127.0.0.1:8080/blobs/; presigned URLs are BaseURL + key.
	BaseURL string
	// Secret signs URLs. Empty: a random secret is created once under
	// dir/blobs/secret, so URLs handed out before a restart still work.
	Secret []byte
	// Now is the clock for URL expiry (time.Now when nil).
	Now func() time.Time
}

// BlobStore is a blob.Store of files under dir/blobs/objects. Each file
// starts with a small header holding the content type, so data and type
// are replaced together by one rename.
type BlobStore struct {
	objects, tmp string
	base         *url.URL
	secret       []byte
	now          func() time.Time
}

// Header of a stored file: magic, content type length (uint16), content type.
var blobMagic = []byte("LSBLOB1\n")

// Query parameters of presigned URLs.
const (
	paramExpires   = "expires" // unix milliseconds
	paramType      = "type"
	paramSize      = "size"
	paramSignature = "signature"
)

// OpenBlobStore opens (creating) the object store under dir/blobs.
func OpenBlobStore(dir string, cfg BlobConfig) (*BlobStore, error) {
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || base.Scheme == "" || base.Host == "" {
		return nil, fmt.Errorf("blob store: base URL %q must be absolute", cfg.BaseURL)
	}
	if !strings.HasSuffix(base.Path, "/") {
		base.Path += "/"
	}
	root := filepath.Join(dir, "blobs")
	s := &BlobStore{
		objects: filepath.Join(root, "objects"), tmp: filepath.Join(root, "tmp"),
		base: base, secret: cfg.Secret, now: cfg.Now,
	}
	if s.now == nil {
		s.now = time.Now
	}
	for _, d := range []string{s.objects, s.tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("blob store: %w", err)
		}
	}
	if len(s.secret) == 0 {
		if s.secret, err = loadSecret(filepath.Join(root, "secret")); err != nil {
			return nil, fmt.Errorf("blob store: %w", err)
		}
	}
	return s, nil
}

// loadSecret reads the signing secret, creating it on first use.
func loadSecret(file string) ([]byte, error) {
	secret, err := os.ReadFile(file)
	if err == nil && len(secret) >= 32 {
		return secret, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read signing secret: %w", err)
	}
	secret = make([]byte, 32)
	rand.Read(secret)
	if err := writeAtomic(filepath.Dir(file), file, secret); err != nil {
		return nil, fmt.Errorf("write signing secret: %w", err)
	}
	return secret, nil
}

func writeAtomic(tmpDir, file string, data []byte) error {
	f, err := os.CreateTemp(tmpDir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename this finds nothing
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), file)
}

// Close releases nothing (files are opened per call); it completes the
// adapter set's lifecycle.
func (s *BlobStore) Close() error { return nil }

// validKey accepts relative slash-separated keys without empty, dot or
// dot-dot elements, so a key never escapes the objects directory.
func validKey(key string) error {
	if key == "" || len(key) > 1024 || strings.HasPrefix(key, "/") || path.Clean(key) != key {
		return fmt.Errorf("invalid object key %q", key)
	}
	for _, el := range strings.Split(key, "/") {
		if el == "." || el == ".." {
			return fmt.Errorf("invalid object key %q", key)
		}
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return fmt.Errorf("invalid object key %q", key)
		}
	}
	return nil
}

func validContentType(ct string) error {
	if ct == "" || len(ct) > 256 || strings.ContainsFunc(ct, func(r rune) bool { return r < 0x20 || r >= 0x7f }) {
		return fmt.Errorf("invalid content type %q", ct)
	}
	return nil
}

func (s *BlobStore) file(key string) string { return filepath.Join(s.objects, filepath.FromSlash(key)) }

// PresignPut returns a URL accepting one PUT of exactly size bytes of contentType.
func (s *BlobStore) PresignPut(ctx context.Context, key, contentType string, size int64, ttl time.Duration) (blob.Presigned, error) {
	if err := validKey(key); err != nil {
		return blob.Presigned{}, fmt.Errorf("presign put: %w", err)
	}
	if err := validContentType(contentType); err != nil {
		return blob.Presigned{}, fmt.Errorf("presign put %s: %w", key, err)
	}
	if size < 0 {
		return blob.Presigned{}, fmt.Errorf("presign put %s: negative size %d", key, size)
	}
	return s.presign(http.MethodPut, key, contentType, size, ttl), nil
}

// PresignGet returns a URL to download the object until ttl passes.
func (s *BlobStore) PresignGet(ctx context.Context, key string, ttl time.Duration) (blob.Presigned, error) {
	if err := validKey(key); err != nil {
		return blob.Presigned{}, fmt.Errorf("presign get: %w", err)
	}
	return s.presign(http.MethodGet, key, "", -1, ttl), nil
}

func (s *BlobStore) presign(method, key, contentType string, size int64, ttl time.Duration) blob.Presigned {
	expires := s.now().Add(ttl).Truncate(time.Millisecond)
	q := url.Values{}
	q.Set(paramExpires, strconv.FormatInt(expires.UnixMilli(), 10))
	headers := map[string]string{}
	if method == http.MethodPut {
		q.Set(paramType, contentType)
		q.Set(paramSize, strconv.FormatInt(size, 10))
		headers["Content-Type"] = contentType
	}
	q.Set(paramSignature, s.sign(method, key, q.Get(paramExpires), contentType, q.Get(paramSize)))
	u := *s.base
	u.Path += key
	u.RawPath = ""
	u.RawQuery = q.Encode()
	return blob.Presigned{URL: u.String(), Method: method, Headers: headers, ExpiresAt: expires}
}

// sign covers everything a URL grants: method, key, expiry and, for a PUT,
// the content type and exact length.
func (s *BlobStore) sign(method, key, expires, contentType, size string) string {
	m := hmac.New(sha256.New, s.secret)
	io.WriteString(m, strings.Join([]string{method, key, expires, contentType, size}, "\n"))
	return hex.EncodeToString(m.Sum(nil))
}

// Handler serves presigned URLs. Mount it at BaseURL's path as is (no
// http.StripPrefix): it reads the key from the full request path.
func (s *BlobStore) Handler() http.Handler { return http.HandlerFunc(s.serve) }

func (s *BlobStore) serve(w http.ResponseWriter, r *http.Request) {
	key, ok := strings.CutPrefix(r.URL.Path, s.base.Path)
	if !ok || validKey(key) != nil {
		http.Error(w, "no such object", http.StatusNotFound)
		return
	}
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet // a download URL may be probed
	}
	if method != http.MethodGet && method != http.MethodPut {
		w.Header().Set("Allow", "GET, HEAD, PUT")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	size := q.Get(paramSize)
	if method == http.MethodGet {
		size = ""
	}
	want := s.sign(method, key, q.Get(paramExpires), q.Get(paramType), size)
	if !hmac.Equal([]byte(want), []byte(q.Get(paramSignature))) {
		http.Error(w, "signature does not match", http.StatusForbidden)
		return
	}
	expires, err := strconv.ParseInt(q.Get(paramExpires), 10, 64)
	if err != nil || !s.now().Before(time.UnixMilli(expires)) {
		http.Error(w, "URL expired", http.StatusForbidden)
		return
	}
	if method == http.MethodGet {
		s.serveGet(w, r, key)
		return
	}
	s.servePut(w, r, key, q.Get(paramType), size)
}

func (s *BlobStore) servePut(w http.ResponseWriter, r *http.Request, key, contentType, sizeParam string) {
	size, err := strconv.ParseInt(sizeParam, 10, 64)
	if err != nil {
		http.Error(w, "bad size", http.StatusForbidden)
		return
	}
	if got := r.Header.Get("Content-Type"); got != contentType {
		http.Error(w, fmt.Sprintf("Content-Type must be %q, got %q", contentType, got), http.StatusBadRequest)
		return
	}
	switch {
	case r.ContentLength < 0:
		http.Error(w, "Content-Length required", http.StatusLengthRequired)
		return
	case r.ContentLength != size:
		http.Error(w, fmt.Sprintf("Content-Length must be %d, got %d", size, r.ContentLength), http.StatusBadRequest)
		return
	}
	// The body streams to a temp file; never more than the signed length.
	body := http.MaxBytesReader(w, r.Body, size)
	if err := s.Put(r.Context(), key, body, size, contentType); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			http.Error(w, "body shorter than Content-Length", http.StatusBadRequest)
			return
		}
		http.Error(w, "storing upload failed", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *BlobStore) serveGet(w http.ResponseWriter, r *http.Request, key string) {
	f, a, hdr, err := s.open(key)
	if errors.Is(err, blob.ErrNotFound) {
		http.Error(w, "no such object", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, "reading object failed", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", a.ContentType)
	// ServeContent answers Range and conditional requests too.
	http.ServeContent(w, r, "", a.ModTime, io.NewSectionReader(f, hdr, a.Size))
}

// open opens the object's file and reads its header; hdr is the data offset.
func (s *BlobStore) open(key string) (f *os.File, a blob.Attributes, hdr int64, err error) {
	if err := validKey(key); err != nil {
		return nil, a, 0, err
	}
	f, err = os.Open(s.file(key))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) || isDirErr(err) {
		return nil, a, 0, fmt.Errorf("object %s: %w", key, blob.ErrNotFound)
	}
	if err != nil {
		return nil, a, 0, fmt.Errorf("object %s: %w", key, err)
	}
	st, err := f.Stat()
	if err == nil && st.IsDir() {
		err = fmt.Errorf("object %s: %w", key, blob.ErrNotFound) // a key prefix, not an object
	}
	var fixed [10]byte
	if err == nil {
		_, err = io.ReadFull(f, fixed[:])
	}
	if err == nil && string(fixed[:8]) != string(blobMagic) {
		err = fmt.Errorf("object %s: not a blob file", key)
	}
	var ct []byte
	if err == nil {
		ct = make([]byte, binary.BigEndian.Uint16(fixed[8:]))
		_, err = io.ReadFull(f, ct)
	}
	if err != nil {
		f.Close()
		return nil, a, 0, fmt.Errorf("object %s: %w", key, err)
	}
	hdr = int64(len(fixed) + len(ct))
	return f, blob.Attributes{Size: st.Size() - hdr, ContentType: string(ct), ModTime: st.ModTime()}, hdr, nil
}

// isDirErr: opening a/b when a is a file fails with ENOTDIR; no object there.
func isDirErr(err error) bool { return errors.Is(err, syscall.ENOTDIR) }

// Attributes returns the object's size, type and modification time.
func (s *BlobStore) Attributes(ctx context.Context, key string) (blob.Attributes, error) {
	f, a, _, err := s.open(key)
	if err != nil {
		return blob.Attributes{}, err
	}
	f.Close()
	return a, nil
}

// NewRangeReader reads length bytes from offset (length < 0: to the end),
// fewer when the object ends first.
func (s *BlobStore) NewRangeReader(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, fmt.Errorf("object %s: negative offset %d", key, offset)
	}
	f, a, hdr, err := s.open(key)
	if err != nil {
		return nil, err
	}
	offset = min(offset, a.Size)
	if length < 0 || offset+length > a.Size {
		length = a.Size - offset
	}
	return readCloser{io.NewSectionReader(f, hdr+offset, length), f}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// Put writes size bytes from r to a temp file, syncs it and renames it over
// the key: readers see the old object or the new one, never a mix.
func (s *BlobStore) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	if err := validKey(key); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	if err := validContentType(contentType); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	f, err := os.CreateTemp(s.tmp, "put-*")
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	defer os.Remove(f.Name()) // after a successful rename this finds nothing
	err = writeBlob(ctx, f, r, size, contentType)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.MkdirAll(filepath.Dir(s.file(key)), 0o700)
	}
	if err == nil {
		err = os.Rename(f.Name(), s.file(key))
	}
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

func writeBlob(ctx context.Context, f *os.File, r io.Reader, size int64, contentType string) error {
	hdr := binary.BigEndian.AppendUint16(append([]byte(nil), blobMagic...), uint16(len(contentType)))
	if _, err := f.Write(append(hdr, contentType...)); err != nil {
		return err
	}
	n, err := io.CopyN(f, ctxReader{ctx, r}, size)
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("got %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
	}
	if err != nil {
		return err
	}
	return f.Sync()
}

// ctxReader stops a long copy once the caller gave up.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Delete removes the object; a missing object is not an error.
func (s *BlobStore) Delete(ctx context.Context, key string) error {
	if err := validKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if st, err := os.Lstat(s.file(key)); err == nil && st.IsDir() {
		return nil // a prefix of other keys, not an object
	}
	if err := os.Remove(s.file(key)); err != nil && !errors.Is(err, fs.ErrNotExist) && !isDirErr(err) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}
