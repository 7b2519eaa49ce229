package webhook

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"
)

// vector is one case of testdata/vectors.json, computed by vectors.py with
// Python's hmac and base64, independently of this package.
type vector struct {
	Name      string `json:"name"`
	Secret    string `json:"secret"`
	RawKeyHex string `json:"raw_key_hex"`
	ID        string `json:"id"`
	Timestamp int64  `json:"timestamp"`
	Body      string `json:"body"`
	Signature string `json:"signature"`
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 4 {
		t.Fatalf("only %d vectors", len(vs))
	}
	return vs
}

func (v vector) key(t *testing.T) []byte {
	t.Helper()
	if v.Secret != "" {
		k, err := ParseSecret(v.Secret)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k, err := hex.DecodeString(v.RawKeyHex)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSignMatchesIndependentVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			ts := time.Unix(v.Timestamp, 0)
			got, err := Sign(v.key(t), v.ID, ts, []byte(v.Body))
			if err != nil {
				t.Fatal(err)
			}
			if got != v.Signature {
				t.Fatalf("Sign = %s, want %s", got, v.Signature)
			}
			h, err := Headers(v.key(t), v.ID, ts, []byte(v.Body))
			if err != nil {
				t.Fatal(err)
			}
			if h.Get(HeaderID) != v.ID || h.Get(HeaderTimestamp) != strconv.FormatInt(v.Timestamp, 10) || h.Get(HeaderSignature) != v.Signature {
				t.Fatalf("headers %v", h)
			}
			if err := Verify(v.key(t), h, []byte(v.Body), ts.Add(4*time.Minute)); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

// The example published with the Standard Webhooks specification, written
// here as published so a change to vectors.py cannot hide a drift.
func TestSpecificationExample(t *testing.T) {
	key, err := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	other := []byte("another secret of the same length")
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"type":"job.succeeded"}`)
	sig := func(k []byte, id string, ts time.Time, b []byte) string {
		s, err := Sign(k, id, ts, b)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := sig(key, "msg_1", now, body)
	tests := []struct {
		name      string
		id, ts    string
		signature string
		body      []byte
		key       []byte
		want      error
	}{
		{name: "valid", id: "msg_1", ts: "1800000000", signature: good, body: body, key: key},
		{name: "second of several signatures (rotation)", id: "msg_1", ts: "1800000000",
			signature: sig(other, "msg_1", now, body) + " " + good, body: body, key: key},
		{name: "other schemes and garbage are skipped", id: "msg_1", ts: "1800000000",
			signature: "v1a,AAAA v1,!!notbase64 v2," + good[3:] + " " + good, body: body, key: key},
		{name: "4m59s old", id: "msg_1", ts: "1799999701",
			signature: sig(key, "msg_1", now.Add(-299*time.Second), body), body: body, key: key},
		{name: "4m59s ahead", id: "msg_1", ts: "1800000299",
			signature: sig(key, "msg_1", now.Add(299*time.Second), body), body: body, key: key},
		{name: "wrong secret", id: "msg_1", ts: "1800000000", signature: good, body: body, key: other, want: ErrSignature},
		{name: "tampered body", id: "msg_1", ts: "1800000000", signature: good, body: []byte(`{"type":"job.failed"}`), key: key, want: ErrSignature},
		{name: "other id", id: "msg_2", ts: "1800000000", signature: good, body: body, key: key, want: ErrSignature},
		{name: "other timestamp", id: "msg_1", ts: "1800000001", signature: good, body: body, key: key, want: ErrSignature},
		{name: "signature without version", id: "msg_1", ts: "1800000000", signature: good[3:], body: body, key: key, want: ErrSignature},
		{name: "truncated signature", id: "msg_1", ts: "1800000000", signature: good[:len(good)-4], body: body, key: key, want: ErrSignature},
		{name: "5m01s old", id: "msg_1", ts: "1799999699",
			signature: sig(key, "msg_1", now.Add(-301*time.Second), body), body: body, key: key, want: ErrTimestamp},
		{name: "5m01s ahead", id: "msg_1", ts: "1800000301",
			signature: sig(key, "msg_1", now.Add(301*time.Second), body), body: body, key: key, want: ErrTimestamp},
		{name: "timestamp in milliseconds", id: "msg_1", ts: "1800000000000", signature: good, body: body, key: key, want: ErrTimestamp},
		{name: "timestamp not a number", id: "msg_1", ts: "2027-01-15T08:00:00Z", signature: good, body: body, key: key, want: ErrTimestamp},
		{name: "no id", ts: "1800000000", signature: good, body: body, key: key, want: ErrMissingHeaders},
		{name: "no timestamp", id: "msg_1", signature: good, body: body, key: key, want: ErrMissingHeaders},
		{name: "no signature", id: "msg_1", ts: "1800000000", body: body, key: key, want: ErrMissingHeaders},
		{name: "no secret", id: "msg_1", ts: "1800000000", signature: good, body: body, want: ErrNoSecret},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.id != "" {
				h.Set(HeaderID, tc.id)
			}
			if tc.ts != "" {
				h.Set(HeaderTimestamp, tc.ts)
			}
			if tc.signature != "" {
				h.Set(HeaderSignature, tc.signature)
			}
			err := Verify(tc.key, h, tc.body, now)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestVerifyToleranceWindow(t *testing.T) {
	key := []byte("k")
	now := time.Unix(1_800_000_000, 0)
	h, err := Headers(key, "msg_1", now.Add(-time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(key, h, nil, now); !errors.Is(err, ErrTimestamp) {
		t.Fatalf("an hour-old message with the default window: %v", err)
	}
	if err := VerifyTolerance(key, h, nil, now, 2*time.Hour); err != nil {
		t.Fatalf("an hour-old message within a 2 h window: %v", err)
	}
}

func TestParseSecret(t *testing.T) {
	key := []byte{0, 1, 2, 250, 251, 252, 253, 254, 255, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 42}
	tests := []struct {
		name    string
		in      string
		want    []byte
		wantErr bool
	}{
		{name: "whsec with padding", in: FormatSecret(key), want: key},
		{name: "whsec without padding", in: "whsec_" + base64.RawStdEncoding.EncodeToString(key), want: key},
		{name: "raw bytes", in: "local-dev-secret", want: []byte("local-dev-secret")},
		{name: "empty", in: "", wantErr: true},
		{name: "whsec and nothing", in: "whsec_", wantErr: true},
		{name: "whsec not base64", in: "whsec_not*base64!", wantErr: true},
		{name: "whsec url-safe alphabet", in: "whsec_" + base64.URLEncoding.EncodeToString(key), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSecret(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseSecret(%q) = %x, want an error", tc.in, got)
				}
				return
			}
			if err != nil || string(got) != string(tc.want) {
				t.Fatalf("ParseSecret(%q) = %x, %v; want %x", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestNewSecretIsRandomAndParses(t *testing.T) {
	a, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("two secrets are equal")
	}
	k, err := ParseSecret(a)
	if err != nil || len(k) != 24 {
		t.Fatalf("ParseSecret(NewSecret()) = %d bytes, %v", len(k), err)
	}
}

func TestSignRefusesEmptyKey(t *testing.T) {
	if _, err := Sign(nil, "msg", time.Now(), nil); !errors.Is(err, ErrNoSecret) {
		t.Fatalf("Sign(nil key) = %v", err)
	}
}
