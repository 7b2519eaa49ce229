package infra

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/aws/constructs-go/constructs/v10"
)

// Context keys (`cdk deploy -c key=value` or "context" in cdk.json).
const (
	CtxEnvironment        = "environment"
	CtxGPUInstanceType    = "gpuInstanceType"
	CtxMinWorkers         = "minWorkers"
	CtxMaxWorkers         = "maxWorkers"
	CtxSpot               = "spot"
	CtxModelBundleVersion = "modelBundleVersion"
	CtxAlarmEmail         = "alarmEmail"
	CtxEmailFrom          = "emailFrom"
	CtxUsagePlans         = "usagePlans"
	CtxUploadsDays        = "uploadsRetentionDays"
	CtxOutputsDays        = "outputsRetentionDays"
	CtxLogDays            = "logRetentionDays"
	CtxWorkerImage        = "workerImage"
	CtxLambdaAssets       = "lambdaAssets"
	CtxSourceDir          = "sourceDir"
	CtxXRayDaemonImage    = "xrayDaemonImage"
	CtxCORSOrigins        = "corsOrigins"
	CtxMinSyncConfidence  = "minSyncConfidence"
	CtxSpotInstanceTypes  = "spotInstanceTypes"
)

// UsagePlan is one API Gateway usage plan: per-key steady rate and burst
// (requests per second) and a daily request quota.
type UsagePlan struct {
	Name        string  `json:"name"`
	RateLimit   float64 `json:"rateLimit"`
	BurstLimit  float64 `json:"burstLimit"`
	QuotaPerDay float64 `json:"quotaPerDay"`
}

// Config is every deploy-time choice of the stack.
type Config struct {
	Environment     string
	GPUInstanceType string
	MinWorkers      int
	MaxWorkers      int
	Spot            bool // mix Spot GPU instances above one On-Demand instance
	// SpotInstanceTypes are tried beside GPUInstanceType when Spot is on:
	// more types, fewer interruptions.
	SpotInstanceTypes  []string
	ModelBundleVersion string
	AlarmEmail         string // "" = no email subscription on the alarm topic
	EmailFrom          string // "" = notify sends webhooks only
	UsagePlans         []UsagePlan
	UploadsDays        int
	OutputsDays        int
	LogDays            int
	WorkerImage        string // "" = DefaultWorkerImage
	CORSOrigins        []string
	MinSyncConfidence  float64
	// LambdaAssets holds the zip functions' directories (Functions), each
	// with the `bootstrap` binary built by `make lambdas`.
	LambdaAssets string
	// SourceDir is the repository root: the build context of the worker
	// image (gpuworker/Dockerfile) and of the validate function's image
	// (lambdas/validate/Dockerfile), filtered by .dockerignore.
	SourceDir string
	// XRayDaemonImage, when set, runs the X-Ray daemon beside the worker; it
	// must be in a registry the isolated subnets reach (ECR), so there is no
	// public default.
	XRayDaemonImage string
}

// Functions are the Lambda functions deployed as zip assets, by asset
// directory name. validate is a container image (ValidateDockerfile), built
// by `cdk deploy`, so it has no directory here.
var Functions = []string{"api", "notify"}

// DefaultConfig is the configuration when no context is given. The
// defaults follow DESIGN.md: uploads kept 7 days, outputs 30.
func DefaultConfig() Config {
	return Config{
		Environment:        "dev",
		GPUInstanceType:    "g5.xlarge",
		MinWorkers:         0,
		MaxWorkers:         4,
		SpotInstanceTypes:  []string{"g6.xlarge", "g5.2xlarge"},
		ModelBundleVersion: "1.5.0",
		UsagePlans: []UsagePlan{
			{Name: "standard", RateLimit: 5, BurstLimit: 10, QuotaPerDay: 2000},
			{Name: "premium", RateLimit: 25, BurstLimit: 50, QuotaPerDay: 20000},
		},
		UploadsDays:       7,
		OutputsDays:       30,
		LogDays:           30,
		CORSOrigins:       []string{"*"},
		MinSyncConfidence: 5,
		LambdaAssets:      filepath.Join("bin", "lambdas"),
		SourceDir:         ".",
	}
}

