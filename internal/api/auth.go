package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/core"
)

// Authenticator tells which tenant a request acts for.
type Authenticator interface {
	// Tenant returns the tenant, or an error wrapping ErrMissingKey (401)
	// or ErrUnknownKey (403).
	Tenant(r *http.Request) (string, error)
}

var (
	ErrMissingKey = errors.New("missing API key")
	ErrUnknownKey = errors.New("unknown API key")
)

// APIKeyHeader carries the client's key (the header API Gateway checks).
const APIKeyHeader = "x-api-key"

// KeyAuth maps API keys to tenants itself (local serve, where no gateway
// checks keys). Keys are held as SHA-256 digests so a lookup's timing says
// nothing useful about the key.
type KeyAuth struct {
	tenants map[[sha256.Size]byte]string
}

// NewKeyAuth returns a KeyAuth for key -> tenant.
func NewKeyAuth(keys map[string]string) (*KeyAuth, error) {
	a := &KeyAuth{tenants: make(map[[sha256.Size]byte]string, len(keys))}
	for k, t := range keys {
		if k == "" {
			return nil, errors.New("api keys: empty key")
		}
		if err := checkTenant(t); err != nil {
			return nil, fmt.Errorf("api keys: %w", err)
		}
		a.tenants[sha256.Sum256([]byte(k))] = t
	}
	return a, nil
}

// ParseKeys parses "key=tenant,key2=tenant2" (LATENTSYNC_API_KEYS).
func ParseKeys(s string) (map[string]string, error) {
	keys := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		k, t, ok := strings.Cut(pair, "=")
		k, t = strings.TrimSpace(k), strings.TrimSpace(t)
		if !ok || k == "" || t == "" {
			return nil, fmt.Errorf("api keys: %q is not key=tenant", pair)
		}
		if _, dup := keys[k]; dup {
			return nil, fmt.Errorf("api keys: key for tenant %q listed twice", t)
		}
		keys[k] = t
	}
	if len(keys) == 0 {
		return nil, errors.New("api keys: none given")
	}
	return keys, nil
}

// Tenant implements Authenticator.
func (a *KeyAuth) Tenant(r *http.Request) (string, error) {
	key := r.Header.Get(APIKeyHeader)
	if key == "" {
		return "", ErrMissingKey
	}
	t, ok := a.tenants[sha256.Sum256([]byte(key))]
	if !ok {
		return "", ErrUnknownKey
	}
	return t, nil
}

// GatewayAuth trusts API Gateway: it already checked the key and applied
// the usage plan, and names the key's id in the proxy event's request
// context; that id is the tenant.
type GatewayAuth struct{}

// Tenant implements Authenticator.
func (GatewayAuth) Tenant(r *http.Request) (string, error) {
	if rc, ok := gatewayContext(r.Context()); ok && rc.Identity.APIKeyID != "" {
		if err := checkTenant(rc.Identity.APIKeyID); err != nil {
			return "", fmt.Errorf("gateway api key id: %v: %w", err, ErrUnknownKey)
		}
		return rc.Identity.APIKeyID, nil
	}
	// Only reached when the method is deployed without a required key.
	if r.Header.Get(APIKeyHeader) == "" {
		return "", ErrMissingKey
	}
	return "", fmt.Errorf("no api key id in the gateway context: %w", ErrUnknownKey)
}

func gatewayContext(ctx context.Context) (events.APIGatewayProxyRequestContext, bool) {
	return core.GetAPIGatewayContextFromContext(ctx)
}

// checkTenant keeps tenants safe to use inside storage keys.
func checkTenant(t string) error {
	if t == "" || len(t) > 128 {
		return fmt.Errorf("tenant %q must be 1 to 128 characters", t)
	}
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("tenant %q may hold only letters, digits, '-' and '_'", t)
		}
	}
	return nil
}
