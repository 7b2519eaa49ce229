package api_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// specPath is the document the API Lambda embeds and serves.
const specPath = "openapi.yaml"

// spec checks traffic against the OpenAPI document, so the handler and the
// document cannot drift apart: every response must be one the document
// describes, and a request is valid by the document exactly when the test
// says it is.
type spec struct {
	raw    []byte
	router routers.Router
}

func loadSpec(t testing.TB) *spec {
	t.Helper()
	raw, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatalf("load %s: %v", specPath, err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("%s is not a valid OpenAPI document: %v", specPath, err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatalf("router for %s: %v", specPath, err)
	}
	return &spec{raw: raw, router: router}
}

var errNoRoute = errors.New("the document has no such operation")

// check validates one exchange. It returns the request's validation error
// (errNoRoute when the document lacks the operation, and then the response
// is not checked); a response the document does not describe fails the test.
func (s *spec) check(t testing.TB, req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) error {
	t.Helper()
	route, params, err := s.router.FindRoute(req)
	if err != nil {
		return errNoRoute
	}
	ctx := context.Background()
	in := &openapi3filter.RequestValidationInput{
		Request: req.Clone(ctx), PathParams: params, Route: route,
		Options: &openapi3filter.Options{
			MultiError: true,
			// The scheme is an API key in a header: present is all a
			// document can say; the handler decides whether it is valid.
			AuthenticationFunc: func(_ context.Context, ai *openapi3filter.AuthenticationInput) error {
				if ai.RequestValidationInput.Request.Header.Get(ai.SecurityScheme.Name) == "" {
					return errors.New("no " + ai.SecurityScheme.Name)
				}
				return nil
			},
		},
	}
	in.Request.Body = io.NopCloser(bytes.NewReader(reqBody))
	reqErr := openapi3filter.ValidateRequest(ctx, in)

	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("%s %s -> %d: response does not match %s: %v\nbody: %s",
			req.Method, req.URL, resp.StatusCode, specPath, err, respBody)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Errorf("%s %s -> %d: no X-Request-Id header", req.Method, req.URL, resp.StatusCode)
	}
	return reqErr
}
