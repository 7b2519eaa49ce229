// Package bundlecache brings a model bundle version from the models bucket
// to a local directory that bundle.Load opens. A version is immutable once
// published, so a cached copy whose every checksum still matches is used as
// is, without asking the bucket (a restarted task is ready at once, even
// while S3 is unreachable). Downloads resume from the bytes already on disk,
// retry with exponential backoff, and reach their final name only once
// their sha256 matches the manifest, so a crash never leaves a file that
// looks complete.
package bundlecache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/latentsync/latentsync-service/gpuworker/bundle"
	"github.com/latentsync/latentsync-service/internal/blob"
	"github.com/latentsync/latentsync-service/internal/joberr"
)

// Prefix is where bundles live in the models bucket:
// Prefix/{version}/manifest.json and the files it lists.
const Prefix = "models/latentsync"

// ManifestFile is the manifest's name inside a bundle.
const ManifestFile = "manifest.json"

// maxManifestBytes bounds the manifest read into memory; real ones are a few KB.
const maxManifestBytes = 1 << 20

// partSuffix marks a download in progress; its bytes are kept across
// attempts and restarts so the next one resumes where this one stopped.
const partSuffix = ".part"

// Store is the part of blob.Store the cache reads the models bucket through.
type Store interface {
	Attributes(ctx context.Context, key string) (blob.Attributes, error)
	NewRangeReader(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
}

// Config wires a Cache. Zero values take the defaults in brackets.
type Config struct {
	Store Store  // the models bucket
	Dir   string // cache root; version V lives in Dir/V
	// Prefix is the key prefix of the bundle versions [Prefix].
	Prefix string
	// Attempts bounds the tries of one file, the first included [5].
	Attempts int
	// Backoff is the wait after the first failed try; it doubles with each
	// further one, up to MaxBackoff [1 s, 30 s].
	Backoff, MaxBackoff time.Duration
	Logger              *slog.Logger
}

// Cache downloads bundle versions into a local directory.
type Cache struct{ cfg Config }

// New checks cfg and fills its defaults.
func New(cfg Config) (*Cache, error) {
	if cfg.Store == nil || cfg.Dir == "" {
		return nil, errors.New("bundlecache: Store and Dir are required")
	}
	if cfg.Attempts < 0 || cfg.Backoff < 0 || cfg.MaxBackoff < 0 {
		return nil, errors.New("bundlecache: negative attempts or backoff")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = Prefix
	}
	cfg.Prefix = strings.TrimSuffix(cfg.Prefix, "/")
	if cfg.Attempts == 0 {
		cfg.Attempts = 5
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = time.Second
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Cache{cfg: cfg}, nil
}

// Key is the object key of file name in bundle version.
func (c *Cache) Key(version, name string) string {
	return c.cfg.Prefix + "/" + version + "/" + name
}

// Fetch makes Dir/version a complete copy of the bundle and returns its
// path: the manifest first, then every file it lists, each verified against
// its sha256. A bundle or file that is not in the bucket, a manifest that
// does not validate and a file whose checksum still differs after every
// attempt are MODEL_UNAVAILABLE errors naming what is wrong.
func (c *Cache) Fetch(ctx context.Context, version string) (string, error) {
	if version == "" || version != filepath.Base(version) || version == "." || version == ".." || strings.ContainsAny(version, `/\`) {
		return "", joberr.New(joberr.ModelUnavailable, "bundle version %q: must be a plain name", version)
	}
	dir := filepath.Join(c.cfg.Dir, version)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("bundle cache %s: %w", dir, err)
	}
	// Tasks on one instance may share the cache volume: one downloads, the
	// others wait and then find every file in place.
	unlock, err := lockDir(ctx, dir)
	if err != nil {
		return "", err
	}
	defer unlock()

	log := c.cfg.Logger.With("bundle_version", version)
	start := time.Now()
	m, err := c.manifest(ctx, log, version, dir)
	if err != nil {
		return "", err
	}
	names := make([]string, 0, len(m.Models))
	for name := range m.Models {
		names = append(names, name)
	}
	slices.Sort(names)
	var fetched int
	var bytesIn int64
	for _, name := range names {
		spec := m.Models[name]
		n, got, err := c.file(ctx, log, version, dir, spec)
		if err != nil {
			return "", err
		}
		if got {
			fetched++
			bytesIn += n
		}
	}
	log.Info("model bundle cached", "dir", dir, "files", len(names), "downloaded_files", fetched,
		"downloaded_bytes", bytesIn, "seconds", time.Since(start).Seconds())
	return dir, nil
}

// manifest returns the bundle's manifest: the cached one when it is intact
// (versions are immutable), else a fresh copy from the bucket.
func (c *Cache) manifest(ctx context.Context, log *slog.Logger, version, dir string) (*bundle.Manifest, error) {
	path := filepath.Join(dir, ManifestFile)
	if raw, err := os.ReadFile(path); err == nil {
		m, err := parseManifest(raw)
		if err == nil && m.Version != version {
			err = fmt.Errorf("it says version %q", m.Version)
		}
		if err == nil {
			return m, nil
		}
		log.Warn("cached manifest is damaged; downloading it again", "error", err.Error())
	}
	key := c.Key(version, ManifestFile)
	var raw []byte
	err := c.retry(ctx, log.With("file", ManifestFile), func() error {
		r, err := c.cfg.Store.NewRangeReader(ctx, key, 0, -1)
		if err != nil {
			return err
		}
		defer r.Close()
		raw, err = io.ReadAll(io.LimitReader(r, maxManifestBytes+1))
		if err == nil && len(raw) > maxManifestBytes {
			return permanent(joberr.New(joberr.ModelUnavailable, "bundle %s: %s is larger than %d bytes", version, key, maxManifestBytes))
		}
		return err
	})
	if errors.Is(err, blob.ErrNotFound) {
		return nil, joberr.Wrap(joberr.ModelUnavailable, err, "model bundle %s is not in the models bucket: %s is missing", version, key)
	}
	if err != nil {
		return nil, modelErr(err, "bundle %s: download %s", version, key)
	}
	m, err := parseManifest(raw)
	if err != nil {
		return nil, joberr.Wrap(joberr.ModelUnavailable, err, "bundle %s: %s is not a valid manifest: %v", version, key, err)
	}
	if m.Version != version {
		// A manifest copied under the wrong prefix would load another model than the one configured.
		return nil, joberr.New(joberr.ModelUnavailable, "bundle %s: %s says version %q", version, key, m.Version)
	}
	if err := writeAtomic(path, raw); err != nil {
		return nil, fmt.Errorf("bundle %s: store manifest: %w", version, err)
	}
	return m, nil
}

// parseManifest reads a manifest as bundle.ReadManifest does: strictly, and
// validated, which also keeps every file name inside the bundle directory.
func parseManifest(raw []byte) (*bundle.Manifest, error) {
	var m bundle.Manifest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// file makes dir/spec.File a verified copy and reports the bytes it
// downloaded and whether it had to.
func (c *Cache) file(ctx context.Context, log *slog.Logger, version, dir string, spec bundle.Model) (int64, bool, error) {
	log = log.With("file", spec.File)
	path := filepath.Join(dir, spec.File)
	sum, err := fileSHA256(path)
	switch {
	case err == nil && strings.EqualFold(sum, spec.SHA256):
		return 0, false, nil
	case err == nil:
		log.Warn("cached file is corrupt; downloading it again", "sha256", sum, "want_sha256", spec.SHA256)
		if err := os.Remove(path); err != nil {
			return 0, false, fmt.Errorf("bundle %s: remove corrupt %s: %w", version, path, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return 0, false, fmt.Errorf("bundle %s: read cached %s: %w", version, path, err)
	}

	key := c.Key(version, spec.File)
	part := path + partSuffix
	var total int64
	err = c.retry(ctx, log, func() error {
		n, err := c.download(ctx, log, key, part)
		total += n
		if err != nil {
			return err
		}
		sum, err := fileSHA256(part)
		if err != nil {
			return fmt.Errorf("hash %s: %w", part, err)
		}
		if !strings.EqualFold(sum, spec.SHA256) {
			// Start over: the bytes kept may be what is wrong (an object
			// replaced mid-download, a damaged partial file).
			if err := os.Remove(part); err != nil {
				return permanent(fmt.Errorf("remove %s: %w", part, err))
			}
			return &checksumError{file: spec.File, got: sum, want: spec.SHA256}
		}
		return nil
	})
	if errors.Is(err, blob.ErrNotFound) {
		return total, true, joberr.Wrap(joberr.ModelUnavailable, err, "bundle %s: model file %s is missing from the models bucket (%s)", version, spec.File, key)
	}
	if err != nil {
		return total, true, modelErr(err, "bundle %s: download %s", version, key)
	}
	if err := syncAndRename(part, path); err != nil {
		return total, true, fmt.Errorf("bundle %s: %w", version, err)
	}
	log.Info("model file downloaded", "bytes", total)
	return total, true, nil
}

// download appends the rest of the object at key to part, resuming after
// the bytes part already holds, and returns how many bytes it wrote.
func (c *Cache) download(ctx context.Context, log *slog.Logger, key, part string) (int64, error) {
	attrs, err := c.cfg.Store.Attributes(ctx, key)
	if err != nil {
		return 0, err
	}
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return 0, permanent(fmt.Errorf("open %s: %w", part, err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, permanent(fmt.Errorf("stat %s: %w", part, err))
	}
	offset := st.Size()
	if offset > attrs.Size {
		offset = 0 // not a prefix of this object: start over
	}
	if err := f.Truncate(offset); err != nil {
		return 0, permanent(fmt.Errorf("truncate %s: %w", part, err))
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return 0, permanent(fmt.Errorf("seek %s: %w", part, err))
	}
	if offset == attrs.Size {
		return 0, nil // complete already; the checksum decides
	}
	if offset > 0 {
		log.Info("resuming model file download", "offset", offset, "size", attrs.Size)
	}
	r, err := c.cfg.Store.NewRangeReader(ctx, key, offset, attrs.Size-offset)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	n, err := io.Copy(f, r)
	if err != nil {
		return n, fmt.Errorf("read %s after %d bytes: %w", key, offset+n, err)
	}
	if offset+n != attrs.Size {
		return n, fmt.Errorf("read %s: got %d of %d bytes", key, offset+n, attrs.Size)
	}
	return n, nil
}

// retry runs try up to Attempts times with exponential backoff between
// tries. A missing object, a permanent error and the end of ctx stop it
// at once.
func (c *Cache) retry(ctx context.Context, log *slog.Logger, try func() error) error {
	wait := c.cfg.Backoff
	var err error
	for attempt := 1; ; attempt++ {
		err = try()
		var p permanentError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &p):
			return p.err
		case errors.Is(err, blob.ErrNotFound), ctx.Err() != nil:
			return err
		case attempt >= c.cfg.Attempts:
			return fmt.Errorf("%d attempts: %w", attempt, err)
		}
		log.Warn("model download failed; retrying", "attempt", attempt, "retry_in_s", wait.Seconds(), "error", err.Error())
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (after: %w)", ctx.Err(), err)
		}
		wait = min(2*wait, c.cfg.MaxBackoff)
	}
}

// permanentError ends retry at once: retrying cannot help.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

func permanent(err error) error { return permanentError{err} }

// checksumError: the downloaded bytes do not hash to the manifest's sha256.
type checksumError struct{ file, got, want string }

func (e *checksumError) Error() string {
	return fmt.Sprintf("%s has sha256 %s, the manifest says %s", e.file, e.got, e.want)
}

// modelErr makes err MODEL_UNAVAILABLE unless it already has a code or is
// the end of the context (the caller stopping is not a bad bundle).
func modelErr(err error, format string, args ...any) error {
	var je *joberr.Error
	if errors.As(err, &je) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf(format+": %w", append(args, err)...)
	}
	msg := fmt.Sprintf(format, args...)
	var ce *checksumError
	if errors.As(err, &ce) {
		msg += ": " + ce.Error()
	}
	return joberr.Wrap(joberr.ModelUnavailable, err, "%s", msg)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// syncAndRename makes part durable before it takes its final name, so after
// a power loss the name never points at missing bytes.
func syncAndRename(part, path string) error {
	f, err := os.OpenFile(part, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", part, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(part, path); err != nil {
		return fmt.Errorf("rename %s: %w", part, err)
	}
	return syncDir(filepath.Dir(path))
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// lockDir takes an exclusive flock on dir/.lock, polling so that ctx can
// end the wait; the lock dies with the process, so a crash never leaves
// the cache locked.
func lockDir(ctx context.Context, dir string) (func(), error) {
	path := filepath.Join(dir, ".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("bundle cache lock %s: %w", path, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("bundle cache lock %s: %w", path, err)
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, fmt.Errorf("waiting for the bundle cache lock %s: %w", path, ctx.Err())
		}
	}
}
