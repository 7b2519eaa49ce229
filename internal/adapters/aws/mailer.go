package aws

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
)

// Mailer sends plain-text email through SES v2 from one verified sender.
type Mailer struct {
	client *sesv2.Client
	from   string
	// configSet names the SES configuration set (bounce and complaint
	// tracking); "" sends without one.
	configSet string
}

// NewMailer returns a mailer sending from the verified address from, with
// configuration set configSet ("" for none).
func NewMailer(client *sesv2.Client, from, configSet string) *Mailer {
	return &Mailer{client: client, from: from, configSet: configSet}
}

// Send emails a plain-text message to one address.
func (m *Mailer) Send(ctx context.Context, to, subject, body string) error {
	in := &sesv2.SendEmailInput{
		FromEmailAddress: aws.String(m.from),
		Destination:      &types.Destination{ToAddresses: []string{to}},
		Content: &types.EmailContent{Simple: &types.Message{
			Subject: &types.Content{Data: aws.String(subject), Charset: aws.String("UTF-8")},
			Body:    &types.Body{Text: &types.Content{Data: aws.String(body), Charset: aws.String("UTF-8")}},
		}},
	}
	if m.configSet != "" {
		in.ConfigurationSetName = aws.String(m.configSet)
	}
	if _, err := m.client.SendEmail(ctx, in); err != nil {
		return fmt.Errorf("send email %q: %w", subject, err)
	}
	return nil
}
