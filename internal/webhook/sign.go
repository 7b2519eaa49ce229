// Package webhook signs and verifies webhooks the Standard Webhooks way
// (https://www.standardwebhooks.com), decides which URLs may receive them, and
// provides the HTTP client that delivers them without reaching private networks.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// DefaultTolerance is how far a webhook-timestamp may be from the receiver's
// clock, either way, before Verify refuses it (replay protection).
const DefaultTolerance = 5 * time.Minute

// secretPrefix marks a Standard Webhooks secret: the prefix, then the key in base64.
const secretPrefix = "whsec_"

// Verification errors; Verify wraps one of them.
var (
	ErrNoSecret       = errors.New("webhook: empty signing secret")
	ErrMissingHeaders = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature")
	ErrTimestamp      = errors.New("webhook: timestamp outside the tolerance window")
	ErrSignature      = errors.New("webhook: no matching signature")
)

// ParseSecret returns the signing key of s: a "whsec_" secret is base64
// decoded; anything else is taken as the raw key bytes (a local dev secret).
func ParseSecret(s string) ([]byte, error) {
	if s == "" {
		return nil, ErrNoSecret
	}
	enc, ok := strings.CutPrefix(s, secretPrefix)
	if !ok {
		return []byte(s), nil
	}
	// Padding is optional in the wild; decode both forms.
	key, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(enc, "="))
	if err != nil {
		return nil, fmt.Errorf("webhook: secret after %q is not base64: %w", secretPrefix, err)
	}
	if len(key) == 0 {
		return nil, ErrNoSecret
	}
	return key, nil
}

// FormatSecret is the inverse of ParseSecret for a key: "whsec_" + base64.
func FormatSecret(key []byte) string {
	return secretPrefix + base64.StdEncoding.EncodeToString(key)
}

// NewSecret returns a fresh random secret in "whsec_" form (24 bytes, as the
// specification recommends at least).
func NewSecret() (string, error) {
	key := make([]byte, 24)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("webhook: new secret: %w", err)
	}
	return FormatSecret(key), nil
}

// Sign returns the webhook-signature value for one message: "v1," + base64
// HMAC-SHA256 over "id.timestamp.body" with key.
func Sign(key []byte, id string, ts time.Time, body []byte) (string, error) {
	if len(key) == 0 {
		return "", ErrNoSecret
	}
	return "v1," + base64.StdEncoding.EncodeToString(mac(key, id, ts.Unix(), body)), nil
}

// Headers returns the three Standard Webhooks headers for one attempt; the
// id stays the same on every attempt, the timestamp is the attempt's.
func Headers(key []byte, id string, ts time.Time, body []byte) (http.Header, error) {
	sig, err := Sign(key, id, ts, body)
	if err != nil {
		return nil, err
	}
	h := make(http.Header, 3)
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, sig)
	return h, nil
}

// Verify checks a received webhook with DefaultTolerance: the timestamp is
// within 5 minutes of now and one of the space-separated v1 signatures
// matches (several appear while a sender rotates its secret).
func Verify(key []byte, h http.Header, body []byte, now time.Time) error {
	return VerifyTolerance(key, h, body, now, DefaultTolerance)
}

// VerifyTolerance is Verify with another tolerance window.
func VerifyTolerance(key []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if len(key) == 0 {
		return ErrNoSecret
	}
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		return ErrMissingHeaders
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q is not unix seconds", ErrTimestamp, tsText)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %s off", ErrTimestamp, d.Round(time.Second))
	}
	want := mac(key, id, ts, body)
	for _, s := range strings.Fields(sigs) {
		version, enc, ok := strings.Cut(s, ",")
		if !ok || version != "v1" { // other schemes (v1a: ed25519) are not ours
			continue
		}
		got, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			continue
		}
		if hmac.Equal(got, want) { // constant time
			return nil
		}
	}
	return ErrSignature
}

func mac(key []byte, id string, ts int64, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(nil, ts, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}
