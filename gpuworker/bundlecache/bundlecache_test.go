package bundlecache_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/gpuworker/bundle"
	"github.com/latentsync/latentsync-service/gpuworker/bundlecache"
	awsadapter "github.com/latentsync/latentsync-service/internal/adapters/aws"
	"github.com/latentsync/latentsync-service/internal/adapters/aws/awstest"
	"github.com/latentsync/latentsync-service/internal/adapters/local"
	"github.com/latentsync/latentsync-service/internal/blob"
	"github.com/latentsync/latentsync-service/internal/joberr"
)

const attempts = 3

// published is a bundle version in the store: the manifest and every file's bytes.
type published struct {
	version  string
	manifest []byte
	files    map[string][]byte // by file name
}

// publish writes a bundle with the stand-in manifest's parameters and
// random model files to st; the unet file is the largest, so interrupting
// it halfway leaves a real partial file.
func publish(t *testing.T, st blob.Store, version string) published {
	t.Helper()
	raw, err := os.ReadFile("../../testdata/bundle/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var m bundle.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m.Version = version
	p := published{version: version, files: map[string][]byte{}}
	for name, spec := range m.Models {
		size := 4 << 10
		if name == bundle.UNetModel {
			size = 300 << 10
		}
		data := make([]byte, size)
		rand.Read(data)
		sum := sha256.Sum256(data)
		spec.SHA256 = hex.EncodeToString(sum[:])
		m.Models[name] = spec
		p.files[spec.File] = data
	}
	if p.manifest, err = json.Marshal(&m); err != nil {
		t.Fatal(err)
	}
	put(t, st, bundlecache.Prefix+"/"+version+"/"+bundlecache.ManifestFile, p.manifest)
	for name, data := range p.files {
		put(t, st, bundlecache.Prefix+"/"+version+"/"+name, data)
	}
	return p
}

func put(t *testing.T, st blob.Store, key string, data []byte) {
	t.Helper()
	if err := st.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), "application/octet-stream"); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func unetFile(p published) string {
	for name, data := range p.files {
		if len(data) > 100<<10 {
			return name
		}
	}
	panic("no unet")
}

// read is one NewRangeReader call.
type read struct {
	key    string
	offset int64
}

// recorder wraps a store: it records reads and can cut the first read of
// one key short after some bytes, as a dropped connection would.
type recorder struct {
	blob.Store
	mu        sync.Mutex
	reads     []read
	heads     []string
	cutKey    string
	cutAfter  int64
	cutFired  bool
	readDelay time.Duration
}

func (r *recorder) Attributes(ctx context.Context, key string) (blob.Attributes, error) {
	r.mu.Lock()
	r.heads = append(r.heads, key)
	r.mu.Unlock()
	return r.Store.Attributes(ctx, key)
}

func (r *recorder) NewRangeReader(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	r.mu.Lock()
	r.reads = append(r.reads, read{key, offset})
	cut := key == r.cutKey && !r.cutFired
	if cut {
		r.cutFired = true
	}
	r.mu.Unlock()
	if r.readDelay > 0 {
		time.Sleep(r.readDelay)
	}
	rc, err := r.Store.NewRangeReader(ctx, key, offset, length)
	if err != nil || !cut {
		return rc, err
	}
	return &cutReader{rc: rc, left: r.cutAfter}, nil
}

func (r *recorder) readsOf(key string) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var offs []int64
	for _, rd := range r.reads {
		if rd.key == key {
			offs = append(offs, rd.offset)
		}
	}
	return offs
}

func (r *recorder) count() (reads, heads int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reads), len(r.heads)
}

var errCut = errors.New("connection reset by test")

type cutReader struct {
	rc   io.ReadCloser
	left int64
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errCut
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.rc.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *cutReader) Close() error { return c.rc.Close() }

