package aws

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/latentsync/latentsync-service/internal/job"
	"github.com/latentsync/latentsync-service/internal/jobstore"
)

// Job table names (see the package documentation for the design).
const (
	attrPK           = "pk"
	attrVersion      = "version"
	attrExpireAt     = "expire_at"
	attrJob          = "job"
	attrTenant       = "tenant"
	attrCreatedSK    = "created_sk"
	attrTenantStatus = "tenant_status"
	attrSweepPK      = "sweep_pk"
	attrSweepSK      = "sweep_sk"
	attrJobID        = "job_id"
	attrRequestHash  = "request_hash"

	IndexTenantCreated       = "tenant-created"
	IndexTenantStatusCreated = "tenant-status-created"
	IndexAwaitingDeadline    = "awaiting-deadline"

	jobPrefix  = "JOB#"
	idemPrefix = "IDEM#"
	sweepValue = string(job.AwaitingUpload)
)

// JobTableSchema is the job table's definition: the test harness creates
// it from here and the CDK stack must declare the same keys and indexes.
func JobTableSchema(name string) *dynamodb.CreateTableInput {
	str := func(n string) types.AttributeDefinition {
		return types.AttributeDefinition{AttributeName: aws.String(n), AttributeType: types.ScalarAttributeTypeS}
	}
	key := func(hash, rng string) []types.KeySchemaElement {
		return []types.KeySchemaElement{
			{AttributeName: aws.String(hash), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(rng), KeyType: types.KeyTypeRange},
		}
	}
	index := func(name, hash, rng string) types.GlobalSecondaryIndex {
		return types.GlobalSecondaryIndex{
			IndexName: aws.String(name), KeySchema: key(hash, rng),
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		}
	}
	return &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			str(attrPK), str(attrTenant), str(attrCreatedSK), str(attrTenantStatus), str(attrSweepPK), str(attrSweepSK),
		},
		KeySchema: []types.KeySchemaElement{{AttributeName: aws.String(attrPK), KeyType: types.KeyTypeHash}},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{
			index(IndexTenantCreated, attrTenant, attrCreatedSK),
			index(IndexTenantStatusCreated, attrTenantStatus, attrCreatedSK),
			index(IndexAwaitingDeadline, attrSweepPK, attrSweepSK),
		},
	}
}

// JobTableTTL turns on expiry by the expire_at attribute.
func JobTableTTL(name string) *dynamodb.UpdateTimeToLiveInput {
	return &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(name),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(attrExpireAt), Enabled: aws.Bool(true),
		},
	}
}

// JobStore is jobstore.Store on a DynamoDB table laid out as JobTableSchema.
type JobStore struct {
	client *dynamodb.Client
	table  string
}

// NewJobStore returns a store on table.
func NewJobStore(client *dynamodb.Client, table string) *JobStore {
	return &JobStore{client: client, table: table}
}

// sortTime formats t so that strings sort like instants (fixed width, UTC).
func sortTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000000Z") }

func jobKey(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: &types.AttributeValueMemberS{Value: jobPrefix + id}}
}

func idemKey(tenant, key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: &types.AttributeValueMemberS{Value: idemPrefix + tenant + "#" + key}}
}

// jsonTags makes the stored job map use the job's JSON names.
func jsonTags(o *attributevalue.EncoderOptions) { o.TagKey = "json" }

func jsonTagsDecode(o *attributevalue.DecoderOptions) { o.TagKey = "json" }

func num(n int64) *types.AttributeValueMemberN {
	return &types.AttributeValueMemberN{Value: fmt.Sprint(n)}
}

func str(s string) *types.AttributeValueMemberS { return &types.AttributeValueMemberS{Value: s} }

