// Package ecsprotect turns the worker's busy state into ECS task scale-in
// protection through the container agent's endpoint
// ($ECS_AGENT_URI/task-protection/v1/state), so neither service scale-in
// nor a deployment stops a task in the middle of a job. The protection
// expires on its own (a task that died protected does not block scale-in
// forever) and is renewed while the job runs.
package ecsprotect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// EnvAgentURI is the variable the ECS agent sets in every container.
const EnvAgentURI = "ECS_AGENT_URI"

// StatePath is the endpoint under the agent URI.
const StatePath = "/task-protection/v1/state"

// Config configures a Protector. Zero values take the defaults in brackets.
type Config struct {
	// AgentURI is $ECS_AGENT_URI; empty makes the Protector a no-op (local
	// runs, tests).
	AgentURI string
	// Expires is how long one protection lasts, whole minutes from 1 to
	// 2880 [60 min].
	Expires time.Duration
	// RenewEvery is how often protection is renewed while busy [Expires/3].
	RenewEvery time.Duration
	Client     *http.Client // [a client with a 10 s timeout]
	Logger     *slog.Logger
}

// Protector sets and clears the task's scale-in protection.
type Protector struct {
	cfg Config

	// mu is held across each call to the agent, so a renewal can never
	// land after the release that followed it.
	mu    sync.Mutex
	renew *time.Timer // non-nil while protected
	gen   int         // bumped by every change; a renewal of an older one does nothing
}

// New checks cfg and fills its defaults.
func New(cfg Config) (*Protector, error) {
	if cfg.Expires == 0 {
		cfg.Expires = time.Hour
	}
	if cfg.Expires%time.Minute != 0 || cfg.Expires < time.Minute || cfg.Expires > 2880*time.Minute {
		return nil, fmt.Errorf("ecsprotect: expiry %v: want whole minutes from 1 to 2880", cfg.Expires)
	}
	if cfg.RenewEvery == 0 {
		cfg.RenewEvery = cfg.Expires / 3
	}
	if cfg.RenewEvery <= 0 || cfg.RenewEvery >= cfg.Expires {
		return nil, fmt.Errorf("ecsprotect: renewal every %v must be shorter than the expiry %v", cfg.RenewEvery, cfg.Expires)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.AgentURI = strings.TrimSuffix(cfg.AgentURI, "/")
	return &Protector{cfg: cfg}, nil
}

// Enabled reports whether there is an agent to talk to.
func (p *Protector) Enabled() bool { return p.cfg.AgentURI != "" }

// State is the agent's answer about the task's protection.
type State struct {
	TaskArn           string
	ProtectionEnabled bool
	ExpirationDate    time.Time // zero when not protected
}

// Busy is worker.Config.Busy: protect the task when busy, release it when
// not. While protected, a timer renews the protection before it expires.
func (p *Protector) Busy(ctx context.Context, busy bool) error {
	if !p.Enabled() {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopRenewal()
	if busy {
		p.scheduleRenewal(p.gen)
	}
	_, err := p.Set(ctx, busy)
	return err
}

// stopRenewal cancels any pending renewal; p.mu is held.
func (p *Protector) stopRenewal() {
	p.gen++
	if p.renew != nil {
		p.renew.Stop()
		p.renew = nil
	}
}

// scheduleRenewal arms the renewal of generation gen; p.mu is held.
func (p *Protector) scheduleRenewal(gen int) {
	p.renew = time.AfterFunc(p.cfg.RenewEvery, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if gen != p.gen {
			return // released or closed meanwhile
		}
		ctx, cancel := context.WithTimeout(context.Background(), renewTimeout)
		defer cancel()
		if _, err := p.Set(ctx, true); err != nil {
			p.cfg.Logger.Error("renew task scale-in protection", "error", err.Error())
		}
		p.scheduleRenewal(gen)
	})
}

// renewTimeout bounds one renewal call (Busy calls carry the worker's context).
const renewTimeout = 15 * time.Second

// Close stops renewing (a protection in place lapses at its expiry).
func (p *Protector) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopRenewal()
}

// request is the body of the PUT.
type request struct {
	ProtectionEnabled bool `json:"ProtectionEnabled"`
	ExpiresInMinutes  int  `json:"ExpiresInMinutes,omitempty"`
}

// response is the agent's answer: protection on success, failure when ECS
// refused (e.g. TASK_NOT_VALID for a task outside a service), error when
// the call itself failed (throttling, missing permission).
type response struct {
	RequestID  string `json:"requestID"`
	Protection *struct {
		TaskArn           string     `json:"TaskArn"`
		ProtectionEnabled bool       `json:"ProtectionEnabled"`
		ExpirationDate    *time.Time `json:"ExpirationDate"`
	} `json:"protection"`
	Failure *struct {
		Arn    string  `json:"Arn"`
		Reason string  `json:"Reason"`
		Detail *string `json:"Detail"`
	} `json:"failure"`
	Error *struct {
		Arn     string `json:"Arn"`
		Code    string `json:"Code"`
		Message string `json:"Message"`
	} `json:"error"`
}

// Set turns protection on (for Expires) or off and returns the agent's
// view of the result. A failure or error body is an error naming its
// reason, whatever the HTTP status.
func (p *Protector) Set(ctx context.Context, enabled bool) (State, error) {
	if !p.Enabled() {
		return State{}, errors.New("ecsprotect: no ECS agent (ECS_AGENT_URI is not set)")
	}
	body := request{ProtectionEnabled: enabled}
	if enabled {
		body.ExpiresInMinutes = int(p.cfg.Expires / time.Minute)
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return State{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, p.cfg.AgentURI+StatePath, bytes.NewReader(raw))
	if err != nil {
		return State{}, fmt.Errorf("task protection: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		return State{}, fmt.Errorf("task protection %v: %w", enabled, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return State{}, fmt.Errorf("task protection %v: read response: %w", enabled, err)
	}
	var r response
	if err := json.Unmarshal(data, &r); err != nil {
		return State{}, fmt.Errorf("task protection %v: %s: unreadable response %q: %w", enabled, resp.Status, clip(data), err)
	}
	switch {
	case r.Failure != nil:
		detail := ""
		if r.Failure.Detail != nil {
			detail = ": " + *r.Failure.Detail
		}
		return State{}, fmt.Errorf("task protection %v: %s: failure %s%s (task %s, request %s)", enabled, resp.Status, r.Failure.Reason, detail, r.Failure.Arn, r.RequestID)
	case r.Error != nil:
		return State{}, fmt.Errorf("task protection %v: %s: error %s: %s (task %s, request %s)", enabled, resp.Status, r.Error.Code, r.Error.Message, r.Error.Arn, r.RequestID)
	case resp.StatusCode != http.StatusOK || r.Protection == nil:
		return State{}, fmt.Errorf("task protection %v: %s: unexpected response %q", enabled, resp.Status, clip(data))
	case r.Protection.ProtectionEnabled != enabled:
		return State{}, fmt.Errorf("task protection %v: the agent reports protection %v", enabled, r.Protection.ProtectionEnabled)
	}
	st := State{TaskArn: r.Protection.TaskArn, ProtectionEnabled: r.Protection.ProtectionEnabled}
	if r.Protection.ExpirationDate != nil {
		st.ExpirationDate = *r.Protection.ExpirationDate
	}
	p.cfg.Logger.Info("task scale-in protection set", "enabled", enabled, "expires", st.ExpirationDate, "task_arn", st.TaskArn)
	return st, nil
}

func clip(b []byte) string {
	if len(b) > 256 {
		return string(b[:256]) + "..."
	}
	return string(b)
}
