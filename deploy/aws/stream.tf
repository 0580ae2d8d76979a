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

  # Must outlive the event source mapping's maximum record age (see variables.tf) so that a
  # batch sent to the DLQ can still be read back from the stream and replayed.
  retention_period = var.stream_retention_hours

  encryption_type = "KMS"
  kms_key_id      = aws_kms_key.data.arn
}