// item is the stored form of j: the job map plus the attributes the table
// and its indexes are keyed on.
func jobItem(j *job.Job) (map[string]types.AttributeValue, error) {
	doc, err := attributevalue.MarshalMapWithOptions(j, jsonTags)
	if err != nil {
		return nil, fmt.Errorf("encoding job %s: %w", j.ID, err)
	}
	item := map[string]types.AttributeValue{
		attrPK:           str(jobPrefix + j.ID),
		attrVersion:      num(j.Version),
		attrJob:          &types.AttributeValueMemberM{Value: doc},
		attrTenant:       str(j.Tenant),
		attrCreatedSK:    str(sortTime(j.CreatedAt) + "#" + j.ID),
		attrTenantStatus: str(j.Tenant + "#" + string(j.Status)),
	}
	if !j.ExpireAt.IsZero() {
		item[attrExpireAt] = num(j.ExpireAt.Unix())
	}
	// Only jobs awaiting upload are in the sweep index (sparse).
	if j.Status == job.AwaitingUpload {
		item[attrSweepPK] = str(sweepValue)
		item[attrSweepSK] = str(sortTime(j.UploadDeadline) + "#" + j.ID)
	}
	return item, nil
}

func decodeJob(item map[string]types.AttributeValue) (*job.Job, error) {
	doc, ok := item[attrJob].(*types.AttributeValueMemberM)
	if !ok {
		return nil, fmt.Errorf("item %v has no job map", item[attrPK])
	}
	var j job.Job
	if err := attributevalue.UnmarshalMapWithOptions(doc.Value, &j, jsonTagsDecode); err != nil {
		return nil, fmt.Errorf("decoding job item %v: %w", item[attrPK], err)
	}
	// The top-level version is the one conditions check.
	if err := attributevalue.Unmarshal(item[attrVersion], &j.Version); err != nil {
		return nil, fmt.Errorf("decoding version of job %s: %w", j.ID, err)
	}
	return &j, nil
}

// Create implements jobstore.Store. On success j.Version is 1 and j is
// returned; a replayed idempotency key returns the job stored with it.
func (s *JobStore) Create(ctx context.Context, j *job.Job, idempotencyKey, requestHash string) (*job.Job, error) {
	if j.Version != 0 {
		return nil, fmt.Errorf("create job %s: version is %d, want 0 for a new job", j.ID, j.Version)
	}
	if j.ID == "" || j.Tenant == "" {
		return nil, fmt.Errorf("create job: id and tenant are required")
	}
	stored := *j
	stored.Version = 1
	item, err := jobItem(&stored)
	if err != nil {
		return nil, err
	}
	putJob := &types.Put{
		TableName: aws.String(s.table), Item: item,
		ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{"#pk": attrPK},
	}
	if idempotencyKey == "" {
		_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: putJob.TableName, Item: putJob.Item,
			ConditionExpression: putJob.ConditionExpression, ExpressionAttributeNames: putJob.ExpressionAttributeNames,
		})
		var ccf *types.ConditionalCheckFailedException
		switch {
		case errors.As(err, &ccf):
			return nil, fmt.Errorf("create job %s: id exists: %w", j.ID, job.ErrConflict)
		case err != nil:
			return nil, fmt.Errorf("create job %s: %w", j.ID, err)
		}
		j.Version = 1
		return j, nil
	}

	idem := idemKey(j.Tenant, idempotencyKey)
	idem[attrJobID] = str(j.ID)
	idem[attrRequestHash] = str(requestHash)
	if v, ok := item[attrExpireAt]; ok {
		idem[attrExpireAt] = v
	}
	in := &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: putJob},
		{Put: &types.Put{
			TableName: aws.String(s.table), Item: idem,
			ConditionExpression:                 aws.String("attribute_not_exists(#pk)"),
			ExpressionAttributeNames:            map[string]string{"#pk": attrPK},
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}},
	}}
	// Concurrent creates with one key collide as transaction conflicts
	// until one commits; retried, they find the key and replay it.
	const attempts = 10
	for attempt := 1; ; attempt++ {
		_, err := s.client.TransactWriteItems(ctx, in)
		if err == nil {
			j.Version = 1
			return j, nil
		}
		var tce *types.TransactionCanceledException
		if !errors.As(err, &tce) {
			return nil, fmt.Errorf("create job %s: %w", j.ID, err)
		}
		switch reasons := tce.CancellationReasons; {
		case reasonCode(reasons, 1) == "ConditionalCheckFailed":
			return s.replay(ctx, j.Tenant, idempotencyKey, requestHash, reasons[1].Item)
		case reasonCode(reasons, 0) == "ConditionalCheckFailed":
			return nil, fmt.Errorf("create job %s: id exists: %w", j.ID, job.ErrConflict)
		case attempt < attempts && (reasonCode(reasons, 0) == "TransactionConflict" || reasonCode(reasons, 1) == "TransactionConflict"):
			if err := sleep(ctx, time.Duration(attempt)*time.Duration(10+rand.IntN(40))*time.Millisecond); err != nil {
				return nil, fmt.Errorf("create job %s: %w", j.ID, err)
			}
		default:
			return nil, fmt.Errorf("create job %s: %w", j.ID, err)
		}
	}
}

