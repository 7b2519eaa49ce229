// Package aws holds the AWS adapters of the portable contracts, built on
// AWS SDK v2 clients: JobStore (jobstore.Store on DynamoDB), BlobStore
// (blob.Store on S3), Queue (queue.Queue on SQS), Publisher
// (eventbus.Publisher on EventBridge), Mailer (email through SES v2) and
// MalwareScreener (validate.Screener on the object tags GuardDuty Malware
// Protection for S3 writes).
// Constructors take SDK clients and resource names; endpoints come from the
// SDK's standard configuration (AWS_ENDPOINT_URL_DYNAMODB, _S3, _SQS, ...),
// so the same code talks to AWS or to an emulator.
//
// # Job table (DynamoDB)
//
// One table, hash key "pk" (S), no sort key. Two kinds of items share it:
//
//   - a job: pk "JOB#<id>"; the job itself in "job" (a map, attribute
//     names as in its JSON); "version" (N), the optimistic lock every write
//     is conditional on; "expire_at" (N, epoch seconds), the table's TTL
//     attribute; and the index keys below.
//   - an idempotency key: pk "IDEM#<tenant>#<key>" with "job_id",
//     "request_hash" and the job's "expire_at". Create writes it and the job
//     in one TransactWriteItems, each conditional on not existing, so a key
//     can never point at a job that was not stored, nor two jobs be stored
//     for one key.
//
// Global secondary indexes (all project every attribute, so a page is one
// query):
//
//   - "tenant-created": hash "tenant", range "created_sk" =
//     "<created_at UTC, fixed width>#<id>". Listing newest first is a query
//     in descending order; ties on the time fall back to the id, and the
//     string sorts exactly like (created_at, id).
//   - "tenant-status-created": hash "tenant_status" = "<tenant>#<status>",
//     range "created_sk": listing by status reads only matching jobs,
//     where a filter on the first index would read (and pay for) all of a
//     tenant's jobs to find a few.
//   - "awaiting-deadline": hash "sweep_pk", range "sweep_sk" =
//     "<upload_deadline UTC, fixed width>#<id>". Only jobs awaiting upload
//     carry these attributes (sweep_pk is the constant "awaiting_upload"),
//     so the index is sparse and ListExpired is one range query that reads
//     exactly the overdue jobs. A scan with a filter would read the whole
//     table (every job of the last 30 days and every idempotency key) on
//     each sweep; the single index partition takes one write per job
//     creation and status change, far below a partition's limit for a
//     service whose jobs each take GPU minutes.
//
// Index reads are eventually consistent: a job written a moment ago may
// be missing from List for a moment; Get reads the table strongly.
//
// # Mailer
//
// Mailer satisfies the interface the notify package defines for email:
//
//	type Mailer interface {
//		// Send emails a plain-text message to one address.
//		Send(ctx context.Context, to, subject, body string) error
//	}
package aws
