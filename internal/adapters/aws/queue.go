package aws

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/latentsync/latentsync-service/internal/queue"
)

// Queue is queue.Queue on one SQS standard queue. Redrive to the
// dead-letter queue is the queue's RedrivePolicy (maxReceiveCount), set by
// the infrastructure; the dead-letter queue is another Queue.
type Queue struct {
	client *sqs.Client
	url    string
}

// NewQueue returns the queue at url.
func NewQueue(client *sqs.Client, url string) *Queue {
	return &Queue{client: client, url: url}
}

// Send implements queue.Queue; attributes travel as String message attributes.
func (q *Queue) Send(ctx context.Context, body []byte, attributes map[string]string) (string, error) {
	in := &sqs.SendMessageInput{QueueUrl: aws.String(q.url), MessageBody: aws.String(string(body))}
	if len(attributes) > 0 {
		in.MessageAttributes = make(map[string]types.MessageAttributeValue, len(attributes))
		for k, v := range attributes {
			in.MessageAttributes[k] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
		}
	}
	out, err := q.client.SendMessage(ctx, in)
	if err != nil {
		return "", fmt.Errorf("send to %s: %w", q.url, err)
	}
	return aws.ToString(out.MessageId), nil
}

// seconds rounds up to SQS's whole seconds (a wait or a visibility is never
// shorter than asked), clamped to [0, limit].
func seconds(d time.Duration, limit int32) int32 {
	s := math.Ceil(d.Seconds())
	switch {
	case s < 0:
		return 0
	case s > float64(limit):
		return limit
	}
	return int32(s)
}

// Receive implements queue.Queue with one long-polling ReceiveMessage.
// SQS counts receives and moves a message past maxReceiveCount to the
// dead-letter queue itself.
func (q *Queue) Receive(ctx context.Context, maxMessages int, wait, visibility time.Duration) ([]queue.Message, error) {
	n := min(10, max(1, maxMessages)) // SQS's bounds
	out, err := q.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:            aws.String(q.url),
		MaxNumberOfMessages: int32(n),
		WaitTimeSeconds:     seconds(wait, 20),
		VisibilityTimeout:   seconds(visibility, 43200),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{
			types.MessageSystemAttributeNameApproximateReceiveCount, types.MessageSystemAttributeNameSentTimestamp,
		},
		MessageAttributeNames: []string{"All"},
	})
	if err != nil {
		return nil, fmt.Errorf("receive from %s: %w", q.url, err)
	}
	msgs := make([]queue.Message, 0, len(out.Messages))
	for _, m := range out.Messages {
		msg := queue.Message{
			ID: aws.ToString(m.MessageId), Body: []byte(aws.ToString(m.Body)), Receipt: aws.ToString(m.ReceiptHandle),
		}
		if n, err := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)]); err == nil {
			msg.ReceiveCount = n
		}
		if ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
			msg.SentAt = time.UnixMilli(ms)
		}
		for k, v := range m.MessageAttributes {
			if v.StringValue == nil {
				continue // only String attributes are ours
			}
			if msg.Attributes == nil {
				msg.Attributes = map[string]string{}
			}
			msg.Attributes[k] = *v.StringValue
		}
		msgs = append(msgs, msg)
	}
	return msgs, nil
}

// ChangeVisibility implements queue.Queue.
func (q *Queue) ChangeVisibility(ctx context.Context, receipt string, d time.Duration) error {
	_, err := q.client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(q.url), ReceiptHandle: aws.String(receipt), VisibilityTimeout: seconds(d, 43200),
	})
	if err != nil {
		return fmt.Errorf("change visibility on %s: %w", q.url, receiptErr(err))
	}
	return nil
}

// Delete implements queue.Queue. SQS deletes with the receipt of an earlier
// delivery too, and accepts one of a deleted message: only receipts it
// cannot read are refused.
func (q *Queue) Delete(ctx context.Context, receipt string) error {
	_, err := q.client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(q.url), ReceiptHandle: aws.String(receipt)})
	if err != nil {
		return fmt.Errorf("delete from %s: %w", q.url, receiptErr(err))
	}
	return nil
}

// receiptErr maps SQS's answers for a receipt that is no longer (or never
// was) valid to queue.ErrReceiptInvalid. SQS's JSON protocol reports the
// legacy query codes (AWS.SimpleQueueService.MessageNotInflight), so the
// code's last part is compared.
func receiptErr(err error) error {
	var api smithy.APIError
	if errors.As(err, &api) {
		code := api.ErrorCode()
		switch code[strings.LastIndexByte(code, '.')+1:] {
		case "ReceiptHandleIsInvalid", "MessageNotInflight":
			return fmt.Errorf("%w: %s", queue.ErrReceiptInvalid, code)
		}
	}
	return err
}
