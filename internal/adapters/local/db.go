// Package local holds the embedded, persistent adapters `latentsync serve`
// runs on: everything lives under one data directory and survives a
// restart. JobStore, Queues and EventBus are bbolt databases (one file
// each, so each has its own writer lock); BlobStore keeps objects as files
// and serves HMAC-signed URLs from its own http.Handler. They satisfy the
// same conformance suites as the aws adapters.
package local

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// openDB opens (creating) the bbolt file name under dir and its buckets.
func openDB(dir, name string, buckets ...string) (*bolt.DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	path := filepath.Join(dir, name)
	// The timeout turns a second process on the same directory into an
	// error instead of a silent hang on the file lock.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return fmt.Errorf("bucket %s: %w", b, err)
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	return db, nil
}

// timeKey encodes t so that byte order is time order, for any year
// (seconds with the sign bit flipped, then nanoseconds).
func timeKey(t time.Time) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint64(b, uint64(t.Unix())^(1<<63))
	binary.BigEndian.PutUint32(b[8:], uint32(t.Nanosecond()))
	return b
}

func parseTimeKey(b []byte) time.Time {
	return time.Unix(int64(binary.BigEndian.Uint64(b)^(1<<63)), int64(binary.BigEndian.Uint32(b[8:]))).UTC()
}

// scoped prefixes s with its length, so "ab"+"c" and "a"+"bc" never collide
// and one scope's keys form a contiguous range.
func scoped(s string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(s)))
	return append(b, s...)
}

// prefixEnd is the smallest key greater than every key starting with p
// (nil: no such key, iterate to the end).
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func join(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}
