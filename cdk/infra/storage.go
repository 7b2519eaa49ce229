package infra

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsguardduty"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// Object key prefixes of DESIGN.md section 3.
const (
	UploadsPrefix = "uploads/"
	OutputsPrefix = "outputs/"
	ModelsPrefix  = "models/latentsync/"
)

// Storage is the service's buckets.
type Storage struct {
	AccessLogs, Uploads, Outputs, Models awss3.Bucket
}

func newStorage(scope constructs.Construct, cfg Config, key awskms.IKey) *Storage {
	c := constructs.NewConstruct(scope, jsii.String("Storage"))
	logs := awss3.NewBucket(c, jsii.String("AccessLogs"), &awss3.BucketProps{
		// Server access logs can only be delivered to an SSE-S3 bucket.
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		EnforceSSL:        jsii.Bool(true),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		LifecycleRules: &[]*awss3.LifecycleRule{{
			Id: jsii.String("expire-access-logs"), Expiration: awscdk.Duration_Days(jsii.Number(365)),
		}},
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	cdknag.NagSuppressions_AddResourceSuppressions(logs, &[]*cdknag.NagPackSuppression{{
		Id:     jsii.String("AwsSolutions-S1"),
		Reason: jsii.String("This is the access-log target itself; logging it into itself would loop."),
	}}, jsii.Bool(true))

	bucket := func(id, logPrefix string, p *awss3.BucketProps) awss3.Bucket {
		p.Encryption = awss3.BucketEncryption_KMS
		p.EncryptionKey = key
		p.BucketKeyEnabled = jsii.Bool(true) // one KMS call per object batch, not per request
		p.BlockPublicAccess = awss3.BlockPublicAccess_BLOCK_ALL()
		p.EnforceSSL = jsii.Bool(true)
		p.ObjectOwnership = awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED
		p.ServerAccessLogsBucket = logs
		p.ServerAccessLogsPrefix = jsii.String(logPrefix)
		p.RemovalPolicy = awscdk.RemovalPolicy_RETAIN
		return awss3.NewBucket(c, jsii.String(id), p)
	}
	origins := make([]*string, len(cfg.CORSOrigins))
	for i, o := range cfg.CORSOrigins {
		origins[i] = jsii.String(o)
	}
	s := &Storage{AccessLogs: logs}
	s.Uploads = bucket("Uploads", "uploads/", &awss3.BucketProps{
		LifecycleRules: &[]*awss3.LifecycleRule{{
			Id:                                  jsii.String("expire-uploads"),
			Expiration:                          awscdk.Duration_Days(jsii.Number(float64(cfg.UploadsDays))),
			AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(1)),
		}},
		// Browsers PUT straight to the presigned URLs.
		Cors: &[]*awss3.CorsRule{{
			AllowedMethods: &[]awss3.HttpMethods{awss3.HttpMethods_PUT},
			AllowedOrigins: &origins,
			AllowedHeaders: jsii.Strings("*"),
			ExposedHeaders: jsii.Strings("ETag"),
			MaxAge:         jsii.Number(3000),
		}},
		// GuardDuty Malware Protection delivers its scan results through
		// EventBridge; enabling it here keeps the stack's notification
		// configuration from dropping GuardDuty's.
		EventBridgeEnabled: jsii.Bool(true),
	})
	s.Outputs = bucket("Outputs", "outputs/", &awss3.BucketProps{
		LifecycleRules: &[]*awss3.LifecycleRule{{
			Id:                                  jsii.String("expire-outputs"),
			Expiration:                          awscdk.Duration_Days(jsii.Number(float64(cfg.OutputsDays))),
			AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(1)),
		}},
	})
	s.Models = bucket("Models", "models/", &awss3.BucketProps{
		// A bundle version must never change under a worker; versioning makes
		// an accidental overwrite recoverable.
		Versioned: jsii.Bool(true),
		LifecycleRules: &[]*awss3.LifecycleRule{{
			Id:                          jsii.String("expire-noncurrent-models"),
			NoncurrentVersionExpiration: awscdk.Duration_Days(jsii.Number(90)),
		}},
	})
	newMalwareProtection(c, s.Uploads, key)
	return s
}

