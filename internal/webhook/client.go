package webhook

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ClientConfig bounds webhook deliveries; zero fields take the defaults.
type ClientConfig struct {
	// AllowPrivate lets the client connect to private and loopback addresses
	// (local mode and tests only).
	AllowPrivate bool
	// Timeout bounds one whole attempt: connect, TLS, request and response
	// (default 15 s; receivers should answer fast and work asynchronously).
	Timeout time.Duration
	// DialTimeout bounds the TCP connect (default 5 s).
	DialTimeout time.Duration
}

// NewClient returns the client that delivers webhooks. Its dialer checks the
// address it actually connects to, after DNS resolution, so a host that
// passed CheckURL but now resolves to a private address is still refused
// (DNS rebinding). It follows no redirects (the 3xx is returned to the caller:
// a redirect could point anywhere, and POST bodies do not survive most of
// them) and ignores proxy settings from the environment (a proxy would hide
// the real destination from the dialer).
func NewClient(cfg ClientConfig) *http.Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	if !cfg.AllowPrivate {
		dialer.Control = refusePrivate
	}
	return &http.Client{
		Timeout: cfg.Timeout,
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            dialer.DialContext,
			ForceAttemptHTTP2:      true,
			TLSHandshakeTimeout:    cfg.DialTimeout,
			ResponseHeaderTimeout:  cfg.Timeout,
			MaxResponseHeaderBytes: 64 << 10,
			MaxIdleConns:           32,
			IdleConnTimeout:        30 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// refusePrivate runs for every address the dialer tries, after resolution.
func refusePrivate(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: dial %s %q: %v", ErrForbiddenURL, network, address, err)
	}
	if !publicAddr(ap.Addr()) {
		return fmt.Errorf("%w: connecting to %s, which is not public", ErrForbiddenURL, ap.Addr())
	}
	return nil
}
