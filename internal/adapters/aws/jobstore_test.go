package aws_test

import (
	"testing"

	awsadapter "github.com/latentsync/latentsync-service/internal/adapters/aws"
	"github.com/latentsync/latentsync-service/internal/adapters/aws/awstest"
	"github.com/latentsync/latentsync-service/internal/jobstore"
	"github.com/latentsync/latentsync-service/internal/jobstore/jobstoretest"
)

// One DynamoDB Local for the suite; each sub-test gets its own table.
// TTL stays off: the suite's jobs expire at dates long past, and DynamoDB
// Local's TTL sweeper deletes some of them in the middle of the sub-tests.
func TestJobStoreConformance(t *testing.T) {
	ddb := awstest.StartDynamoDB(t)
	jobstoretest.Run(t, func(t *testing.T) jobstore.Store {
		name := awstest.Name(t, "jobs")
		ddb.CreateTable(t, awsadapter.JobTableSchema(name), nil)
		return awsadapter.NewJobStore(ddb.Client, name)
	})
}
