package infra

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
)

func TestConfigFromContext(t *testing.T) {
	assets, err := lambdaAssets()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		ctx     map[string]any
		check   func(Config) bool
		wantErr string
	}{
		{"defaults", nil, func(c Config) bool {
			return c.Environment == "dev" && c.GPUInstanceType == "g5.xlarge" && !c.Spot && c.UploadsDays == 7 && c.OutputsDays == 30
		}, ""},
		{"strings from -c", map[string]any{CtxSpot: "true", CtxMaxWorkers: "10", CtxMinWorkers: "2"}, func(c Config) bool {
			return c.Spot && c.MaxWorkers == 10 && c.MinWorkers == 2
		}, ""},
		{"values from cdk.json", map[string]any{CtxSpot: true, CtxMaxWorkers: 6, CtxUsagePlans: []any{
			map[string]any{"name": "x", "rateLimit": 1, "burstLimit": 2, "quotaPerDay": 3},
		}}, func(c Config) bool {
			return c.Spot && c.MaxWorkers == 6 && reflect.DeepEqual(c.UsagePlans, []UsagePlan{{"x", 1, 2, 3}})
		}, ""},
		{"bad integer", map[string]any{CtxMaxWorkers: "many"}, nil, "not an integer"},
		{"min above max", map[string]any{CtxMinWorkers: "5", CtxMaxWorkers: "2"}, nil, "min 5 / max 2"},
		{"bad plan", map[string]any{CtxUsagePlans: `[{"name":"x"}]`}, nil, "usage plan"},
		{"missing assets", map[string]any{CtxLambdaAssets: filepath.Join(t.TempDir(), "none")}, nil, "make lambdas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := map[string]any{CtxLambdaAssets: assets}
			for k, v := range tc.ctx {
				ctx[k] = v
			}
			app := awscdk.NewApp(&awscdk.AppProps{Context: &ctx, Outdir: jsii.String(t.TempDir())})
			cfg, err := ConfigFromContext(app.Node())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(cfg) {
				t.Errorf("config %+v", cfg)
			}
		})
	}
}

func TestEcrRepository(t *testing.T) {
	for _, tc := range []struct {
		image string
		repo  string
		ok    bool
	}{
		{"", "", false},
		{"123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/worker:1.2", "team/worker", true},
		{"123456789012.dkr.ecr.eu-west-1.amazonaws.com/worker@sha256:abc", "worker", true},
		{"ghcr.io/org/worker:1", "", false},
	} {
		repo, ok := ecrRepository(tc.image)
		if repo != tc.repo || ok != tc.ok {
			t.Errorf("ecrRepository(%q) = %q, %v; want %q, %v", tc.image, repo, ok, tc.repo, tc.ok)
		}
	}
}
