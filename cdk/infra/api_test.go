package infra

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// TestAPIRoutesRequireKeys: the routes of DESIGN.md section 3, each with an
// API key, request validation and the API function behind it.
func TestAPIRoutesRequireKeys(t *testing.T) {
	s := stackUnderTest(t)
	paths := map[string]string{} // resource logical id -> path
	for _, id := range s.ofType("AWS::ApiGateway::Resource", "") {
		paths[id] = get(s.resources[id].Properties, "PathPart").(string)
	}
	apiAlias, _ := s.one(t, "AWS::Lambda::Alias", "ApiFunctionLive")
	var routes []string
	for _, id := range s.ofType("AWS::ApiGateway::Method", "") {
		p := s.resources[id].Properties
		route := p["HttpMethod"].(string) + " " + paths[jsonRef(p["ResourceId"])]
		routes = append(routes, route)
		if p["ApiKeyRequired"] != true {
			t.Errorf("%s: ApiKeyRequired = %v", route, p["ApiKeyRequired"])
		}
		if p["RequestValidatorId"] == nil {
			t.Errorf("%s: no request validator", route)
		}
		if get(p, "Integration", "Type") != "AWS_PROXY" || !strings.Contains(jsonString(get(p, "Integration", "Uri")), apiAlias) {
			t.Errorf("%s: integration %s is not a proxy to the api alias", route, jsonString(p["Integration"]))
		}
	}
	sort.Strings(routes)
	want := []string{"DELETE {id}", "GET jobs", "GET {id}", "POST jobs"}
	if !reflect.DeepEqual(routes, want) {
		t.Errorf("routes %v, want %v", routes, want)
	}
	has(t, "POST body model", func() {
		s.template.HasResourceProperties(jsii.String("AWS::ApiGateway::Model"), map[string]any{
			"Schema": assertions.Match_ObjectLike(&map[string]any{"required": []any{"video", "audio"}}),
		})
	})
	has(t, "validator checks body and parameters", func() {
		s.template.HasResourceProperties(jsii.String("AWS::ApiGateway::RequestValidator"), map[string]any{
			"ValidateRequestBody": true, "ValidateRequestParameters": true,
		})
	})
}

func jsonRef(v any) string {
	if r, ok := get(v, "Ref").(string); ok {
		return r
	}
	return ""
}

func TestAPIStageAndPlans(t *testing.T) {
	s := stackUnderTest(t)
	has(t, "stage: tracing, access logs, method logging", func() {
		s.template.HasResourceProperties(jsii.String("AWS::ApiGateway::Stage"), map[string]any{
			"StageName":      s.cfg.Environment,
			"TracingEnabled": true,
			"AccessLogSetting": assertions.Match_ObjectLike(&map[string]any{
				"DestinationArn": assertions.Match_AnyValue(), "Format": assertions.Match_AnyValue(),
			}),
			"MethodSettings": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
				"LoggingLevel": "ERROR", "MetricsEnabled": true, "DataTraceEnabled": false,
			})}),
		})
	})
	for _, p := range s.cfg.UsagePlans {
		has(t, "usage plan "+p.Name, func() {
			s.template.HasResourceProperties(jsii.String("AWS::ApiGateway::UsagePlan"), map[string]any{
				"UsagePlanName": "latentsync-" + s.cfg.Environment + "-" + p.Name,
				"Throttle":      map[string]any{"RateLimit": p.RateLimit, "BurstLimit": p.BurstLimit},
				"Quota":         map[string]any{"Limit": p.QuotaPerDay, "Period": "DAY"},
				"ApiStages":     assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{"Stage": assertions.Match_AnyValue()})}),
			})
		})
	}
	aclID, acl := s.one(t, "AWS::WAFv2::WebACL", "Api")
	var groups []string
	for _, r := range acl.Properties["Rules"].([]any) {
		if g, ok := get(r, "Statement", "ManagedRuleGroupStatement", "Name").(string); ok {
			groups = append(groups, g)
		}
	}
	if !reflect.DeepEqual(groups, ManagedRuleGroups) {
		t.Errorf("managed rule groups %v, want %v", groups, ManagedRuleGroups)
	}
	has(t, "web ACL associated with the stage", func() {
		s.template.HasResourceProperties(jsii.String("AWS::WAFv2::WebACLAssociation"), map[string]any{
			"WebACLArn": map[string]any{"Fn::GetAtt": []any{aclID, "Arn"}},
		})
	})
}
