package tracing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/internal/tracing"
)

// daemon is a stand-in X-Ray daemon: a UDP socket on 127.0.0.1 that keeps
// every segment document it receives.
type daemon struct {
	t    *testing.T
	conn *net.UDPConn
}

func newDaemon(t *testing.T) *daemon {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &daemon{t: t, conn: conn}
}

func (d *daemon) addr() string { return d.conn.LocalAddr().String() }

// doc is the part of a segment document the tests look at.
type doc struct {
	TraceID     string            `json:"trace_id"`
	ID          string            `json:"id"`
	ParentID    string            `json:"parent_id"`
	Name        string            `json:"name"`
	Type        string            `json:"type"`
	StartTime   float64           `json:"start_time"`
	EndTime     float64           `json:"end_time"`
	InProgress  bool              `json:"in_progress"`
	Fault       bool              `json:"fault"`
	Error       bool              `json:"error"`
	User        string            `json:"user"`
	Annotations map[string]any    `json:"annotations"`
	Cause       *json.RawMessage  `json:"cause"`
	Subsegments []json.RawMessage `json:"subsegments"`
	subs        []doc
}

// receive reads one packet: the daemon protocol header line, then one
// segment document.
func (d *daemon) receive(within time.Duration) (doc, bool) {
	d.t.Helper()
	buf := make([]byte, 64<<10)
	if err := d.conn.SetReadDeadline(time.Now().Add(within)); err != nil {
		d.t.Fatal(err)
	}
	n, err := d.conn.Read(buf)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return doc{}, false
	}
	if err != nil {
		d.t.Fatal(err)
	}
	head, body, ok := bytes.Cut(buf[:n], []byte("\n"))
	if !ok || string(head) != `{"format": "json", "version": 1}` {
		d.t.Fatalf("packet without the daemon header: %q", buf[:n])
	}
	var s doc
	if err := json.Unmarshal(body, &s); err != nil {
		d.t.Fatalf("segment document: %v: %s", err, body)
	}
	for _, raw := range s.Subsegments {
		var sub doc
		if err := json.Unmarshal(raw, &sub); err != nil {
			d.t.Fatalf("subsegment: %v: %s", err, raw)
		}
		s.subs = append(s.subs, sub)
	}
	return s, true
}

func newTracer(t *testing.T, d *daemon) *tracing.Tracer {
	t.Helper()
	tr, err := tracing.New(tracing.Config{DaemonAddr: d.addr()})
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Enabled() {
		t.Fatal("tracer with a daemon address is off")
	}
	return tr
}

const (
	apiTrace  = "1-5759e988-bd862e3fe1be46a994272793"
	apiParent = "53995c3f42cd8ad8"
)

var (
	t0     = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	stages = []string{"00|download-inputs", "03|detect-faces", "08|denoise-unet", "12|upload-output"}
)

func run(header string, err error, client bool) tracing.Run {
	r := tracing.Run{JobID: "job_1", Tenant: "tenant-1", Bundle: "v1.5.0", TraceHeader: header, Start: t0, End: t0.Add(10 * time.Second), Outcome: "succeeded"}
	at := t0
	for i, s := range stages {
		d := time.Duration(i+1) * time.Second
		r.Spans = append(r.Spans, tracing.Span{Name: s, Start: at, Duration: d})
		at = at.Add(d)
	}
	if err != nil {
		r.Outcome, r.Err, r.ClientError = "failed", err, client
		r.Spans[2].Err = err
	}
	return r
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-3 }

func TestSegmentContinuesTheAPITrace(t *testing.T) {
	t.Parallel()
	d := newDaemon(t)
	tr := newTracer(t, d)
	r := run("Root="+apiTrace+";Parent="+apiParent+";Sampled=1", nil, false)
	if got := tr.Record(context.Background(), r); got != apiTrace {
		t.Errorf("Record returned trace id %q, want the header's %q", got, apiTrace)
	}
	s, ok := d.receive(5 * time.Second)
	if !ok {
		t.Fatal("no segment sent")
	}
	if s.TraceID != apiTrace || s.ParentID != apiParent {
		t.Errorf("segment trace %q parent %q, want %q %q", s.TraceID, s.ParentID, apiTrace, apiParent)
	}
	if s.Name != tracing.DefaultService || s.Type != "" || s.InProgress || s.Fault || s.Error || s.Cause != nil {
		t.Errorf("segment name %q type %q in_progress %v fault %v error %v cause %v; want a closed, clean %s segment",
			s.Name, s.Type, s.InProgress, s.Fault, s.Error, s.Cause != nil, tracing.DefaultService)
	}
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(s.ID) {
		t.Errorf("segment id %q", s.ID)
	}
	if !near(s.StartTime, float64(t0.Unix())) || s.EndTime < s.StartTime {
		t.Errorf("segment %v..%v, want from the run's start %v", s.StartTime, s.EndTime, t0.Unix())
	}
	if s.User != "tenant-1" {
		t.Errorf("user %q, want the tenant", s.User)
	}
	for k, v := range map[string]string{"job_id": "job_1", "tenant": "tenant-1", "bundle": "v1.5.0", "outcome": "succeeded"} {
		if s.Annotations[k] != v {
			t.Errorf("annotation %s = %v, want %q", k, s.Annotations[k], v)
		}
	}

	var names []string
	for i, sub := range s.subs {
		names = append(names, sub.Name)
		sp := r.Spans[i]
		if sub.ID == "" || sub.ID == s.ID || sub.InProgress || sub.Fault || sub.Error {
			t.Errorf("subsegment %s: id %q in_progress %v fault %v error %v", sub.Name, sub.ID, sub.InProgress, sub.Fault, sub.Error)
		}
		start := float64(sp.Start.UnixNano()) / 1e9
		if !near(sub.StartTime, start) || !near(sub.EndTime-sub.StartTime, sp.Duration.Seconds()) {
			t.Errorf("subsegment %s: %v..%v, want the measured %v + %v", sub.Name, sub.StartTime, sub.EndTime, start, sp.Duration.Seconds())
		}
	}
	if !slices.Equal(names, stages) {
		t.Errorf("subsegments %v, want %v", names, stages)
	}
	if _, more := d.receive(200 * time.Millisecond); more {
		t.Error("more than one packet for one run")
	}
}

func TestFailureFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		client bool
	}{{"client's input", true}, {"service fault", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := newDaemon(t)
			tr := newTracer(t, d)
			tr.Record(context.Background(), run("Root="+apiTrace+";Parent="+apiParent+";Sampled=1", errors.New("NO_FACE_DETECTED: no face"), tc.client))
			s, ok := d.receive(5 * time.Second)
			if !ok {
				t.Fatal("no segment sent")
			}
			if s.Error != tc.client || s.Fault == tc.client || s.Cause == nil {
				t.Errorf("segment error %v fault %v cause %v; want error %v, fault %v, a cause", s.Error, s.Fault, s.Cause != nil, tc.client, !tc.client)
			}
			if s.Annotations["outcome"] != "failed" {
				t.Errorf("outcome %v", s.Annotations["outcome"])
			}
			for i, sub := range s.subs {
				failed := i == 2
				if (sub.Error || sub.Fault) != failed {
					t.Errorf("subsegment %s error %v fault %v, want flagged only on the failed stage", sub.Name, sub.Error, sub.Fault)
				}
				if failed && (sub.Error != tc.client || sub.Cause == nil) {
					t.Errorf("failed subsegment error %v cause %v", sub.Error, sub.Cause != nil)
				}
			}
		})
	}
}

func TestSampling(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, header string
		sent         bool
		newTrace     bool
	}{
		{"upstream did not sample", "Root=" + apiTrace + ";Parent=" + apiParent + ";Sampled=0", false, false},
		// No decision upstream: the local rule takes the first run of a second.
		{"undecided", "Root=" + apiTrace + ";Parent=" + apiParent, true, false},
		{"no header", "", true, true},
		{"malformed trace id", "Root=1-test;Sampled=1", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := newDaemon(t)
			tr := newTracer(t, d)
			id := tr.Record(context.Background(), run(tc.header, nil, false))
			s, ok := d.receive(time.Second)
			if ok != tc.sent {
				t.Fatalf("segment sent %v, want %v", ok, tc.sent)
			}
			if !ok {
				return
			}
			if s.TraceID != id {
				t.Errorf("sent trace %q, Record returned %q", s.TraceID, id)
			}
			if tc.newTrace {
				if !regexp.MustCompile(`^1-[0-9a-f]{8}-[0-9a-f]{24}$`).MatchString(s.TraceID) || s.ParentID != "" {
					t.Errorf("new trace %q parent %q, want a fresh X-Ray trace id and no parent", s.TraceID, s.ParentID)
				}
			} else if s.TraceID != apiTrace || s.ParentID != apiParent {
				t.Errorf("trace %q parent %q, want the header's", s.TraceID, s.ParentID)
			}
		})
	}
}

func TestDisabled(t *testing.T) {
	t.Parallel()
	d := newDaemon(t)
	tr, err := tracing.New(tracing.ConfigFromEnv(func(string) string { return "" }))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Enabled() {
		t.Error("tracer without a daemon address is on")
	}
	if got := tr.Record(context.Background(), run("Root="+apiTrace+";Sampled=1", nil, false)); got != apiTrace {
		t.Errorf("disabled Record returned %q, want the header's trace id for the logs", got)
	}
	var zero tracing.Tracer
	zero.Record(context.Background(), run("", nil, false))
	if _, ok := d.receive(200 * time.Millisecond); ok {
		t.Error("a disabled tracer sent a segment")
	}
}

func TestDaemonAddress(t *testing.T) {
	t.Parallel()
	d := newDaemon(t)
	// The SDKs' two-address form: segments go to the UDP one.
	tr, err := tracing.New(tracing.Config{DaemonAddr: "tcp:127.0.0.1:1 udp:" + d.addr()})
	if err != nil {
		t.Fatal(err)
	}
	tr.Record(context.Background(), run("Root="+apiTrace+";Sampled=1", nil, false))
	if _, ok := d.receive(5 * time.Second); !ok {
		t.Error("nothing received on the udp: address")
	}
	for _, bad := range []string{"nohost", "tcp:127.0.0.1:2000 tcp:127.0.0.1:2001", "127.0.0.1:notaport"} {
		if _, err := tracing.New(tracing.Config{DaemonAddr: bad}); err == nil {
			t.Errorf("daemon address %q accepted", bad)
		}
	}
}
