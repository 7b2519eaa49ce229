package infra

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

func TestMain(m *testing.M) {
	code := m.Run()
	// Without it every test binary leaves a jsii runtime directory in /tmp.
	jsii.Close()
	os.Exit(code)
}

// synthesized is one synthesized stack with the AwsSolutions checks applied.
type synthesized struct {
	cfg         Config
	template    assertions.Template
	annotations assertions.Annotations
	resources   map[string]resource // logical id -> resource, from the template JSON
	outputs     map[string]any
}

type resource struct {
	Type       string         `json:"Type"`
	Properties map[string]any `json:"Properties"`
}

// synth builds the stack the way `make synth` does: cdk.json's context
// (feature flags) plus extra context, with cdk-nag's AwsSolutions pack.
func synth(extra map[string]any) (*synthesized, error) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "cdk.json"))
	if err != nil {
		return nil, fmt.Errorf("read cdk.json: %w", err)
	}
	var cdkJSON struct {
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(raw, &cdkJSON); err != nil {
		return nil, fmt.Errorf("parse cdk.json: %w", err)
	}
	ctx := cdkJSON.Context
	assets, err := lambdaAssets()
	if err != nil {
		return nil, err
	}
	ctx[CtxLambdaAssets] = assets
	ctx[CtxSourceDir] = filepath.Join("..", "..")
	for k, v := range extra {
		ctx[k] = v
	}
	out, err := os.MkdirTemp("", "cdk-test-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(out)
	app := awscdk.NewApp(&awscdk.AppProps{Context: &ctx, Outdir: jsii.String(out)})
	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	cfg, err := ConfigFromContext(app.Node())
	if err != nil {
		return nil, err
	}
	stack, err := NewStack(app, StackName(cfg), cfg, nil)
	if err != nil {
		return nil, err
	}
	s := &synthesized{cfg: cfg, template: assertions.Template_FromStack(stack, nil)}
	s.annotations = assertions.Annotations_FromStack(stack)
	b, err := json.Marshal(s.template.ToJSON())
	if err != nil {
		return nil, err
	}
	var doc struct {
		Resources map[string]resource `json:"Resources"`
		Outputs   map[string]any      `json:"Outputs"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	s.resources, s.outputs = doc.Resources, doc.Outputs
	return s, nil
}

// lambdaAssets is the directory of the built functions (`make test` sets
// it to bin/lambdas); otherwise placeholder binaries stand in: the template
// does not depend on the binaries' content, only on their presence.
func lambdaAssets() (string, error) {
	if dir := os.Getenv("LATENTSYNC_LAMBDA_ASSETS"); dir != "" {
		return dir, nil
	}
	dir, err := os.MkdirTemp("", "lambda-assets-")
	if err != nil {
		return "", err
	}
	for _, fn := range Functions {
		if err := os.MkdirAll(filepath.Join(dir, fn), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, fn, "bootstrap"), []byte("#!/bin/sh\n# placeholder "+fn+"\n"), 0o755); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// defaultStack is synthesized once for the whole package: synthesis is the
// slow part (seconds per stack).
var defaultStack = sync.OnceValues(func() (*synthesized, error) { return synth(nil) })

func stackUnderTest(t *testing.T) *synthesized {
	t.Helper()
	s, err := defaultStack()
	if err != nil {
		t.Fatalf("synth: %v", err)
	}
	return s
}

// has asserts with the assertions library; its failures are JavaScript
// errors, which arrive here as panics.
func has(t *testing.T, what string, check func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: %v", what, r)
		}
	}()
	check()
}

// ofType returns the logical ids of the resources of one type whose id
// starts with prefix, sorted.
func (s *synthesized) ofType(typ, prefix string) []string {
	var ids []string
	for id, r := range s.resources {
		if r.Type == typ && strings.HasPrefix(id, prefix) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// one returns the single resource of a type under a logical id prefix.
func (s *synthesized) one(t *testing.T, typ, prefix string) (string, resource) {
	t.Helper()
	ids := s.ofType(typ, prefix)
	if len(ids) != 1 {
		t.Fatalf("%s %s*: found %v, want exactly one", typ, prefix, ids)
	}
	return ids[0], s.resources[ids[0]]
}

// get walks a decoded JSON value by keys and indexes.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func ref(id string) map[string]any { return map[string]any{"Ref": id} }

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestNagAwsSolutions(t *testing.T) {
	for _, variant := range []struct {
		name string
		s    func(*testing.T) *synthesized
	}{
		{"default", stackUnderTest},
		{"spot", spotStack},
	} {
		t.Run(variant.name, func(t *testing.T) {
			s := variant.s(t)
			errs := s.annotations.FindError(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*")))
			for _, e := range *errs {
				t.Errorf("unsuppressed %s: %v", *e.Id, e.Entry.Data)
			}
		})
	}
}
