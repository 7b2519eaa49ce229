package infra

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	awsadapters "github.com/latentsync/latentsync-service/internal/adapters/aws"
)

// newJobTable declares the job table from the adapter's own schema
// (awsadapters.JobTableSchema, the one the emulator tests create), so the
// deployed keys and indexes cannot drift from what the code queries.
func newJobTable(scope constructs.Construct, key awskms.IKey) (awsdynamodb.Table, error) {
	schema := awsadapters.JobTableSchema("jobs")
	ttl := awsadapters.JobTableTTL("jobs").TimeToLiveSpecification.AttributeName

	attrTypes := map[string]awsdynamodb.AttributeType{}
	for _, d := range schema.AttributeDefinitions {
		switch d.AttributeType {
		case types.ScalarAttributeTypeS:
			attrTypes[*d.AttributeName] = awsdynamodb.AttributeType_STRING
		case types.ScalarAttributeTypeN:
			attrTypes[*d.AttributeName] = awsdynamodb.AttributeType_NUMBER
		case types.ScalarAttributeTypeB:
			attrTypes[*d.AttributeName] = awsdynamodb.AttributeType_BINARY
		default:
			return nil, fmt.Errorf("job table: attribute %s has type %q", *d.AttributeName, d.AttributeType)
		}
	}
	keys := func(elems []types.KeySchemaElement) (hash, rng *awsdynamodb.Attribute, err error) {
		for _, e := range elems {
			t, ok := attrTypes[*e.AttributeName]
			if !ok {
				return nil, nil, fmt.Errorf("job table: key %s has no attribute definition", *e.AttributeName)
			}
			a := &awsdynamodb.Attribute{Name: e.AttributeName, Type: t}
			if e.KeyType == types.KeyTypeHash {
				hash = a
			} else {
				rng = a
			}
		}
		return hash, rng, nil
	}
	pk, sk, err := keys(schema.KeySchema)
	if err != nil {
		return nil, err
	}
	table := awsdynamodb.NewTable(scope, jsii.String("Jobs"), &awsdynamodb.TableProps{
		PartitionKey: pk,
		SortKey:      sk,
		BillingMode:  awsdynamodb.BillingMode_PAY_PER_REQUEST,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		Encryption:          awsdynamodb.TableEncryption_CUSTOMER_MANAGED,
		EncryptionKey:       key,
		TimeToLiveAttribute: ttl,
		DeletionProtection:  jsii.Bool(true),
		RemovalPolicy:       awscdk.RemovalPolicy_RETAIN,
	})
	for _, g := range schema.GlobalSecondaryIndexes {
		if g.Projection == nil || g.Projection.ProjectionType != types.ProjectionTypeAll {
			return nil, fmt.Errorf("job table: index %s: only ALL projections are declared", *g.IndexName)
		}
		h, r, err := keys(g.KeySchema)
		if err != nil {
			return nil, err
		}
		table.AddGlobalSecondaryIndex(&awsdynamodb.GlobalSecondaryIndexProps{
			IndexName: g.IndexName, PartitionKey: h, SortKey: r, ProjectionType: awsdynamodb.ProjectionType_ALL,
		})
	}
	return table, nil
}
