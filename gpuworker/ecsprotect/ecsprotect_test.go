package ecsprotect_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/gpuworker/ecsprotect"
)

// agent is a fake ECS container agent: it records every call to the task
// protection endpoint and answers with reply.
type agent struct {
	mu    sync.Mutex
	calls []call
	reply func(enabled bool) (int, string)
}

type call struct {
	method, path, contentType string
	body                      map[string]any
	at                        time.Time
}

func (a *agent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	a.mu.Lock()
	a.calls = append(a.calls, call{r.Method, r.URL.Path, r.Header.Get("Content-Type"), body, time.Now()})
	reply := a.reply
	a.mu.Unlock()
	enabled, _ := body["ProtectionEnabled"].(bool)
	status, resp := http.StatusOK, protected(enabled)
	if reply != nil {
		status, resp = reply(enabled)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, resp)
}

func (a *agent) recorded() []call {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]call(nil), a.calls...)
}

const taskArn = "arn:aws:ecs:us-east-1:111122223333:task/cluster/0123456789abcdef"

// protected is the agent's answer on success.
func protected(enabled bool) string {
	exp := "null"
	if enabled {
		exp = `"2025-01-02T04:04:05.123Z"`
	}
	b, _ := json.Marshal(enabled)
	return `{"requestID":"req-1","protection":{"ExpirationDate":` + exp + `,"ProtectionEnabled":` + string(b) + `,"TaskArn":"` + taskArn + `"}}`
}

func start(t *testing.T, a *agent, cfg ecsprotect.Config) *ecsprotect.Protector {
	t.Helper()
	srv := httptest.NewServer(a) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	cfg.AgentURI = srv.URL + "/"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := ecsprotect.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestBusyProtectsAndReleases(t *testing.T) {
	a := &agent{}
	p := start(t, a, ecsprotect.Config{Expires: 90 * time.Minute})
	if err := p.Busy(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	if err := p.Busy(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	calls := a.recorded()
	want := []map[string]any{
		{"ProtectionEnabled": true, "ExpiresInMinutes": float64(90)},
		{"ProtectionEnabled": false},
	}
	if len(calls) != len(want) {
		t.Fatalf("%d calls, want %d: %+v", len(calls), len(want), calls)
	}
	for i, c := range calls {
		if c.method != http.MethodPut || c.path != ecsprotect.StatePath || c.contentType != "application/json" {
			t.Errorf("call %d: %s %s (%s), want PUT %s as JSON", i, c.method, c.path, c.contentType, ecsprotect.StatePath)
		}
		got, _ := json.Marshal(c.body)
		exp, _ := json.Marshal(want[i])
		if string(got) != string(exp) {
			t.Errorf("call %d body %s, want %s", i, got, exp)
		}
	}
}

func TestSetParsesProtection(t *testing.T) {
	p := start(t, &agent{}, ecsprotect.Config{})
	st, err := p.Set(t.Context(), true)
	if err != nil {
		t.Fatal(err)
	}
	wantExp := time.Date(2025, 1, 2, 4, 4, 5, 123e6, time.UTC)
	if !st.ProtectionEnabled || st.TaskArn != taskArn || !st.ExpirationDate.Equal(wantExp) {
		t.Errorf("state %+v, want enabled, %s, expiring %v", st, taskArn, wantExp)
	}
	st, err = p.Set(t.Context(), false)
	if err != nil || st.ProtectionEnabled || !st.ExpirationDate.IsZero() {
		t.Errorf("release: %+v, %v", st, err)
	}
}

func TestErrorsSurface(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   []string // substrings of the error
	}{
		{"failure body", http.StatusOK,
			`{"requestID":"req-2","failure":{"Arn":"` + taskArn + `","Reason":"TASK_NOT_VALID","Detail":null}}`,
			[]string{"TASK_NOT_VALID", taskArn, "req-2"}},
		{"failure with detail", http.StatusBadRequest,
			`{"failure":{"Arn":"` + taskArn + `","Reason":"UNSUPPORTED","Detail":"standalone task"}}`,
			[]string{"UNSUPPORTED", "standalone task", "400"}},
		{"error body", http.StatusInternalServerError,
			`{"requestID":"req-3","error":{"Arn":"` + taskArn + `","Code":"AccessDeniedException","Message":"not authorized to perform ecs:UpdateTaskProtection"}}`,
			[]string{"AccessDeniedException", "ecs:UpdateTaskProtection", "500"}},
		{"not JSON", http.StatusBadGateway, `upstream gone`, []string{"502", "upstream gone"}},
		{"no protection in a 200", http.StatusOK, `{}`, []string{"unexpected response"}},
		{"agent disagrees", http.StatusOK, protected(false), []string{"reports protection false"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := start(t, &agent{reply: func(bool) (int, string) { return tc.status, tc.body }}, ecsprotect.Config{})
			err := p.Busy(t.Context(), true)
			if err == nil {
				t.Fatal("Busy succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestUnreachableAgent(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	p, err := ecsprotect.New(ecsprotect.Config{AgentURI: url, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Busy(t.Context(), true); err == nil {
		t.Error("Busy succeeded with no agent listening")
	}
	p.Close()
}

func TestNoAgentIsNoOp(t *testing.T) {
	p, err := ecsprotect.New(ecsprotect.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Enabled() {
		t.Error("enabled without an agent URI")
	}
	for _, busy := range []bool{true, false} {
		if err := p.Busy(t.Context(), busy); err != nil {
			t.Errorf("Busy(%v) = %v, want a no-op", busy, err)
		}
	}
	if _, err := p.Set(t.Context(), true); err == nil {
		t.Error("Set without an agent should say there is none")
	}
}

func TestRenewsWhileBusyAndStopsAfter(t *testing.T) {
	a := &agent{}
	p := start(t, a, ecsprotect.Config{Expires: time.Minute, RenewEvery: 20 * time.Millisecond})
	if err := p.Busy(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(a.recorded()) < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := p.Busy(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // several renewal periods
	calls := a.recorded()
	if len(calls) < 5 {
		t.Fatalf("%d calls, want the protection, at least 3 renewals and the release", len(calls))
	}
	for i, c := range calls[:len(calls)-1] {
		if c.body["ProtectionEnabled"] != true || c.body["ExpiresInMinutes"] != float64(1) {
			t.Errorf("call %d: %v, want a 1-minute protection", i, c.body)
		}
	}
	if last := calls[len(calls)-1]; last.body["ProtectionEnabled"] != false {
		t.Errorf("last call %v, want the release: no renewal may follow it", last.body)
	}
}

func TestConfigLimits(t *testing.T) {
	for _, cfg := range []ecsprotect.Config{
		{Expires: 30 * time.Second},
		{Expires: 90 * time.Second},
		{Expires: 2881 * time.Minute},
		{Expires: 10 * time.Minute, RenewEvery: 10 * time.Minute},
	} {
		if _, err := ecsprotect.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}
