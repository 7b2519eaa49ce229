package infra

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigateway"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awswafv2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// WAF managed rule groups in front of the API (AWS's baseline set).
var ManagedRuleGroups = []string{
	"AWSManagedRulesCommonRuleSet",
	"AWSManagedRulesKnownBadInputsRuleSet",
	"AWSManagedRulesAmazonIpReputationList",
}

// newAPI is the REST API of DESIGN.md section 3: every /v1 route proxies to
// the API function; API Gateway checks the key, the plan's limits and the
// request shape before the function runs.
func newAPI(scope constructs.Construct, cfg Config, handler awslambda.IFunction) awsapigateway.RestApi {
	c := constructs.NewConstruct(scope, jsii.String("Api"))
	access := awslogs.NewLogGroup(c, jsii.String("AccessLogs"), &awslogs.LogGroupProps{
		Retention: retention(cfg.LogDays), RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	api := awsapigateway.NewRestApi(c, jsii.String("Rest"), &awsapigateway.RestApiProps{
		RestApiName:   jsii.String("latentsync-" + cfg.Environment),
		Description:   jsii.String("LatentSync lip-sync API v1"),
		EndpointTypes: &[]awsapigateway.EndpointType{awsapigateway.EndpointType_REGIONAL},
		// Execution logs need the account's API Gateway CloudWatch role.
		CloudWatchRole:   jsii.Bool(true),
		ApiKeySourceType: awsapigateway.ApiKeySourceType_HEADER,
		DefaultMethodOptions: &awsapigateway.MethodOptions{
			ApiKeyRequired: jsii.Bool(true),
		},
		DeployOptions: &awsapigateway.StageOptions{
			StageName:            jsii.String(cfg.Environment),
			TracingEnabled:       jsii.Bool(true),
			AccessLogDestination: awsapigateway.NewLogGroupLogDestination(access),
			AccessLogFormat: awsapigateway.AccessLogFormat_JsonWithStandardFields(&awsapigateway.JsonWithStandardFieldProps{
				Caller: jsii.Bool(false), HttpMethod: jsii.Bool(true), Ip: jsii.Bool(true), Protocol: jsii.Bool(true),
				RequestTime: jsii.Bool(true), ResourcePath: jsii.Bool(true), ResponseLength: jsii.Bool(true),
				Status: jsii.Bool(true), User: jsii.Bool(true),
			}),
			LoggingLevel:   awsapigateway.MethodLoggingLevel_ERROR,
			MetricsEnabled: jsii.Bool(true),
			// Request bodies carry webhook URLs and e-mail addresses: keep them out of logs.
			DataTraceEnabled: jsii.Bool(false),
		},
	})
	validator := api.AddRequestValidator(jsii.String("Validator"), &awsapigateway.RequestValidatorOptions{
		ValidateRequestBody: jsii.Bool(true), ValidateRequestParameters: jsii.Bool(true),
	})
	createJob := api.AddModel(jsii.String("CreateJob"), &awsapigateway.ModelOptions{
		ContentType: jsii.String("application/json"),
		ModelName:   jsii.String("CreateJob"),
		Schema:      createJobSchema(),
	})
	integration := awsapigateway.NewLambdaIntegration(handler, &awsapigateway.LambdaIntegrationOptions{Proxy: jsii.Bool(true)})
	params := func(names map[string]bool) *map[string]*bool {
		m := map[string]*bool{}
		for n, required := range names {
			m[n] = jsii.Bool(required)
		}
		return &m
	}
	jobs := api.Root().AddResource(jsii.String("v1"), nil).AddResource(jsii.String("jobs"), nil)
	jobs.AddMethod(jsii.String("POST"), integration, &awsapigateway.MethodOptions{
		RequestValidator:  validator,
		RequestModels:     &map[string]awsapigateway.IModel{"application/json": createJob},
		RequestParameters: params(map[string]bool{"method.request.header.Idempotency-Key": false}),
	})
	jobs.AddMethod(jsii.String("GET"), integration, &awsapigateway.MethodOptions{
		RequestValidator: validator,
		RequestParameters: params(map[string]bool{
			"method.request.querystring.status": false, "method.request.querystring.limit": false,
			"method.request.querystring.cursor": false,
		}),
	})
	job := jobs.AddResource(jsii.String("{id}"), nil)
	for _, m := range []string{"GET", "DELETE"} {
		job.AddMethod(jsii.String(m), integration, &awsapigateway.MethodOptions{
			RequestValidator:  validator,
			RequestParameters: params(map[string]bool{"method.request.path.id": true}),
		})
	}
	// Gateway-made errors in the service's error shape ({"error":{"code","message"}}).
	for _, r := range []struct {
		id   string
		typ  awsapigateway.ResponseType
		code string
	}{
		{"BadBody", awsapigateway.ResponseType_BAD_REQUEST_BODY(), "INVALID_REQUEST"},
		{"BadParameters", awsapigateway.ResponseType_BAD_REQUEST_PARAMETERS(), "INVALID_REQUEST"},
		{"Throttled", awsapigateway.ResponseType_THROTTLED(), "RATE_LIMITED"},
		{"Quota", awsapigateway.ResponseType_QUOTA_EXCEEDED(), "QUOTA_EXCEEDED"},
		{"Forbidden", awsapigateway.ResponseType_INVALID_API_KEY(), "FORBIDDEN"},
	} {
		api.AddGatewayResponse(jsii.String(r.id), &awsapigateway.GatewayResponseOptions{
			Type: r.typ,
			Templates: &map[string]*string{"application/json": jsii.String(
				`{"error":{"code":"` + r.code + `","message":$context.error.messageString}}`)},
		})
	}
	for _, p := range cfg.UsagePlans {
		api.AddUsagePlan(jsii.String("Plan-"+p.Name), &awsapigateway.UsagePlanProps{
			Name:      jsii.String("latentsync-" + cfg.Environment + "-" + p.Name),
			Throttle:  &awsapigateway.ThrottleSettings{RateLimit: jsii.Number(p.RateLimit), BurstLimit: jsii.Number(p.BurstLimit)},
			Quota:     &awsapigateway.QuotaSettings{Limit: jsii.Number(p.QuotaPerDay), Period: awsapigateway.Period_DAY},
			ApiStages: &[]*awsapigateway.UsagePlanPerApiStage{{Api: api, Stage: api.DeploymentStage()}},
		})
	}
	newWebACL(c, api)
	cdknag.NagSuppressions_AddResourceSuppressions(api, &[]*cdknag.NagPackSuppression{
		{
			Id: jsii.String("AwsSolutions-APIG4"),
			Reason: jsii.String("Clients are tenants identified by API keys with usage plans (DESIGN.md section 3); " +
				"there are no IAM or Cognito user identities to authorize."),
		},
		{
			Id:     jsii.String("AwsSolutions-COG4"),
			Reason: jsii.String("No Cognito user pool: tenants authenticate with API Gateway API keys."),
		},
		{
			Id: jsii.String("AwsSolutions-IAM4"),
			Reason: jsii.String("AmazonAPIGatewayPushToCloudWatchLogs is the AWS policy for the account-level role " +
				"API Gateway uses to write execution logs."),
		},
	}, jsii.Bool(true))
	return api
}

// createJobSchema is the POST /v1/jobs body's shape; the function checks
// the rest (limits, URL rules) with its own messages.
func createJobSchema() *awsapigateway.JsonSchema {
	media := &awsapigateway.JsonSchema{
		Type:     awsapigateway.JsonSchemaType_OBJECT,
		Required: jsii.Strings("content_type", "size_bytes"),
		Properties: &map[string]*awsapigateway.JsonSchema{
			"content_type": {Type: awsapigateway.JsonSchemaType_STRING, MinLength: jsii.Number(1)},
			"size_bytes":   {Type: awsapigateway.JsonSchemaType_INTEGER, Minimum: jsii.Number(1)},
		},
	}
	return &awsapigateway.JsonSchema{
		Schema:   awsapigateway.JsonSchemaVersion_DRAFT4,
		Type:     awsapigateway.JsonSchemaType_OBJECT,
		Required: jsii.Strings("video", "audio"),
		Properties: &map[string]*awsapigateway.JsonSchema{
			"video":            media,
			"audio":            media,
			"options":          {Type: awsapigateway.JsonSchemaType_OBJECT},
			"webhook":          {Type: awsapigateway.JsonSchemaType_OBJECT},
			"notify_email":     {Type: awsapigateway.JsonSchemaType_STRING},
			"client_reference": {Type: awsapigateway.JsonSchemaType_STRING},
		},
	}
}

// newWebACL puts AWS managed rule groups and a per-IP rate limit in front of the stage.
func newWebACL(scope constructs.Construct, api awsapigateway.RestApi) awswafv2.CfnWebACL {
	visibility := func(name string) *awswafv2.CfnWebACL_VisibilityConfigProperty {
		return &awswafv2.CfnWebACL_VisibilityConfigProperty{
			CloudWatchMetricsEnabled: jsii.Bool(true), MetricName: jsii.String(name), SampledRequestsEnabled: jsii.Bool(true),
		}
	}
	var rules []interface{}
	for i, g := range ManagedRuleGroups {
		rules = append(rules, &awswafv2.CfnWebACL_RuleProperty{
			Name:     jsii.String(g),
			Priority: jsii.Number(float64(i)),
			Statement: &awswafv2.CfnWebACL_StatementProperty{
				ManagedRuleGroupStatement: &awswafv2.CfnWebACL_ManagedRuleGroupStatementProperty{
					VendorName: jsii.String("AWS"), Name: jsii.String(g),
				},
			},
			OverrideAction:   &awswafv2.CfnWebACL_OverrideActionProperty{None: map[string]interface{}{}},
			VisibilityConfig: visibility(g),
		})
	}
	// Usage plans limit each key; this limits a single address hammering with bad keys.
	rules = append(rules, &awswafv2.CfnWebACL_RuleProperty{
		Name:     jsii.String("RateLimitPerIP"),
		Priority: jsii.Number(float64(len(ManagedRuleGroups))),
		Statement: &awswafv2.CfnWebACL_StatementProperty{
			RateBasedStatement: &awswafv2.CfnWebACL_RateBasedStatementProperty{
				Limit: jsii.Number(2000), AggregateKeyType: jsii.String("IP"),
			},
		},
		Action:           &awswafv2.CfnWebACL_RuleActionProperty{Block: map[string]interface{}{}},
		VisibilityConfig: visibility("RateLimitPerIP"),
	})
	acl := awswafv2.NewCfnWebACL(scope, jsii.String("WebAcl"), &awswafv2.CfnWebACLProps{
		Scope:            jsii.String("REGIONAL"),
		DefaultAction:    &awswafv2.CfnWebACL_DefaultActionProperty{Allow: map[string]interface{}{}},
		VisibilityConfig: visibility("latentsync-api"),
		Rules:            &rules,
	})
	awswafv2.NewCfnWebACLAssociation(scope, jsii.String("WebAclAssociation"), &awswafv2.CfnWebACLAssociationProps{
		ResourceArn: api.DeploymentStage().StageArn(),
		WebAclArn:   acl.AttrArn(),
	})
	return acl
}
