package validate

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/latentsync/latentsync-service/internal/media"
)

// Probing reads an upload's headers, not the upload. A sparse local copy of
// the object's full size holds only the ranges read: the head, the tail and,
// for ISO-BMFF (MP4/MOV/M4A), every top-level box but the media data, found
// by walking the box headers (a moov box at the end larger than the tail
// window, or in the middle, is still read whole). media.Probe then runs on
// the copy, so validation and the worker classify files with the same code
// and the same error codes; ffprobe reads nothing in the zeroed gaps for the
// whitelisted containers (their indexes and stream headers sit at an end).
// Running ffprobe on a presigned URL would read as little, but media.Probe
// takes a path, and reimplementing its classification here would let the
// two drift apart.

// Box walk bounds: a regular MP4 has 3-5 top-level boxes; a fragmented one
// has two per fragment, and its moov (at the start) is what ffprobe needs.
const (
	maxBoxes    = 64
	maxBoxBytes = 64 << 20 // a moov this large would describe hours of media
)

// firstBox reports the boxes an ISO-BMFF file starts with (as media sniffs them).
func firstBox(typ string) bool {
	switch typ {
	case "ftyp", "moov", "mdat", "free", "skip", "wide", "pnot":
		return true
	}
	return false
}

// probe copies the headers of key (size bytes) to a sparse file called
// name and probes it.
func (v *Validator) probe(ctx context.Context, key string, size int64, name string) (*media.Info, error) {
	dir, err := os.MkdirTemp(v.cfg.TempDir, "validate-")
	if err != nil {
		return nil, fmt.Errorf("probe %s: %w", key, err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, name) // media's messages name the file: "video", "audio"
	if err := v.copyHeaders(ctx, key, size, path); err != nil {
		return nil, fmt.Errorf("probe %s: %w", key, err)
	}
	return media.Probe(ctx, path)
}

// sparse is a local file of an object's size filled at the ranges read.
type sparse struct {
	f       *os.File
	objects Objects
	key     string
	size    int64
	have    [][2]int64 // [start, end) ranges copied
	read    int64      // bytes fetched from the store
}

func (v *Validator) copyHeaders(ctx context.Context, key string, size int64, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil { // a hole: no disk used
		return err
	}
	s := &sparse{f: f, objects: v.objects, key: key, size: size}
	if size <= v.cfg.HeadBytes+v.cfg.TailBytes {
		if err := s.fetch(ctx, 0, size); err != nil {
			return err
		}
		return f.Close()
	}
	if err := s.fetch(ctx, 0, v.cfg.HeadBytes); err != nil {
		return err
	}
	if err := s.fetch(ctx, size-v.cfg.TailBytes, v.cfg.TailBytes); err != nil {
		return err
	}
	if err := s.walkBoxes(ctx); err != nil {
		return err
	}
	return f.Close()
}

// fetch copies [off, off+n) from the store unless it is copied already.
func (s *sparse) fetch(ctx context.Context, off, n int64) error {
	if off < 0 || n <= 0 || off >= s.size {
		return nil
	}
	n = min(n, s.size-off)
	if s.covered(off, n) {
		return nil
	}
	r, err := s.objects.NewRangeReader(ctx, s.key, off, n)
	if err != nil {
		return fmt.Errorf("read %d bytes at %d: %w", n, off, err)
	}
	defer r.Close()
	k, err := io.Copy(io.NewOffsetWriter(s.f, off), io.LimitReader(r, n))
	s.read += k
	if err != nil {
		return fmt.Errorf("read %d bytes at %d: %w", n, off, err)
	}
	if k != n {
		return fmt.Errorf("read %d bytes at %d: got %d (object changed?)", n, off, k)
	}
	s.have = append(s.have, [2]int64{off, off + n})
	return nil
}

func (s *sparse) covered(off, n int64) bool {
	for _, h := range s.have {
		if off >= h[0] && off+n <= h[1] {
			return true
		}
	}
	return false
}

// walkBoxes fetches every top-level ISO-BMFF box except media data. Files
// of other containers (first box type unknown) are left as they are.
func (s *sparse) walkBoxes(ctx context.Context) error {
	var hdr [16]byte
	for off, i := int64(0), 0; off+8 <= s.size && i < maxBoxes; i++ {
		n := min(16, s.size-off)
		if err := s.fetch(ctx, off, n); err != nil {
			return err
		}
		if _, err := s.f.ReadAt(hdr[:n], off); err != nil {
			return err
		}
		typ := string(hdr[4:8])
		if i == 0 && !firstBox(typ) || !isBox(hdr[4:8]) {
			return nil // not ISO-BMFF, or damaged: ffprobe judges
		}
		size := int64(binary.BigEndian.Uint32(hdr[:4]))
		switch {
		case size == 1 && n == 16: // 64-bit size follows the type
			size = int64(binary.BigEndian.Uint64(hdr[8:16]))
		case size == 0: // the box runs to the end of the file
			size = s.size - off
		}
		if size < 8 {
			return nil
		}
		if typ != "mdat" && s.read+size <= maxBoxBytes {
			if err := s.fetch(ctx, off, size); err != nil {
				return err
			}
		}
		off += size
	}
	return nil
}

// isBox reports a box type of four printable characters, as every
// registered ISO-BMFF box type is.
func isBox(t []byte) bool {
	for _, c := range t {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}
