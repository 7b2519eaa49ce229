package aws_test

import (
	"testing"

	awsadapter "github.com/latentsync/latentsync-service/internal/adapters/aws"
	"github.com/latentsync/latentsync-service/internal/adapters/aws/awstest"
	"github.com/latentsync/latentsync-service/internal/queue"
	"github.com/latentsync/latentsync-service/internal/queue/queuetest"
)

func TestQueueConformance(t *testing.T) {
	f := awstest.StartFauxqs(t)
	queuetest.Run(t, func(t *testing.T, maxReceives int) (queue.Queue, queue.Queue) {
		main, dlq := f.CreateQueues(t, awstest.Name(t, "jobs"), maxReceives)
		return awsadapter.NewQueue(f.SQS, main), awsadapter.NewQueue(f.SQS, dlq)
	}, queuetest.Options{Gaps: map[queuetest.Gap]string{
		// ChangeVisibility refuses them (TestReceiptErrors); Delete does not.
		queuetest.GapStaleReceipt: "SQS (and fauxqs) accept DeleteMessage with an earlier or spent receipt",
	}})
}
