package infra

import (
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

func TestBuckets(t *testing.T) {
	s := stackUnderTest(t)
	for _, tc := range []struct {
		prefix     string
		kms        bool
		expireDays float64 // 0: no expiry rule
		versioned  bool
	}{
		{"StorageUploads", true, float64(s.cfg.UploadsDays), false},
		{"StorageOutputs", true, float64(s.cfg.OutputsDays), false},
		{"StorageModels", true, 0, true},
		{"StorageAccessLogs", false, 365, false},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			id, b := s.one(t, "AWS::S3::Bucket", tc.prefix)
			p := b.Properties
			algo := get(p, "BucketEncryption", "ServerSideEncryptionConfiguration", 0, "ServerSideEncryptionByDefault", "SSEAlgorithm")
			if want := map[bool]string{true: "aws:kms", false: "AES256"}[tc.kms]; algo != want {
				t.Errorf("encryption %v, want %s", algo, want)
			}
			if tc.kms && get(p, "BucketEncryption", "ServerSideEncryptionConfiguration", 0, "ServerSideEncryptionByDefault", "KMSMasterKeyID") == nil {
				t.Error("KMS bucket without the service key")
			}
			for _, k := range []string{"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"} {
				if get(p, "PublicAccessBlockConfiguration", k) != true {
					t.Errorf("PublicAccessBlockConfiguration.%s not true", k)
				}
			}
			if tc.kms && get(p, "LoggingConfiguration", "DestinationBucketName") == nil {
				t.Error("no server access logging")
			}
			gotExpiry := 0.0
			for _, r := range get(p, "LifecycleConfiguration", "Rules").([]any) {
				if d, ok := get(r, "ExpirationInDays").(float64); ok {
					gotExpiry = d
				}
			}
			if gotExpiry != tc.expireDays {
				t.Errorf("expiry %v days, want %v", gotExpiry, tc.expireDays)
			}
			if v := get(p, "VersioningConfiguration", "Status") == "Enabled"; v != tc.versioned {
				t.Errorf("versioned %v, want %v", v, tc.versioned)
			}
			// TLS only: the bucket policy denies every request without SecureTransport.
			has(t, "TLS-only policy", func() {
				s.template.HasResourceProperties(jsii.String("AWS::S3::BucketPolicy"), map[string]any{
					"Bucket": ref(id),
					"PolicyDocument": assertions.Match_ObjectLike(&map[string]any{
						"Statement": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
							"Effect":    "Deny",
							"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
						})}),
					}),
				})
			})
		})
	}
}

func TestUploadsCORSAndEvents(t *testing.T) {
	s := stackUnderTest(t)
	id, uploads := s.one(t, "AWS::S3::Bucket", "StorageUploads")
	rule := get(uploads.Properties, "CorsConfiguration", "CorsRules", 0)
	if m := jsonString(get(rule, "AllowedMethods")); !strings.Contains(m, "PUT") {
		t.Errorf("CORS methods %s: browsers upload with PUT", m)
	}
	validateAlias, _ := s.one(t, "AWS::Lambda::Alias", "ValidateFunctionLive")
	has(t, "uploads/ ObjectCreated -> validate alias", func() {
		s.template.HasResourceProperties(jsii.String("Custom::S3BucketNotifications"), map[string]any{
			"BucketName": ref(id),
			"NotificationConfiguration": map[string]any{
				"LambdaFunctionConfigurations": []any{map[string]any{
					"Events":            []any{"s3:ObjectCreated:*"},
					"LambdaFunctionArn": ref(validateAlias),
					"Filter":            map[string]any{"Key": map[string]any{"FilterRules": []any{map[string]any{"Name": "prefix", "Value": UploadsPrefix}}}},
				}},
				"EventBridgeConfiguration": map[string]any{},
			},
		})
	})
	has(t, "GuardDuty malware protection on uploads", func() {
		s.template.HasResourceProperties(jsii.String("AWS::GuardDuty::MalwareProtectionPlan"), map[string]any{
			"ProtectedResource": map[string]any{"S3Bucket": map[string]any{"BucketName": ref(id), "ObjectPrefixes": []any{UploadsPrefix}}},
			"Actions":           map[string]any{"Tagging": map[string]any{"Status": "ENABLED"}},
		})
	})
}