func newCache(t *testing.T, st bundlecache.Store, dir string) *bundlecache.Cache {
	t.Helper()
	c, err := bundlecache.New(bundlecache.Config{Store: st, Dir: dir, Attempts: attempts, Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkCopy asserts dir holds exactly the published bundle and no partial files.
func checkCopy(t *testing.T, dir string, p published) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(dir, bundlecache.ManifestFile))
	if err != nil || !bytes.Equal(got, p.manifest) {
		t.Errorf("manifest: %v, equal %v", err, bytes.Equal(got, p.manifest))
	}
	for name, data := range p.files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: %v, %d bytes, equal %v", name, err, len(got), bytes.Equal(got, data))
		}
	}
	parts, _ := filepath.Glob(filepath.Join(dir, "*.part"))
	if len(parts) > 0 {
		t.Errorf("partial files left: %v", parts)
	}
	if _, err := bundle.ReadManifest(dir); err != nil {
		t.Errorf("bundle.ReadManifest of the cached copy: %v", err)
	}
}

func TestFetch(t *testing.T) {
	stores := []struct {
		name string
		open func(t *testing.T) blob.Store
	}{
		{"local", func(t *testing.T) blob.Store {
			st, err := local.OpenBlobStore(t.TempDir(), local.BlobConfig{BaseURL: "http://127.0.0.1/blobs/"})
			if err != nil {
				t.Fatal(err)
			}
			return st
		}},
		{"s3", func(t *testing.T) blob.Store {
			f := awstest.StartFauxqs(t)
			return awsadapter.NewBlobStore(f.S3, f.CreateBucket(t, awstest.Name(t, "models")))
		}},
	}
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			st := s.open(t)
			for _, tc := range scenarios {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, st) })
			}
		})
	}
}

