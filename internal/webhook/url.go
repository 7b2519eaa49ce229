package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
)

// ErrForbiddenURL is wrapped by every refusal of CheckURL and of the delivering
// client's dialer, so callers tell "never deliverable" from transient errors.
var ErrForbiddenURL = errors.New("webhook: URL not allowed")

// MaxURLLength bounds a webhook URL (the API stores it with the job).
const MaxURLLength = 2048

// Ranges the net/netip predicates do not cover.
var (
	cgnat       = netip.MustParsePrefix("100.64.0.0/10") // carrier-grade NAT (RFC 6598)
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")     // Linux routes these to the local host
	broadcast   = netip.MustParseAddr("255.255.255.255")
	nat64       = netip.MustParsePrefix("64:ff9b::/96")  // embeds an IPv4 address (RFC 6052)
	ietfv4      = netip.MustParsePrefix("192.0.0.0/24")  // IETF protocol assignments
	benchmarkv4 = netip.MustParsePrefix("198.18.0.0/15") // benchmarking, never routed
	reservedv4  = netip.MustParsePrefix("240.0.0.0/4")   // reserved (class E)
	sixToFour   = netip.MustParsePrefix("2002::/16")     // 6to4: embeds an IPv4 address
	teredo      = netip.MustParsePrefix("2001::/32")     // tunnels to arbitrary IPv4
	ula         = netip.MustParsePrefix("fc00::/7")      // also IsPrivate; holds EC2's fd00:ec2::254
	siteLocal   = netip.MustParsePrefix("fec0::/10")     // deprecated, still routed internally
	documentv6  = netip.MustParsePrefix("2001:db8::/32") // documentation
	discardv6   = netip.MustParsePrefix("100::/64")      // discard-only
)

// publicAddr reports whether a webhook may be delivered to addr: not
// loopback, private, link-local (which holds the cloud metadata service),
// unspecified, multicast, CGNAT or otherwise reserved.
func publicAddr(addr netip.Addr) bool {
	addr = addr.Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
	if !addr.IsValid() || addr.Zone() != "" {
		return false
	}
	if addr.IsLoopback() || addr.IsPrivate() || addr.IsUnspecified() ||
		addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() ||
		addr.IsInterfaceLocalMulticast() || addr.IsMulticast() {
		return false
	}
	if addr.Is4() {
		for _, p := range []netip.Prefix{cgnat, thisNetwork, ietfv4, benchmarkv4, reservedv4} {
			if p.Contains(addr) {
				return false
			}
		}
		return addr != broadcast
	}
	if nat64.Contains(addr) {
		b := addr.As16()
		return publicAddr(netip.AddrFrom4([4]byte(b[12:16])))
	}
	for _, p := range []netip.Prefix{sixToFour, teredo, ula, siteLocal, documentv6, discardv6} {
		if p.Contains(addr) {
			return false
		}
	}
	return true
}

// CheckURL reports whether rawURL may receive webhooks: https only (http too
// when allowPrivate), no credentials in the URL, and a host whose every
// address is public unless allowPrivate. A refusal wraps ErrForbiddenURL; a
// failed DNS lookup is returned as it is (it may be transient). The delivering
// client re-checks the address it connects to, so a name that later resolves
// elsewhere (DNS rebinding) is still refused.
func CheckURL(ctx context.Context, rawURL string, allowPrivate bool) error {
	return checkURL(ctx, net.DefaultResolver, rawURL, allowPrivate)
}

// resolver is the part of *net.Resolver CheckURL uses.
type resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

func checkURL(ctx context.Context, r resolver, rawURL string, allowPrivate bool) error {
	if len(rawURL) > MaxURLLength {
		return fmt.Errorf("%w: longer than %d characters", ErrForbiddenURL, MaxURLLength)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrForbiddenURL, err)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowPrivate:
	default:
		return fmt.Errorf("%w: scheme %q (https only)", ErrForbiddenURL, u.Scheme)
	}
	if u.User != nil {
		return fmt.Errorf("%w: credentials in the URL", ErrForbiddenURL)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%w: no host", ErrForbiddenURL)
	}
	if allowPrivate {
		return nil
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		if !publicAddr(addr) {
			return fmt.Errorf("%w: address %s is not public", ErrForbiddenURL, addr)
		}
		return nil
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("webhook: resolve %s: %w", host, err)
	}
	// Every address must be public: the dialer may pick any of them.
	for _, a := range addrs {
		if !publicAddr(a) {
			return fmt.Errorf("%w: %s resolves to %s, which is not public", ErrForbiddenURL, host, a)
		}
	}
	return nil
}
