# The on-failure destination of the Kinesis event source mapping: when a batch has failed
# max_retry_attempts times or its records are older than max_record_age_s, Lambda writes an
# invocation record to the archive bucket, under aws/lambda/<mapping id>/<shard>/YYYY/MM/DD/...,
# and moves on, so one stuck batch cannot hold its shard forever. An S3 destination (unlike SQS
# or SNS, which receive only the shard and sequence range) receives the batch itself: the
# records are kept with the archive, however long the outage lasted, and `iotpipe redrive`
# processes them again (idempotently) once the cause is fixed. Each object created there also
# notifies the alarm topic.
#
# The archive bucket is reused (its encryption, TLS-only policy and versioning apply); its
# lifecycle rules cover raw/ and rejected/ only, so failed batches stay until redriven.

locals {
  failure_prefix = "aws/lambda/"
}

# Every failure record created in the bucket is announced on the alarm topic.
resource "aws_s3_bucket_notification" "failures" {
  bucket = aws_s3_bucket.archive.id

  topic {
    topic_arn     = aws_sns_topic.alarms.arn
    events        = ["s3:ObjectCreated:*"]
    filter_prefix = local.failure_prefix
  }

  depends_on = [aws_sns_topic_policy.alarms]
}
