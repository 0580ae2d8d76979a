# Optional (var.enable_iot): devices speaking MQTT to AWS IoT Core instead of HTTP. A topic rule
# puts each message on the stream as it is (one reading, or a JSON array of readings: the same
# record format ingest writes), so the process function treats both paths alike. The partition
# key is the topic's device segment, `${topic(2)}` of iotpipe/<device>/readings: an array payload
# has no top-level device_id (`${device_id}` would be empty for it, and the put would fail), and
# the topic names the device for both shapes, so one device's messages stay on one shard. Validation happens in process (bad messages are quarantined);
# IoT Core's own device authentication (X.509 certificates, policies) replaces the API keys.
# Things, certificates and IoT policies are per fleet and left to you.

resource "aws_iot_topic_rule" "readings" {
  count = var.enable_iot ? 1 : 0

  name        = replace("${var.name_prefix}_readings", "-", "_")
  description = "MQTT readings on ${var.iot_topic_filter} -> the ${aws_kinesis_stream.readings.name} stream"
  enabled     = true
  sql         = "SELECT * FROM '${var.iot_topic_filter}'"
  sql_version = "2016-03-23"

  kinesis {
    stream_name   = aws_kinesis_stream.readings.name
    partition_key = "$${topic(2)}" # an IoT substitution template, not Terraform's
    role_arn      = aws_iam_role.iot[0].arn
  }

  # A message the rule could not put on the stream is logged, not lost silently.
  error_action {
    cloudwatch_logs {
      log_group_name = aws_cloudwatch_log_group.iot_errors[0].name
      role_arn       = aws_iam_role.iot[0].arn
    }
  }
}

resource "aws_cloudwatch_log_group" "iot_errors" {
  count = var.enable_iot ? 1 : 0
  #checkov:skip=CKV_AWS_338: retention is var.log_retention_days (30 by default): operational logs, not an audit trail; raise it if you need a year

  name              = "/aws/iot/${var.name_prefix}-rule-errors"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.data.arn
}

data "aws_iam_policy_document" "iot_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["iot.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "iot" {
  count = var.enable_iot ? 1 : 0

  name               = "${var.name_prefix}-iot-rule-role"
  description        = "Lets the iotpipe IoT topic rule put messages on the stream"
  assume_role_policy = data.aws_iam_policy_document.iot_assume.json
}

resource "aws_iam_role_policy" "iot" {
  count = var.enable_iot ? 1 : 0

  name   = "${var.name_prefix}-iot-rule-policy"
  role   = aws_iam_role.iot[0].id
  policy = data.aws_iam_policy_document.iot[0].json
}

data "aws_iam_policy_document" "iot" {
  count = var.enable_iot ? 1 : 0

  statement {
    sid       = "PutReadings"
    actions   = ["kinesis:PutRecord"]
    resources = [aws_kinesis_stream.readings.arn]
  }
  statement {
    sid       = "EncryptForTheStream"
    actions   = ["kms:GenerateDataKey"]
    resources = [aws_kms_key.data.arn]
  }
  statement {
    sid       = "LogRuleErrors"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.iot_errors[0].arn}:*"]
  }
}