var scenarios = []struct {
	name string
	run  func(t *testing.T, st blob.Store)
}{
	{"fresh download then cache reuse", func(t *testing.T, st blob.Store) {
		p := publish(t, st, "v-fresh")
		root := t.TempDir()
		rec := &recorder{Store: st}
		dir, err := newCache(t, rec, root).Fetch(t.Context(), p.version)
		if err != nil {
			t.Fatal(err)
		}
		if dir != filepath.Join(root, p.version) {
			t.Errorf("dir = %s", dir)
		}
		checkCopy(t, dir, p)
		if reads, _ := rec.count(); reads != len(p.files)+1 {
			t.Errorf("first fetch made %d reads, want %d (manifest + every file once)", reads, len(p.files)+1)
		}

		// A restart: same cache directory, a fresh Cache.
		again := &recorder{Store: st}
		dir2, err := newCache(t, again, root).Fetch(t.Context(), p.version)
		if err != nil || dir2 != dir {
			t.Fatalf("second fetch: %s, %v", dir2, err)
		}
		if reads, heads := again.count(); reads != 0 || heads != 0 {
			t.Errorf("second fetch made %d reads and %d attribute requests, want none", reads, heads)
		}
		checkCopy(t, dir, p)
	}},
	{"corrupt cached file is downloaded again", func(t *testing.T, st blob.Store) {
		p := publish(t, st, "v-corrupt-cache")
		root := t.TempDir()
		dir, err := newCache(t, st, root).Fetch(t.Context(), p.version)
		if err != nil {
			t.Fatal(err)
		}
		victim := unetFile(p)
		damaged := bytes.Clone(p.files[victim])
		damaged[len(damaged)/2] ^= 0xff // one flipped byte, same size
		if err := os.WriteFile(filepath.Join(dir, victim), damaged, 0o644); err != nil {
			t.Fatal(err)
		}
		rec := &recorder{Store: st}
		if _, err := newCache(t, rec, root).Fetch(t.Context(), p.version); err != nil {
			t.Fatal(err)
		}
		key := bundlecache.Prefix + "/" + p.version + "/" + victim
		if got := rec.readsOf(key); !slices.Equal(got, []int64{0}) {
			t.Errorf("reads of %s at offsets %v, want one from 0", victim, got)
		}
		if reads, _ := rec.count(); reads != 1 {
			t.Errorf("%d reads, want only the damaged file's", reads)
		}
		checkCopy(t, dir, p)
	}},
	{"corrupt stored object fails after retries", func(t *testing.T, st blob.Store) {
		p := publish(t, st, "v-corrupt-store")
		victim := unetFile(p)
		key := bundlecache.Prefix + "/" + p.version + "/" + victim
		bad := bytes.Clone(p.files[victim])
		bad[0] ^= 0xff
		put(t, st, key, bad)
		rec := &recorder{Store: st}
		root := t.TempDir()
		_, err := newCache(t, rec, root).Fetch(t.Context(), p.version)
		if joberr.CodeOf(err) != joberr.ModelUnavailable {
			t.Fatalf("err = %v, want MODEL_UNAVAILABLE", err)
		}
		if msg := joberr.MessageOf(err); !strings.Contains(msg, victim) || !strings.Contains(msg, "sha256") {
			t.Errorf("message %q should name %s and its checksum", msg, victim)
		}
		if got := rec.readsOf(key); !slices.Equal(got, []int64{0, 0, 0}) {
			t.Errorf("reads of %s at offsets %v, want %d from 0", victim, got, attempts)
		}
		left, _ := filepath.Glob(filepath.Join(root, p.version, victim+"*"))
		if len(left) > 0 {
			t.Errorf("files left for the corrupt object: %v", left)
		}
	}},
	{"interrupted download resumes", func(t *testing.T, st blob.Store) {
		p := publish(t, st, "v-resume")
		victim := unetFile(p)
		key := bundlecache.Prefix + "/" + p.version + "/" + victim
		half := int64(len(p.files[victim]) / 2)
		rec := &recorder{Store: st, cutKey: key, cutAfter: half}
		dir, err := newCache(t, rec, t.TempDir()).Fetch(t.Context(), p.version)
		if err != nil {
			t.Fatal(err)
		}
		if got := rec.readsOf(key); !slices.Equal(got, []int64{0, half}) {
			t.Errorf("reads of %s at offsets %v, want [0 %d]: the retry must resume", victim, got, half)
		}
		checkCopy(t, dir, p)
	}},
	{"partial file left by a crash", func(t *testing.T, st blob.Store) {
		p := publish(t, st, "v-crash")
		victim := unetFile(p)
		key := bundlecache.Prefix + "/" + p.version + "/" + victim
		data := p.files[victim]
		third := int64(len(data) / 3)
		for _, tc := range []struct {
			name    string
			partial []byte
			offsets []int64
		}{
			{"good prefix is resumed", data[:third], []int64{third}},
			// The bytes kept do not hash right: the next try starts over.
			{"damaged prefix is replaced", bytes.Repeat([]byte{7}, int(third)), []int64{third, 0}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				root := t.TempDir()
				if err := os.MkdirAll(filepath.Join(root, p.version), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, p.version, victim+".part"), tc.partial, 0o644); err != nil {
					t.Fatal(err)
				}
				rec := &recorder{Store: st}
				dir, err := newCache(t, rec, root).Fetch(t.Context(), p.version)
				if err != nil {
					t.Fatal(err)
				}
				if got := rec.readsOf(key); !slices.Equal(got, tc.offsets) {
					t.Errorf("reads at offsets %v, want %v", got, tc.offsets)
				}
				checkCopy(t, dir, p)
			})
		}
	}},
	{"missing bundle", func(t *testing.T, st blob.Store) {
		rec := &recorder{Store: st}
		_, err := newCache(t, rec, t.TempDir()).Fetch(t.Context(), "v-never-published")
		if joberr.CodeOf(err) != joberr.ModelUnavailable || !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("err = %v, want MODEL_UNAVAILABLE wrapping blob.ErrNotFound", err)
		}
		if msg := joberr.MessageOf(err); !strings.Contains(msg, "v-never-published") || !strings.Contains(msg, "manifest.json is missing") {
			t.Errorf("message %q should name the version and the missing manifest", msg)
		}
		if reads, _ := rec.count(); reads != 1 {
			t.Errorf("%d reads: a missing object is not retried", reads)
		}
	}},
	{"missing model file", func(t *testing.T, st blob.Store) {
		p := publish(t, st, "v-missing-file")
		victim := unetFile(p)
		if err := st.Delete(t.Context(), bundlecache.Prefix+"/"+p.version+"/"+victim); err != nil {
			t.Fatal(err)
		}
		_, err := newCache(t, st, t.TempDir()).Fetch(t.Context(), p.version)
		if joberr.CodeOf(err) != joberr.ModelUnavailable {
			t.Fatalf("err = %v, want MODEL_UNAVAILABLE", err)
		}
		if msg := joberr.MessageOf(err); !strings.Contains(msg, victim) || !strings.Contains(msg, "missing") {
			t.Errorf("message %q should name the missing %s", msg, victim)
		}
	}},
	{"invalid manifest", func(t *testing.T, st blob.Store) {
		put(t, st, bundlecache.Prefix+"/v-bad-manifest/"+bundlecache.ManifestFile, []byte(`{"format_version":1,"name":"x","version":"v-bad-manifest","models":{"unet":{"file":"../escape"}}}`))
		_, err := newCache(t, st, t.TempDir()).Fetch(t.Context(), "v-bad-manifest")
		if joberr.CodeOf(err) != joberr.ModelUnavailable || !strings.Contains(joberr.MessageOf(err), "not a valid manifest") {
			t.Fatalf("err = %v, want MODEL_UNAVAILABLE for an invalid manifest", err)
		}
	}},
}