func reasonCode(reasons []types.CancellationReason, i int) string {
	if i >= len(reasons) {
		return ""
	}
	return aws.ToString(reasons[i].Code)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// replay answers a Create whose idempotency key exists: the job created
// with the key, or ErrIdempotencyMismatch for another request.
func (s *JobStore) replay(ctx context.Context, tenant, key, requestHash string, item map[string]types.AttributeValue) (*job.Job, error) {
	if item == nil { // not every DynamoDB returns the old item with the cancellation
		out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
			TableName: aws.String(s.table), Key: idemKey(tenant, key), ConsistentRead: aws.Bool(true),
		})
		if err != nil {
			return nil, fmt.Errorf("reading idempotency key: %w", err)
		}
		item = out.Item
	}
	var rec struct {
		JobID       string `dynamodbav:"job_id"`
		RequestHash string `dynamodbav:"request_hash"`
	}
	if err := attributevalue.UnmarshalMap(item, &rec); err != nil || rec.JobID == "" {
		return nil, fmt.Errorf("idempotency key item unreadable (%v)", err)
	}
	if rec.RequestHash != requestHash {
		return nil, fmt.Errorf("idempotency key used for job %s: %w", rec.JobID, job.ErrIdempotencyMismatch)
	}
	return s.Get(ctx, tenant, rec.JobID)
}

// Get implements jobstore.Store with a strongly consistent read.
func (s *JobStore) Get(ctx context.Context, tenant, id string) (*job.Job, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table), Key: jobKey(id), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, err)
	}
	if out.Item == nil {
		return nil, fmt.Errorf("job %s: %w", id, job.ErrNotFound)
	}
	j, err := decodeJob(out.Item)
	if err != nil {
		return nil, err
	}
	if tenant != "" && j.Tenant != tenant {
		return nil, fmt.Errorf("job %s: %w", id, job.ErrNotFound)
	}
	return j, nil
}

// Update implements jobstore.Store: a put conditional on the version read.
func (s *JobStore) Update(ctx context.Context, j *job.Job) error {
	next := *j
	next.Version = j.Version + 1
	item, err := jobItem(&next)
	if err != nil {
		return err
	}
	_, err = s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.table), Item: item,
		ConditionExpression:                 aws.String("#v = :v"),
		ExpressionAttributeNames:            map[string]string{"#v": attrVersion},
		ExpressionAttributeValues:           map[string]types.AttributeValue{":v": num(j.Version)},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf) && ccf.Item == nil:
		return fmt.Errorf("update job %s: %w", j.ID, job.ErrNotFound)
	case errors.As(err, &ccf):
		return fmt.Errorf("update job %s at version %d: %w", j.ID, j.Version, job.ErrConflict)
	case err != nil:
		return fmt.Errorf("update job %s: %w", j.ID, err)
	}
	j.Version = next.Version
	return nil
}

