package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/latentsync/latentsync-service/internal/api"
	"github.com/latentsync/latentsync-service/internal/job"
)

func TestAuth(t *testing.T) {
	e := newEnv(t, options{})
	id := e.create(t, keyA, validBody()).ID
	routes := []struct {
		method, path string
		body         any
	}{
		{"POST", "/v1/jobs", validBody()},
		{"GET", "/v1/jobs", nil},
		{"GET", "/v1/jobs/" + id, nil},
		{"DELETE", "/v1/jobs/" + id, nil},
	}
	for _, r := range routes {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			x := e.call(t, r.method, r.path, "", r.body, nil)
			x.wantError(t, 401, "UNAUTHORIZED", "x-api-key header is missing")
			if x.specErr == nil {
				t.Error("the document accepts a request without a key")
			}
			e.do(t, r.method, r.path, "not-a-key", r.body, nil).wantError(t, 403, "FORBIDDEN", "API key is not valid")
		})
	}
	// Nothing changed: the job still awaits its uploads and is alone.
	if jobs, _, err := e.jobs.List(t.Context(), tenantA, "", 100, ""); err != nil || len(jobs) != 1 || jobs[0].Status != job.AwaitingUpload {
		t.Errorf("after refused requests: %d jobs (%v)", len(jobs), err)
	}
}

func TestOpenAPIDocumentServed(t *testing.T) {
	e := newEnv(t, options{})
	x := e.do(t, "GET", "/v1/openapi.yaml", "", nil, nil)
	if x.status != 200 || !bytes.Equal(x.body, e.spec.raw) || x.header.Get("Content-Type") != "application/yaml" {
		t.Errorf("GET /v1/openapi.yaml: %d %s, %d bytes", x.status, x.header.Get("Content-Type"), len(x.body))
	}
}

func TestUnknownRoutes(t *testing.T) {
	e := newEnv(t, options{})
	tests := []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{"GET", "/v2/jobs", 404, "NOT_FOUND", ""},
		{"GET", "/v1/jobs/abc/logs", 404, "NOT_FOUND", ""},
		{"PUT", "/v1/jobs", 405, "METHOD_NOT_ALLOWED", "GET, POST"},
		{"PATCH", "/v1/jobs/job_00", 405, "METHOD_NOT_ALLOWED", "GET, DELETE"},
		{"POST", "/v1/openapi.yaml", 405, "METHOD_NOT_ALLOWED", "GET"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			x := e.call(t, tc.method, tc.path, keyA, nil, nil)
			x.wantError(t, tc.status, tc.code, "")
			if x.header.Get("Allow") != tc.allow {
				t.Errorf("Allow %q, want %q", x.header.Get("Allow"), tc.allow)
			}
			if !errors.Is(x.specErr, errNoRoute) {
				t.Errorf("the document has %s %s", tc.method, tc.path)
			}
		})
	}
}