// Two tasks sharing a cache volume: one downloads, the other waits for the
// lock and then finds everything in place.
func TestConcurrentFetchDownloadsOnce(t *testing.T) {
	st, err := local.OpenBlobStore(t.TempDir(), local.BlobConfig{BaseURL: "http://127.0.0.1/blobs/"})
	if err != nil {
		t.Fatal(err)
	}
	p := publish(t, st, "v-shared")
	root := t.TempDir()
	rec := &recorder{Store: st, readDelay: 20 * time.Millisecond}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() { _, errs[i] = newCache(t, rec, root).Fetch(t.Context(), p.version) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if reads, _ := rec.count(); reads != len(p.files)+1 {
		t.Errorf("%d reads, want %d: each object once", reads, len(p.files)+1)
	}
	checkCopy(t, filepath.Join(root, p.version), p)
}

func TestFetchRejectsVersionOutsideCache(t *testing.T) {
	st, err := local.OpenBlobStore(t.TempDir(), local.BlobConfig{BaseURL: "http://127.0.0.1/blobs/"})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for _, v := range []string{"", ".", "..", "../x", "a/b"} {
		_, err := newCache(t, st, filepath.Join(root, "cache")).Fetch(t.Context(), v)
		if joberr.CodeOf(err) != joberr.ModelUnavailable {
			t.Errorf("version %q: err = %v, want MODEL_UNAVAILABLE", v, err)
		}
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("a rejected version created %v", entries)
	}
}

func TestFetchStopsWithContext(t *testing.T) {
	st, err := local.OpenBlobStore(t.TempDir(), local.BlobConfig{BaseURL: "http://127.0.0.1/blobs/"})
	if err != nil {
		t.Fatal(err)
	}
	p := publish(t, st, "v-ctx")
	victim := unetFile(p)
	// Every read of the unet fails at once: only the backoff is left to wait in.
	rec := &recorder{Store: st, cutKey: bundlecache.Prefix + "/" + p.version + "/" + victim}
	c, err := bundlecache.New(bundlecache.Config{Store: alwaysCut{rec}, Dir: t.TempDir(), Attempts: 100, Backoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.Fetch(ctx, p.version)
	if !errors.Is(err, context.DeadlineExceeded) || joberr.CodeOf(err) == joberr.ModelUnavailable {
		t.Errorf("err = %v, want the context's deadline (not a bad bundle)", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Fetch took %v after its context ended", d)
	}
}

// alwaysCut fails every read of the recorder's cut key before any byte.
type alwaysCut struct{ *recorder }

func (a alwaysCut) NewRangeReader(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	rc, err := a.recorder.Store.NewRangeReader(ctx, key, offset, length)
	if err != nil || key != a.cutKey {
		return rc, err
	}
	return &cutReader{rc: rc}, nil
}
