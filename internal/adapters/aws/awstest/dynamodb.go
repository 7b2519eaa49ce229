package awstest

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// DynamoDBLocalDir is the install directory under .deps when
// LATENTSYNC_DYNAMODB_LOCAL is unset (the Makefile's DDBLOCAL_DIR).
const DynamoDBLocalDir = "dynamodb-local-1.25.1"

// DynamoDB is a running DynamoDB Local.
type DynamoDB struct {
	Endpoint string
	Config   aws.Config
	Client   *dynamodb.Client
}

// StartDynamoDB starts DynamoDB Local (in memory, one shared database) on a
// free 127.0.0.1 port for the rest of the test.
func StartDynamoDB(t testing.TB) *DynamoDB {
	t.Helper()
	dir := installDir(t, "LATENTSYNC_DYNAMODB_LOCAL", DynamoDBLocalDir)
	java := lookPath(t, "java")
	requireFile(t, filepath.Join(dir, "DynamoDBLocal.jar"), "DynamoDB Local")
	requireFile(t, filepath.Join(dir, "loopback", "DynamoDBLocalLoopback.class"), "DynamoDB Local's loopback launcher")
	classpath := filepath.Join(dir, "loopback") + ":" + filepath.Join(dir, "DynamoDBLocal.jar") + ":" + filepath.Join(dir, "DynamoDBLocal_lib", "*")
	port := start(t, "DynamoDB Local", "DynamoDB Local ready", func(port int) *exec.Cmd {
		cmd := exec.Command(java,
			// A small heap and the quick JIT tier: tests make a few hundred
			// requests, start-up time matters more than peak speed.
			"-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
			"-Djava.library.path="+filepath.Join(dir, "DynamoDBLocal_lib"),
			"-cp", classpath, "DynamoDBLocalLoopback",
			"-inMemory", "-sharedDb", "-disableTelemetry", "-port", strconv.Itoa(port))
		cmd.Dir = dir
		return cmd
	})
	d := &DynamoDB{Endpoint: endpoint(port)}
	d.Config = Config(t, d.Endpoint)
	d.Client = dynamodb.NewFromConfig(d.Config)
	return d
}

// CreateTable creates a table (and its TTL setting when ttl is not nil)
// and waits until it is active.
func (d *DynamoDB) CreateTable(t testing.TB, in *dynamodb.CreateTableInput, ttl *dynamodb.UpdateTimeToLiveInput) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := d.Client.CreateTable(ctx, in); err != nil {
		t.Fatalf("CreateTable %s: %v", aws.ToString(in.TableName), err)
	}
	w := dynamodb.NewTableExistsWaiter(d.Client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 100*time.Millisecond, time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: in.TableName}, 30*time.Second); err != nil {
		t.Fatalf("table %s not active: %v", aws.ToString(in.TableName), err)
	}
	if ttl != nil {
		if _, err := d.Client.UpdateTimeToLive(ctx, ttl); err != nil {
			t.Fatalf("UpdateTimeToLive %s: %v", aws.ToString(ttl.TableName), err)
		}
	}
}
