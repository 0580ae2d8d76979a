# The aggregate store: one DynamoDB table, mirroring iotpipe.adapters.aws.dynamodb.TABLE_DEFINITION
# exactly (keys, the sparse "device" index and its projection, the stream, on-demand billing) and
# TIME_TO_LIVE. tests/terraform checks that they agree. Format 2 (issue #16): window heads keyed
# by hour and fleet shard, identity segments, fleet lanes; a table of the previous release is
# converted by `iotpipe migrate` (docs/deployment.md).

resource "aws_dynamodb_table" "windows" {
  name = "${var.name_prefix}-windows"

  # On-demand: no capacity to plan, and writes scale with windows (not readings), so the bill
  # follows the number of devices and hours rather than the reading rate.
  billing_mode = "PAY_PER_REQUEST"

  # Cost guard: on-demand capacity is otherwise unbounded (a runaway client or a bug could write
  # at any rate, and be billed for it). Beyond the cap DynamoDB throttles; the process function
  # then stops in time and leaves the rest to Lambda's retries (partial batch failures).
  on_demand_throughput {
    max_read_request_units  = var.table_max_request_units.read
    max_write_request_units = var.table_max_request_units.write
  }

  hash_key  = "PK"
  range_key = "SK"

  attribute {
    name = "PK"
    type = "S"
  }
  attribute {
    name = "SK"
    type = "S"
  }
  attribute {
    name = "D"
    type = "S"
  }
  attribute {
    name = "H"
    type = "N"
  }

  # The sparse device index: one entry per window head (device, hour); other items have no D.
  # Keys only: an entry is written once, when its window is created (keys never change, so head
  # updates do not touch it); the per-device routes then read the heads by key.
  global_secondary_index {
    name            = "device"
    hash_key        = "D"
    range_key       = "H"
    projection_type = "KEYS_ONLY"
  }

  # Every head write, before and after, for the fleet function (functions.tf), which folds it
  # into its hour's fleet lanes. Reading the stream is billed by requests, not by items.
  stream_enabled   = true
  stream_view_type = "NEW_AND_OLD_IMAGES"

  # Items carry "ttl" only when IOTPIPE_TTL_DAYS is set (var.ttl_days); the others never expire.
  ttl {
    attribute_name = "ttl"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.data.arn
  }

  deletion_protection_enabled = var.protect_data
}