func TestParseKeys(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string
		wantErr string
	}{
		{in: "k1=alpha", want: map[string]string{"k1": "alpha"}},
		{in: " k1 = alpha , k2=beta,", want: map[string]string{"k1": "alpha", "k2": "beta"}},
		{in: "k1=alpha,k1=beta", wantErr: "listed twice"},
		{in: "k1", wantErr: "not key=tenant"},
		{in: "=alpha", wantErr: "not key=tenant"},
		{in: "k1=", wantErr: "not key=tenant"},
		{in: " , ", wantErr: "none given"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := api.ParseKeys(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("%v, %v; want %v", got, err, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s -> %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestKeyAuthRejectsUnsafeTenants(t *testing.T) {
	for _, tenant := range []string{"", "a/b", "../x", "white space", strings.Repeat("t", 129)} {
		if _, err := api.NewKeyAuth(map[string]string{"k": tenant}); err == nil {
			t.Errorf("tenant %q accepted", tenant)
		}
	}
	if _, err := api.NewKeyAuth(map[string]string{"": "tenant"}); err == nil {
		t.Error("empty key accepted")
	}
}

// TestGatewayAuth runs the handler the way the API Lambda does: REST API
// proxy events through aws-lambda-go-api-proxy, the tenant being the API
// key id API Gateway put in the request context.
func TestGatewayAuth(t *testing.T) {
	e := newEnv(t, options{auth: api.GatewayAuth{}})
	proxy := httpadapter.New(e.h)
	invoke := func(method, path, keyID string, headers map[string]string, body any) events.APIGatewayProxyResponse {
		t.Helper()
		raw, _ := json.Marshal(body)
		if body == nil {
			raw = nil
		}
		req := events.APIGatewayProxyRequest{
			HTTPMethod: method, Path: path, Resource: path, Headers: headers, Body: string(raw),
			RequestContext: events.APIGatewayProxyRequestContext{
				RequestID: "gw-" + method, Stage: "v1", HTTPMethod: method, Path: path,
				Identity: events.APIGatewayRequestIdentity{APIKeyID: keyID, SourceIP: "198.51.100.7"},
			},
		}
		resp, err := proxy.ProxyWithContext(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	jsonHdr := map[string]string{"Content-Type": "application/json", "x-api-key": "the-key-itself"}

	resp := invoke("POST", "/v1/jobs", "kid123", jsonHdr, validBody())
	var c created
	if err := json.Unmarshal([]byte(resp.Body), &c); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create through the gateway: %d %s", resp.StatusCode, resp.Body)
	}
	if got := http.Header(resp.MultiValueHeaders).Get("X-Request-Id"); got != "gw-POST" {
		t.Errorf("X-Request-Id %q, want the gateway's request id", got)
	}
	if j, err := e.jobs.Get(t.Context(), "kid123", c.ID); err != nil || j.Tenant != "kid123" {
		t.Errorf("job tenant: %v %v", j, err)
	}
	if r := invoke("GET", "/v1/jobs/"+c.ID, "kid123", jsonHdr, nil); r.StatusCode != 200 {
		t.Errorf("owner get: %d %s", r.StatusCode, r.Body)
	}

	refused := []struct {
		name, keyID string
		headers     map[string]string
		status      int
		code        string
	}{
		{"another key", "kid999", jsonHdr, 404, "NOT_FOUND"},
		{"no key at all", "", nil, 401, "UNAUTHORIZED"},
		{"key the gateway did not vouch for", "", jsonHdr, 403, "FORBIDDEN"},
		{"key id unfit for a tenant", "kid/../x", jsonHdr, 403, "FORBIDDEN"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			r := invoke("GET", "/v1/jobs/"+c.ID, tc.keyID, tc.headers, nil)
			var b struct{ Error struct{ Code string } }
			if err := json.Unmarshal([]byte(r.Body), &b); err != nil || r.StatusCode != tc.status || b.Error.Code != tc.code {
				t.Errorf("%d %s, want %d %s", r.StatusCode, r.Body, tc.status, tc.code)
			}
		})
	}
}

// TestAccessLog checks the one log line per request carries what on-call
// searches by.
func TestAccessLog(t *testing.T) {
	e := newEnv(t, options{})
	c := e.create(t, keyA, validBody())
	e.do(t, "GET", "/v1/jobs/"+c.ID, keyA, nil, map[string]string{"X-Request-Id": "trace-me-42"})
	e.do(t, "GET", "/v1/jobs", "bogus", nil, nil)

	type line struct {
		Msg, Tenant, Method, Path string
		RequestID                 string `json:"request_id"`
		JobID                     string `json:"job_id"`
		Status                    int
		Err                       string
	}
	var lines []line
	for _, raw := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		var l line
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			t.Fatalf("log line %q: %v", raw, err)
		}
		if l.Msg == "request" {
			lines = append(lines, l)
		}
	}
	want := []line{
		{Msg: "request", Tenant: tenantA, Method: "POST", Path: "/v1/jobs", JobID: c.ID, Status: 201},
		{Msg: "request", Tenant: tenantA, Method: "GET", Path: "/v1/jobs/" + c.ID, JobID: c.ID, Status: 200, RequestID: "trace-me-42"},
		{Msg: "request", Method: "GET", Path: "/v1/jobs", Status: 403, Err: "unknown API key"},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d request lines, want %d:\n%s", len(lines), len(want), e.logs.String())
	}
	for i, w := range want {
		got := lines[i]
		if w.RequestID == "" {
			if !strings.HasPrefix(got.RequestID, "req_") {
				t.Errorf("line %d: request id %q", i, got.RequestID)
			}
			w.RequestID = got.RequestID
		}
		if got != w {
			t.Errorf("line %d:\n got %+v\nwant %+v", i, got, w)
		}
	}
}