// List implements jobstore.Store. The cursor is the index position of the
// last job returned, so pages neither skip nor repeat jobs.
func (s *JobStore) List(ctx context.Context, tenant string, status job.Status, limit int, cursor string) ([]*job.Job, string, error) {
	if limit < 1 || limit > 100 {
		return nil, "", fmt.Errorf("list jobs: limit %d out of 1..100", limit)
	}
	index, hashName, hashValue := IndexTenantCreated, attrTenant, tenant
	if status != "" {
		index, hashName, hashValue = IndexTenantStatusCreated, attrTenantStatus, tenant+"#"+string(status)
	}
	in := &dynamodb.QueryInput{
		TableName: aws.String(s.table), IndexName: aws.String(index),
		KeyConditionExpression:    aws.String("#h = :h"),
		ExpressionAttributeNames:  map[string]string{"#h": hashName},
		ExpressionAttributeValues: map[string]types.AttributeValue{":h": str(hashValue)},
		ScanIndexForward:          aws.Bool(false),
	}
	if cursor != "" {
		sk, id, err := decodeCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		in.ExclusiveStartKey = map[string]types.AttributeValue{
			attrPK: str(jobPrefix + id), hashName: str(hashValue), attrCreatedSK: str(sk),
		}
	}
	// One more than asked tells whether another page exists.
	items, err := s.query(ctx, in, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list jobs of %s: %w", tenant, err)
	}
	next := ""
	if len(items) > limit {
		items = items[:limit]
		sk, _ := items[limit-1][attrCreatedSK].(*types.AttributeValueMemberS)
		if sk == nil {
			return nil, "", fmt.Errorf("list jobs of %s: item without %s", tenant, attrCreatedSK)
		}
		next = base64.RawURLEncoding.EncodeToString([]byte(sk.Value))
	}
	jobs, err := decodeJobs(items)
	return jobs, next, err
}

func decodeCursor(cursor string) (sk, id string, err error) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err == nil {
		var ok bool
		if _, id, ok = strings.Cut(string(b), "#"); ok && id != "" {
			return string(b), id, nil
		}
	}
	return "", "", fmt.Errorf("list jobs: malformed cursor %q: %w", cursor, jobstore.ErrBadCursor)
}

// ListExpired implements jobstore.Store: one range query on the sparse
// awaiting-upload index, oldest deadline first.
func (s *JobStore) ListExpired(ctx context.Context, before time.Time, limit int) ([]*job.Job, error) {
	if limit < 1 {
		return nil, fmt.Errorf("list expired jobs: limit %d, want at least 1", limit)
	}
	// "<deadline>#<id>" < "<before>" exactly when deadline < before: the
	// fixed-width times differ before the separator or are equal, and then
	// the longer string is the greater.
	items, err := s.query(ctx, &dynamodb.QueryInput{
		TableName: aws.String(s.table), IndexName: aws.String(IndexAwaitingDeadline),
		KeyConditionExpression:   aws.String("#h = :h AND #r < :before"),
		ExpressionAttributeNames: map[string]string{"#h": attrSweepPK, "#r": attrSweepSK},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":h": str(sweepValue), ":before": str(sortTime(before)),
		},
	}, limit)
	if err != nil {
		return nil, fmt.Errorf("list expired jobs: %w", err)
	}
	return decodeJobs(items)
}

// query pages through in until it has want items or the index ends.
func (s *JobStore) query(ctx context.Context, in *dynamodb.QueryInput, want int) ([]map[string]types.AttributeValue, error) {
	var items []map[string]types.AttributeValue
	for len(items) < want {
		in.Limit = aws.Int32(int32(want - len(items)))
		out, err := s.client.Query(ctx, in)
		if err != nil {
			return nil, err
		}
		items = append(items, out.Items...)
		if out.LastEvaluatedKey == nil {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	return items, nil
}

func decodeJobs(items []map[string]types.AttributeValue) ([]*job.Job, error) {
	jobs := make([]*job.Job, 0, len(items))
	for _, it := range items {
		j, err := decodeJob(it)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}
