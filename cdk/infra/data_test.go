package infra

import (
	"reflect"
	"sort"
	"testing"

	awsadapters "github.com/latentsync/latentsync-service/internal/adapters/aws"
)

// TestJobTableMatchesAdapterSchema: the deployed table has exactly the keys,
// attribute types and indexes the DynamoDB adapter queries (the schema its
// emulator tests create).
func TestJobTableMatchesAdapterSchema(t *testing.T) {
	s := stackUnderTest(t)
	_, table := s.one(t, "AWS::DynamoDB::Table", "Jobs")
	p := table.Properties
	schema := awsadapters.JobTableSchema("jobs")

	type kv = map[string]string
	var wantAttrs []kv
	for _, d := range schema.AttributeDefinitions {
		wantAttrs = append(wantAttrs, kv{"AttributeName": *d.AttributeName, "AttributeType": string(d.AttributeType)})
	}
	keys := func(v any) []kv {
		var out []kv
		for _, e := range v.([]any) {
			out = append(out, kv{"AttributeName": get(e, "AttributeName").(string), "KeyType": get(e, "KeyType").(string)})
		}
		return out
	}
	var gotAttrs []kv
	for _, a := range p["AttributeDefinitions"].([]any) {
		gotAttrs = append(gotAttrs, kv{"AttributeName": get(a, "AttributeName").(string), "AttributeType": get(a, "AttributeType").(string)})
	}
	byName := func(s []kv) {
		sort.Slice(s, func(i, j int) bool { return s[i]["AttributeName"] < s[j]["AttributeName"] })
	}
	byName(wantAttrs)
	byName(gotAttrs)
	if !reflect.DeepEqual(gotAttrs, wantAttrs) {
		t.Errorf("attributes %v, want %v", gotAttrs, wantAttrs)
	}
	var wantKey []kv
	for _, e := range schema.KeySchema {
		wantKey = append(wantKey, kv{"AttributeName": *e.AttributeName, "KeyType": string(e.KeyType)})
	}
	if got := keys(p["KeySchema"]); !reflect.DeepEqual(got, wantKey) {
		t.Errorf("key schema %v, want %v", got, wantKey)
	}
	gotIdx := map[string][]kv{}
	for _, g := range p["GlobalSecondaryIndexes"].([]any) {
		name := get(g, "IndexName").(string)
		gotIdx[name] = keys(get(g, "KeySchema"))
		if get(g, "Projection", "ProjectionType") != "ALL" {
			t.Errorf("index %s projection %v, want ALL", name, get(g, "Projection"))
		}
	}
	wantIdx := map[string][]kv{}
	for _, g := range schema.GlobalSecondaryIndexes {
		for _, e := range g.KeySchema {
			wantIdx[*g.IndexName] = append(wantIdx[*g.IndexName], kv{"AttributeName": *e.AttributeName, "KeyType": string(e.KeyType)})
		}
	}
	if !reflect.DeepEqual(gotIdx, wantIdx) {
		t.Errorf("indexes %v, want %v", gotIdx, wantIdx)
	}

	ttl := *awsadapters.JobTableTTL("jobs").TimeToLiveSpecification.AttributeName
	for _, c := range []struct {
		what string
		got  any
		want any
	}{
		{"billing", p["BillingMode"], "PAY_PER_REQUEST"},
		{"PITR", get(p, "PointInTimeRecoverySpecification", "PointInTimeRecoveryEnabled"), true},
		{"SSE", get(p, "SSESpecification", "SSEEnabled"), true},
		{"SSE type", get(p, "SSESpecification", "SSEType"), "KMS"},
		{"TTL attribute", get(p, "TimeToLiveSpecification", "AttributeName"), ttl},
		{"TTL enabled", get(p, "TimeToLiveSpecification", "Enabled"), true},
		{"deletion protection", p["DeletionProtectionEnabled"], true},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}
