# The reading stream: ingest (and the optional IoT rule) put readings on it, partitioned by
# device id; the process function consumes it through the event source mapping (functions.tf).

resource "aws_kinesis_stream" "readings" {
  name = "${var.name_prefix}-readings"

  # On-demand: capacity follows the traffic (no shard arithmetic, no resharding to operate);
  # it starts at 4 MB/s of writes and doubles as needed. Provisioned shards are cheaper only
  # for a steady, well-known load: switch stream_mode if yours is.
  stream_mode_details {
    stream_mode = "ON_DEMAND"
  }

  # 72 h by default: a weekend's outage (a batch given up after max_record_age_s, 6 h) can still
  # be read back from the stream on Monday, besides the copy the S3 failure destination keeps.
  # Beyond 24 h the stream bills extended retention per GB-month stored (docs/scaling.md).
  retention_period = var.stream_retention_hours

  encryption_type = "KMS"
  kms_key_id      = aws_kms_key.data.arn
}
