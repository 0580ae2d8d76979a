# The on-failure destination of the Kinesis event source mapping: when a batch has failed
# max_retry_attempts times or its records are older than max_record_age_s, Lambda sends a
# message describing it (shard, first and last sequence numbers, the error) here and moves on,
# so one stuck batch cannot hold its shard forever. The records themselves stay in the stream
# (for stream_retention_hours): read them back from the named range and replay them, which is
# safe since processing is idempotent. Any message here raises the DLQ alarm (monitoring.tf).

resource "aws_sqs_queue" "dlq" {
  name                              = "${var.name_prefix}-process-dlq"
  message_retention_seconds         = 1209600 # 14 days, the maximum: time to investigate
  kms_master_key_id                 = aws_kms_key.data.arn
  kms_data_key_reuse_period_seconds = 3600
}

# Only this account may use the queue, over TLS.
resource "aws_sqs_queue_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id
  policy    = data.aws_iam_policy_document.dlq.json
}

data "aws_iam_policy_document" "dlq" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.dlq.arn]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}
