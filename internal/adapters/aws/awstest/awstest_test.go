package awstest

import (
	"net"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// The emulators answer on loopback, nowhere else, and go away with the test.
func TestEmulatorsServeOnLoopbackOnly(t *testing.T) {
	type started struct {
		name     string
		endpoint string
	}
	var all []started
	t.Run("dynamodb", func(t *testing.T) {
		d := StartDynamoDB(t)
		all = append(all, started{"dynamodb", d.Endpoint})
		if _, err := d.Client.ListTables(t.Context(), &dynamodb.ListTablesInput{}); err != nil {
			t.Fatalf("ListTables: %v", err)
		}
		assertLoopbackOnly(t, d.Endpoint)
	})
	t.Run("fauxqs", func(t *testing.T) {
		f := StartFauxqs(t)
		all = append(all, started{"fauxqs", f.Endpoint})
		q, dlq := f.CreateQueues(t, Name(t, "q"), 2)
		if !strings.HasPrefix(q, f.Endpoint+"/") || !strings.HasPrefix(dlq, f.Endpoint+"/") {
			t.Errorf("queue URLs %s, %s are not on %s", q, dlq, f.Endpoint)
		}
		attrs, err := f.SQS.GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{
			QueueUrl: aws.String(q), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameRedrivePolicy},
		})
		if err != nil {
			t.Fatal(err)
		}
		if p := attrs.Attributes["RedrivePolicy"]; !strings.Contains(p, `"maxReceiveCount":"2"`) && !strings.Contains(p, `"maxReceiveCount":2`) {
			t.Errorf("RedrivePolicy = %s, want maxReceiveCount 2", p)
		}
		b := f.CreateBucket(t, Name(t, "b"))
		if _, err := f.S3.HeadBucket(t.Context(), &s3.HeadBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Errorf("HeadBucket(%s): %v", b, err)
		}
		assertLoopbackOnly(t, f.Endpoint)
	})
	for _, s := range all {
		if c, err := net.Dial("tcp", strings.TrimPrefix(s.endpoint, "http://")); err == nil {
			c.Close()
			t.Errorf("%s still listens at %s after its test ended", s.name, s.endpoint)
		}
	}
}

// assertLoopbackOnly fails when the emulator's port also accepts
// connections on another local address.
func assertLoopbackOnly(t *testing.T, endpoint string) {
	t.Helper()
	_, port, err := net.SplitHostPort(strings.TrimPrefix(endpoint, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		ip, _, err := net.ParseCIDR(a.String())
		if err != nil || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
			continue
		}
		if c, err := net.Dial("tcp", net.JoinHostPort(ip.String(), port)); err == nil {
			c.Close()
			t.Errorf("%s also answers on %s", endpoint, ip)
		}
	}
}

func TestName(t *testing.T) {
	a, b := Name(t, "jobs"), Name(t, "jobs")
	if a == b {
		t.Errorf("two calls returned the same name %s", a)
	}
	for _, n := range []string{a, b} {
		if !strings.HasPrefix(n, "jobs-testname-") || strings.Trim(n, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" || len(n) > 63 {
			t.Errorf("Name = %q, want jobs-testname-<suffix> of [a-z0-9-], at most 63 chars", n)
		}
	}
}