// ConfigFromContext reads the context of node over DefaultConfig.
func ConfigFromContext(node constructs.Node) (Config, error) {
	cfg := DefaultConfig()
	get := func(key string) (string, bool) {
		v := node.TryGetContext(&key)
		switch v := v.(type) {
		case nil:
			return "", false
		case string:
			return v, v != ""
		default:
			// cdk.json values arrive decoded; re-encode so one parser serves both.
			b, err := json.Marshal(v)
			if err != nil {
				return "", false
			}
			return string(b), true
		}
	}
	var errs []string
	str := func(key string, dst *string) {
		if v, ok := get(key); ok {
			*dst = v
		}
	}
	integer := func(key string, dst *int) {
		if v, ok := get(key); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %q is not an integer", key, v))
				return
			}
			*dst = n
		}
	}
	str(CtxEnvironment, &cfg.Environment)
	str(CtxGPUInstanceType, &cfg.GPUInstanceType)
	integer(CtxMinWorkers, &cfg.MinWorkers)
	integer(CtxMaxWorkers, &cfg.MaxWorkers)
	if v, ok := get(CtxSpot); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %q is not a boolean", CtxSpot, v))
		}
		cfg.Spot = b
	}
	str(CtxModelBundleVersion, &cfg.ModelBundleVersion)
	str(CtxAlarmEmail, &cfg.AlarmEmail)
	str(CtxEmailFrom, &cfg.EmailFrom)
	if v, ok := get(CtxUsagePlans); ok {
		var plans []UsagePlan
		if err := json.Unmarshal([]byte(v), &plans); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", CtxUsagePlans, err))
		} else {
			cfg.UsagePlans = plans
		}
	}
	integer(CtxUploadsDays, &cfg.UploadsDays)
	integer(CtxOutputsDays, &cfg.OutputsDays)
	integer(CtxLogDays, &cfg.LogDays)
	str(CtxWorkerImage, &cfg.WorkerImage)
	str(CtxLambdaAssets, &cfg.LambdaAssets)
	str(CtxSourceDir, &cfg.SourceDir)
	str(CtxXRayDaemonImage, &cfg.XRayDaemonImage)
	if v, ok := get(CtxCORSOrigins); ok {
		cfg.CORSOrigins = strings.Split(v, ",")
	}
	if v, ok := get(CtxSpotInstanceTypes); ok {
		cfg.SpotInstanceTypes = strings.Split(v, ",")
	}
	if v, ok := get(CtxMinSyncConfidence); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %q is not a number", CtxMinSyncConfidence, v))
		}
		cfg.MinSyncConfidence = f
	}
	if len(errs) > 0 {
		return cfg, fmt.Errorf("cdk context: %s", strings.Join(errs, "; "))
	}
	return cfg, cfg.Validate()
}

// Validate reports the first configuration a deploy would fail on, before
// CloudFormation gets half way.
func (c Config) Validate() error {
	switch {
	case c.Environment == "" || strings.ContainsAny(c.Environment, " /:"):
		return fmt.Errorf("config: environment %q must be a short name", c.Environment)
	case c.MinWorkers < 0 || c.MaxWorkers < 1 || c.MinWorkers > c.MaxWorkers:
		return fmt.Errorf("config: workers min %d / max %d: need 0 <= min <= max, max >= 1", c.MinWorkers, c.MaxWorkers)
	case c.UploadsDays < 1 || c.OutputsDays < 1 || c.LogDays < 1:
		return fmt.Errorf("config: retention days must be positive")
	case len(c.UsagePlans) == 0:
		return fmt.Errorf("config: at least one usage plan is needed")
	case c.ModelBundleVersion == "":
		return fmt.Errorf("config: model bundle version is empty")
	}
	for _, p := range c.UsagePlans {
		if p.Name == "" || p.RateLimit <= 0 || p.BurstLimit < 1 || p.QuotaPerDay < 1 {
			return fmt.Errorf("config: usage plan %+v needs a name, rate > 0, burst >= 1, quota >= 1", p)
		}
	}
	// A missing binary would otherwise surface as a deploy of an empty function.
	for _, fn := range Functions {
		p := filepath.Join(c.LambdaAssets, fn, "bootstrap")
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("config: lambda asset %s missing (run `make lambdas`): %w", p, err)
		}
	}
	return nil
}