// newMalwareProtection scans every upload with GuardDuty Malware Protection
// for S3; GuardDuty tags each object with GuardDutyMalwareScanStatus, which
// validation reads (a threat is MALWARE_DETECTED).
func newMalwareProtection(scope constructs.Construct, uploads awss3.IBucket, key awskms.IKey) awsguardduty.CfnMalwareProtectionPlan {
	role := awsiam.NewRole(scope, jsii.String("MalwareProtectionRole"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("malware-protection-plan.guardduty.amazonaws.com"), nil),
		Description: jsii.String("GuardDuty Malware Protection for S3 on the uploads bucket"),
	})
	stack := awscdk.Stack_Of(scope)
	ruleArn := stack.FormatArn(&awscdk.ArnComponents{
		Service: jsii.String("events"), Resource: jsii.String("rule"),
		ResourceName: jsii.String("DO-NOT-DELETE-AmazonGuardDutyMalwareProtectionS3*"),
	})
	objects := uploads.ArnForObjects(jsii.String("*"))
	// The policy GuardDuty documents for a plan's role, scoped to this bucket and key.
	for _, st := range []*awsiam.PolicyStatementProps{
		{
			Sid:        jsii.String("ManagedRule"),
			Actions:    jsii.Strings("events:PutRule", "events:DeleteRule", "events:PutTargets", "events:RemoveTargets"),
			Resources:  &[]*string{ruleArn},
			Conditions: &map[string]interface{}{"StringLike": map[string]string{"events:ManagedBy": "malware-protection-plan.guardduty.amazonaws.com"}},
		},
		{Sid: jsii.String("MonitorManagedRule"), Actions: jsii.Strings("events:DescribeRule", "events:ListTargetsByRule"), Resources: &[]*string{ruleArn}},
		{
			Sid:       jsii.String("ScanAndTag"),
			Actions:   jsii.Strings("s3:GetObject", "s3:GetObjectVersion", "s3:PutObjectTagging", "s3:GetObjectTagging", "s3:PutObjectVersionTagging", "s3:GetObjectVersionTagging"),
			Resources: &[]*string{objects},
		},
		{
			Sid:       jsii.String("BucketSetup"),
			Actions:   jsii.Strings("s3:PutBucketNotification", "s3:GetBucketNotification", "s3:ListBucket"),
			Resources: &[]*string{uploads.BucketArn()},
		},
		{
			Sid:       jsii.String("ValidationObject"),
			Actions:   jsii.Strings("s3:PutObject"),
			Resources: &[]*string{uploads.ArnForObjects(jsii.String("malware-protection-resource-validation-object"))},
		},
		{
			Sid:        jsii.String("DecryptForScan"),
			Actions:    jsii.Strings("kms:GenerateDataKey", "kms:Decrypt"),
			Resources:  &[]*string{key.KeyArn()},
			Conditions: &map[string]interface{}{"StringLike": map[string]string{"kms:ViaService": *awscdk.Fn_Sub(jsii.String("s3.${AWS::Region}.amazonaws.com"), nil)}},
		},
	} {
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(st))
	}
	cdknag.NagSuppressions_AddResourceSuppressions(role, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("GuardDuty scans and tags every object of the uploads bucket (bucket/*) and manages its own " +
			"EventBridge rules, whose names it chooses under the DO-NOT-DELETE-AmazonGuardDutyMalwareProtectionS3 prefix."),
	}}, jsii.Bool(true))
	plan := awsguardduty.NewCfnMalwareProtectionPlan(scope, jsii.String("UploadsMalwareProtection"), &awsguardduty.CfnMalwareProtectionPlanProps{
		Role: role.RoleArn(),
		ProtectedResource: &awsguardduty.CfnMalwareProtectionPlan_CFNProtectedResourceProperty{
			S3Bucket: &awsguardduty.CfnMalwareProtectionPlan_S3BucketProperty{
				BucketName:     uploads.BucketName(),
				ObjectPrefixes: jsii.Strings(UploadsPrefix),
			},
		},
		Actions: &awsguardduty.CfnMalwareProtectionPlan_CFNActionsProperty{
			Tagging: &awsguardduty.CfnMalwareProtectionPlan_CFNTaggingProperty{Status: jsii.String("ENABLED")},
		},
	})
	// The plan validates the role when it is created: the policy must exist first.
	plan.Node().AddDependency(role)
	return plan
}
