# One execution role per function, each allowed only its own resources and actions:
#   ingest:  PutRecords on the stream; read the API-keys secret.
#   process: read the stream (the event source mapping polls with the function's role); read
#            and write items of the table; put objects under raw/ and rejected/, and the failed
#            batches under aws/lambda/ (the on-failure destination).
#   api:     read items of the table and its device index; read the API-keys secret.
#   fleet:   read the table's stream; read and write the fleet lanes and read the schema record
#            (items of the table).
#   authorizer: read the API-keys secret.
# Every role also writes its own log group and X-Ray segments. KMS: only the operations its data
# needs, on the stack's key. No action on data has a "*" resource.

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each = local.function_names

  name               = "${each.value}-role"
  description        = "Execution role of the iotpipe ${each.key} function"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

resource "aws_iam_role_policy" "function" {
  for_each = local.function_names

  name   = "${each.value}-policy"
  role   = aws_iam_role.function[each.key].id
  policy = data.aws_iam_policy_document.function[each.key].json
}

locals {
  table_arns = [aws_dynamodb_table.windows.arn, "${aws_dynamodb_table.windows.arn}/index/device"]

  # The statements specific to each function (common ones are added below).
  function_statements = {
    ingest = [
      {
        sid       = "PublishReadings"
        actions   = ["kinesis:PutRecords", "kinesis:PutRecord"]
        resources = [aws_kinesis_stream.readings.arn]
      },
      {
        sid       = "ReadApiKeys"
        actions   = ["secretsmanager:GetSecretValue"]
        resources = [aws_secretsmanager_secret.api_keys.arn]
      },
      {
        # Encrypting records for the KMS-encrypted stream; decrypting the secret.
        sid       = "UseTheDataKey"
        actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
        resources = [aws_kms_key.data.arn]
      },
    ]
    process = [
      {
        # What the event source mapping needs to poll the stream.
        sid = "ConsumeTheStream"
        actions = [
          "kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords",
          "kinesis:GetShardIterator", "kinesis:ListShards", "kinesis:SubscribeToShard",
        ]
        resources = [aws_kinesis_stream.readings.arn]
      },
      {
        # Load heads (BatchGetItem), a window's identity segments (Query), register devices
        # (GetItem), segments and conditional head writes (PutItem).
        sid       = "ReadAndWriteWindows"
        actions   = ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"]
        resources = [aws_dynamodb_table.windows.arn]
      },
      {
        sid       = "WriteArchiveAndQuarantine"
        actions   = ["s3:PutObject"]
        resources = ["${aws_s3_bucket.archive.arn}/raw/*", "${aws_s3_bucket.archive.arn}/rejected/*"]
      },
      {
        # The on-failure destination (written with the function's role): the invocation
        # records under aws/lambda/, and the listing Lambda documents it needs.
        sid       = "KeepFailedBatches"
        actions   = ["s3:PutObject"]
        resources = ["${aws_s3_bucket.archive.arn}/${local.failure_prefix}*"]
      },
      {
        sid       = "ListForFailedBatches"
        actions   = ["s3:ListBucket"]
        resources = [aws_s3_bucket.archive.arn]
      },
      {
        # Decrypting the stream's records; encrypting archive objects and failed batches.
        sid       = "UseTheDataKey"
        actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
        resources = [aws_kms_key.data.arn]
      },
    ]
    authorizer = [
      {
        sid       = "ReadApiKeys"
        actions   = ["secretsmanager:GetSecretValue"]
        resources = [aws_secretsmanager_secret.api_keys.arn]
      },
      {
        sid       = "UseTheDataKey"
        actions   = ["kms:Decrypt"]
        resources = [aws_kms_key.data.arn]
      },
    ]
    fleet = [
      {
        # What the event source mapping needs to poll the table's stream.
        sid = "ConsumeTheTableStream"
        actions = [
          "dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
          "dynamodb:ListStreams",
        ]
        resources = [aws_dynamodb_table.windows.stream_arn]
      },
      {
        # A lane's current state and, at start, the table's telemetry schema record (GetItem:
        # heads and lanes are read by the schema it keeps); a lane's conditional write (PutItem).
        sid       = "ReadAndWriteLanes"
        actions   = ["dynamodb:GetItem", "dynamodb:PutItem"]
        resources = [aws_dynamodb_table.windows.arn]
      },
      {
        # The table (and so its stream) is encrypted with the stack's key.
        sid       = "UseTheDataKey"
        actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
        resources = [aws_kms_key.data.arn]
      },
    ]
    api = [
      {
        # Hourly/daily/latest (Query on the device index, BatchGetItem of the heads), fleet hours
        # (Query of the hour's head partitions and of its lanes).
        sid       = "ReadWindows"
        actions   = ["dynamodb:Query", "dynamodb:GetItem", "dynamodb:BatchGetItem"]
        resources = local.table_arns
      },
      {
        sid       = "ReadApiKeys"
        actions   = ["secretsmanager:GetSecretValue"]
        resources = [aws_secretsmanager_secret.api_keys.arn]
      },
      {
        sid       = "UseTheDataKey"
        actions   = ["kms:Decrypt"]
        resources = [aws_kms_key.data.arn]
      },
    ]
  }
}

data "aws_iam_policy_document" "function" {
  for_each = local.function_names

  # Its own log group only (created in functions.tf, so no logs:CreateLogGroup).
  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function[each.key].arn}:*"]
  }

  # X-Ray's write actions take no resource: "*" is the only possible value (no data behind it).
  statement {
    sid       = "WriteTraces"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = local.function_statements[each.key]
    content {
      sid       = statement.value.sid
      actions   = statement.value.actions
      resources = statement.value.resources
    }
  }
}
