package webhook

import (
	"context"
	"errors"
	"net/netip"
	"testing"
)

func TestPublicAddr(t *testing.T) {
	tests := []struct {
		addr   string
		public bool
	}{
		{"93.184.215.14", true},
		{"8.8.8.8", true},
		{"2606:4700:4700::1111", true},
		{"100.63.255.255", true}, // just below CGNAT
		{"100.128.0.0", true},    // just above CGNAT
		{"172.32.0.1", true},     // just above 172.16/12
		{"127.0.0.1", false},
		{"127.1.2.3", false},
		{"::1", false},
		{"10.0.0.1", false},
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"192.168.1.1", false},
		{"fc00::1", false},
		{"fd00:ec2::254", false}, // EC2 metadata over IPv6
		{"169.254.169.254", false},
		{"169.254.0.1", false},
		{"fe80::1", false},
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"::", false},
		{"224.0.0.1", false},
		{"239.255.255.250", false},
		{"ff02::1", false},
		{"ff0e::1", false},
		{"100.64.0.1", false},
		{"100.127.255.255", false},
		{"255.255.255.255", false},
		{"240.0.0.1", false},
		{"198.18.0.1", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:169.254.169.254", false},
		{"::ffff:8.8.8.8", true},
		{"64:ff9b::a9fe:a9fe", false}, // NAT64 of 169.254.169.254
		{"64:ff9b::808:808", true},    // NAT64 of 8.8.8.8
		{"2002:7f00:1::", false},      // 6to4 of 127.0.0.1
		{"fec0::1", false},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			if got := publicAddr(netip.MustParseAddr(tc.addr)); got != tc.public {
				t.Fatalf("publicAddr(%s) = %v, want %v", tc.addr, got, tc.public)
			}
		})
	}
}

// hosts answers lookups from a table, standing in for DNS (not reachable here).
type hosts map[string][]string

func (h hosts) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	as, ok := h[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	var out []netip.Addr
	for _, a := range as {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

func TestCheckURL(t *testing.T) {
	dns := hosts{
		"hooks.example.com": {"93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"},
		"internal.example":  {"10.1.2.3"},
		"mixed.example":     {"93.184.215.14", "127.0.0.1"}, // one bad answer is enough to refuse
		"metadata.example":  {"169.254.169.254"},
	}
	tests := []struct {
		name         string
		url          string
		allowPrivate bool
		forbidden    bool // wraps ErrForbiddenURL
		otherErr     bool // fails, but not as forbidden
	}{
		{name: "public https", url: "https://hooks.example.com/latentsync?x=1"},
		{name: "public https with port", url: "https://hooks.example.com:8443/h"},
		{name: "public IPv4 literal", url: "https://93.184.215.14/h"},
		{name: "public IPv6 literal", url: "https://[2606:4700:4700::1111]/h"},
		{name: "http", url: "http://hooks.example.com/h", forbidden: true},
		{name: "ftp", url: "ftp://hooks.example.com/h", forbidden: true},
		{name: "ftp even when private allowed", url: "ftp://127.0.0.1/h", allowPrivate: true, forbidden: true},
		{name: "no scheme", url: "hooks.example.com/h", forbidden: true},
		{name: "credentials", url: "https://user:pass@hooks.example.com/h", forbidden: true},
		{name: "user only", url: "https://user@hooks.example.com/h", forbidden: true},
		{name: "credentials even when private allowed", url: "http://u:p@127.0.0.1/h", allowPrivate: true, forbidden: true},
		{name: "no host", url: "https:///h", forbidden: true},
		{name: "opaque", url: "https:hooks.example.com", forbidden: true},
		{name: "unparsable", url: "https://[::1/h", forbidden: true},
		{name: "loopback literal", url: "https://127.0.0.1/h", forbidden: true},
		{name: "IPv6 loopback literal", url: "https://[::1]:8443/h", forbidden: true},
		{name: "mapped loopback literal", url: "https://[::ffff:127.0.0.1]/h", forbidden: true},
		{name: "metadata literal", url: "https://169.254.169.254/latest/meta-data/", forbidden: true},
		{name: "private literal", url: "https://192.168.0.10/h", forbidden: true},
		{name: "CGNAT literal", url: "https://100.64.1.1/h", forbidden: true},
		{name: "unspecified literal", url: "https://0.0.0.0/h", forbidden: true},
		{name: "multicast literal", url: "https://224.0.0.251/h", forbidden: true},
		{name: "link-local IPv6", url: "https://[fe80::1%25eth0]/h", forbidden: true},
		{name: "name resolving to private", url: "https://internal.example/h", forbidden: true},
		{name: "name resolving to metadata", url: "https://metadata.example/h", forbidden: true},
		{name: "one private answer among public", url: "https://mixed.example/h", forbidden: true},
		{name: "unknown name is not forbidden, just unresolved", url: "https://nx.example/h", otherErr: true},
		{name: "private allowed: http loopback", url: "http://127.0.0.1:8080/h", allowPrivate: true},
		{name: "private allowed: name resolving to private", url: "https://internal.example/h", allowPrivate: true},
		{name: "too long", url: "https://hooks.example.com/" + string(make([]byte, MaxURLLength)), forbidden: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkURL(context.Background(), dns, tc.url, tc.allowPrivate)
			switch {
			case tc.forbidden:
				if !errors.Is(err, ErrForbiddenURL) {
					t.Fatalf("checkURL(%q) = %v, want ErrForbiddenURL", tc.url, err)
				}
			case tc.otherErr:
				if err == nil || errors.Is(err, ErrForbiddenURL) {
					t.Fatalf("checkURL(%q) = %v, want a lookup error", tc.url, err)
				}
			case err != nil:
				t.Fatalf("checkURL(%q) = %v, want nil", tc.url, err)
			}
		})
	}
}

// CheckURL with the system resolver: localhost comes from /etc/hosts.
func TestCheckURLResolvesWithTheSystemResolver(t *testing.T) {
	if err := CheckURL(context.Background(), "https://localhost:8443/h", false); !errors.Is(err, ErrForbiddenURL) {
		t.Fatalf("localhost: %v, want ErrForbiddenURL", err)
	}
	if err := CheckURL(context.Background(), "http://localhost:8080/h", true); err != nil {
		t.Fatalf("localhost with private allowed: %v", err)
	}
}
