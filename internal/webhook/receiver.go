package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// DefaultMaxBody bounds a delivery's body when ReceiverConfig.MaxBody is 0;
// this service's payloads (a job view) are far smaller.
const DefaultMaxBody = 1 << 20

// Delivery is one webhook request whose signature verified.
type Delivery struct {
	ID   string          // the webhook-id header: the same on every retry of one message
	Body []byte          // the body exactly as signed
	Type string          // the payload's "type"
	Data json.RawMessage // the payload's "data", for the receiver to decode
}

// ReceiverConfig configures a Receiver.
type ReceiverConfig struct {
	Key []byte // the signing key, as ParseSecret returns it
	// Buffer is how many deliveries wait to be taken (0: 1). One that finds
	// the buffer full is acknowledged and dropped: for a one-shot receiver it
	// is a retry of a delivery already taken.
	Buffer  int
	MaxBody int64 // 0: DefaultMaxBody
	// Rejected, if set, is called with the reason for every refused request,
	// so a test can report a bad signature instead of waiting for a timeout.
	Rejected func(error)
}

// Receiver is an http.Handler that accepts Standard Webhooks deliveries
// signed with its key and hands each one over through Next. It answers 204
// to a verified delivery, 401 to a bad signature, 413 to a body over the
// limit and 400 to a body that is not a JSON payload.
type Receiver struct {
	cfg        ReceiverConfig
	deliveries chan Delivery
}

// NewReceiver returns a receiver for cfg.
func NewReceiver(cfg ReceiverConfig) *Receiver {
	if cfg.Buffer <= 0 {
		cfg.Buffer = 1
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	return &Receiver{cfg: cfg, deliveries: make(chan Delivery, cfg.Buffer)}
}

func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, rc.cfg.MaxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			rc.refuse(w, http.StatusRequestEntityTooLarge, fmt.Errorf("body over %d bytes", rc.cfg.MaxBody))
			return
		}
		rc.refuse(w, http.StatusBadRequest, fmt.Errorf("read body: %w", err))
		return
	}
	if err := Verify(rc.cfg.Key, r.Header, body, time.Now()); err != nil {
		rc.refuse(w, http.StatusUnauthorized, fmt.Errorf("signature: %w", err))
		return
	}
	var payload struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &payload); err != nil {
		rc.refuse(w, http.StatusBadRequest, fmt.Errorf("payload: %w", err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
	select {
	case rc.deliveries <- Delivery{ID: r.Header.Get(HeaderID), Body: body, Type: payload.Type, Data: payload.Data}:
	default: // full: see ReceiverConfig.Buffer
	}
}

func (rc *Receiver) refuse(w http.ResponseWriter, status int, err error) {
	if rc.cfg.Rejected != nil {
		rc.cfg.Rejected(err)
	}
	http.Error(w, err.Error(), status)
}

// Next returns the oldest verified delivery not yet taken, waiting for one
// until ctx ends.
func (rc *Receiver) Next(ctx context.Context) (Delivery, error) {
	select {
	case d := <-rc.deliveries:
		return d, nil
	case <-ctx.Done():
		return Delivery{}, fmt.Errorf("webhook: no delivery: %w", ctx.Err())
	}
}

// Endpoint is a Receiver served on 127.0.0.1.
type Endpoint struct {
	URL string // where to send deliveries
	srv *http.Server
}

// Listen serves rc on a free port of 127.0.0.1 until the endpoint is closed.
func (rc *Receiver) Listen() (*Endpoint, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("webhook receiver: %w", err)
	}
	srv := &http.Server{Handler: rc, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return &Endpoint{URL: "http://" + ln.Addr().String() + "/webhook", srv: srv}, nil
}

// Close stops the server and its open connections.
func (e *Endpoint) Close() error { return e.srv.Close() }
