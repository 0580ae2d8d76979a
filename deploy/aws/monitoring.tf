# Alarms to an SNS topic, and a dashboard of the pipeline's health and of the metrics the
# process handler emits as CloudWatch Embedded Metric Format lines (namespace "iotpipe",
# dimension Function, plus Reason for RejectedByReason: iotpipe.entrypoints.aws.process).

resource "aws_sns_topic" "alarms" {
  name              = "${var.name_prefix}-alarms"
  kms_master_key_id = aws_kms_key.data.arn
}

# Who may publish to the topic: the account (the default policy's owner statement), CloudWatch
# alarms, and S3 for the failed batches landing in the archive bucket (failures.tf).
resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.alarm_topic.json
}

data "aws_iam_policy_document" "alarm_topic" {
  statement {
    sid       = "AccountManagesTheTopic"
    actions   = ["SNS:Publish", "SNS:Subscribe", "SNS:GetTopicAttributes", "SNS:SetTopicAttributes", "SNS:ListSubscriptionsByTopic"]
    resources = [aws_sns_topic.alarms.arn]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["SNS:Publish"]
    resources = [aws_sns_topic.alarms.arn]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
  statement {
    sid       = "FailedBatchesAreAnnounced"
    actions   = ["SNS:Publish"]
    resources = [aws_sns_topic.alarms.arn]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.archive.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_sns_topic_subscription" "email" {
  count     = var.alarm_email == null ? 0 : 1
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

locals {
  alarm_actions = [aws_sns_topic.alarms.arn]

  # Every alarm: name => the metric it watches and when it fires.
  alarms = merge(
    {
      "process-iterator-age" = {
        description = "The process function is falling behind the stream (oldest unprocessed record's age, ms)."
        namespace   = "AWS/Lambda", metric = "IteratorAge", statistic = "Maximum"
        dimensions  = { FunctionName = local.function_names.process }
        threshold   = var.iterator_age_alarm_ms, periods = 3
      }
      "fleet-iterator-age" = {
        description = "The fleet function is falling behind the table's stream: fleet totals lag, and records older than 24 h leave the stream unfolded (ms)."
        namespace   = "AWS/Lambda", metric = "IteratorAge", statistic = "Maximum"
        dimensions  = { FunctionName = local.function_names.fleet }
        threshold   = var.iterator_age_alarm_ms, periods = 3
      }
      "api-5xx" = {
        description = "The HTTP API answered with server errors."
        namespace   = "AWS/ApiGateway", metric = "5xx", statistic = "Sum"
        dimensions  = { ApiId = aws_apigatewayv2_api.http.id, Stage = "$default" }
        threshold   = 5, periods = 1
      }
      "table-read-throttles" = {
        description = "DynamoDB throttled reads of the windows table."
        namespace   = "AWS/DynamoDB", metric = "ReadThrottleEvents", statistic = "Sum"
        dimensions  = { TableName = aws_dynamodb_table.windows.name }
        threshold   = 0, periods = 1
      }
      "table-write-throttles" = {
        description = "DynamoDB throttled writes of the windows table (on-demand tables throttle on sudden x2 jumps or hot partitions)."
        namespace   = "AWS/DynamoDB", metric = "WriteThrottleEvents", statistic = "Sum"
        dimensions  = { TableName = aws_dynamodb_table.windows.name }
        threshold   = 0, periods = 1
      }
      "process-unapplied" = {
        description = "Records left unapplied by a transient store or archive failure (they are retried; persistent values mean an outage)."
        namespace   = "iotpipe", metric = "Unapplied", statistic = "Sum"
        dimensions  = { Function = "process" }
        threshold   = 0, periods = 3
      }
    },
    { for k, name in local.function_names : "${k}-errors" => {
      description = "The ${k} function failed (an exception or a timeout)."
      namespace   = "AWS/Lambda", metric = "Errors", statistic = "Sum"
      dimensions  = { FunctionName = name }
      threshold   = 0, periods = 1
    } },
    { for k, name in local.function_names : "${k}-throttles" => {
      description = "Lambda throttled the ${k} function (account or reserved concurrency reached)."
      namespace   = "AWS/Lambda", metric = "Throttles", statistic = "Sum"
      dimensions  = { FunctionName = name }
      threshold   = 0, periods = 1
    } },
  )
}

resource "aws_cloudwatch_metric_alarm" "alarm" {
  for_each = local.alarms

  alarm_name          = "${var.name_prefix}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  statistic           = each.value.statistic
  dimensions          = each.value.dimensions
  period              = 60
  evaluation_periods  = each.value.periods
  datapoints_to_alarm = each.value.periods
  threshold           = each.value.threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching" # no traffic is no problem
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

locals {
  fn = local.function_names

  lambda_metric = { for m in ["Invocations", "Errors", "Throttles"] : m => [
    for k, name in local.fn : ["AWS/Lambda", m, "FunctionName", name, { label = k, stat = "Sum" }]
  ] }

  emf_process = [
    for m in ["Received", "Accepted", "Duplicates", "Rejected", "WindowsUpdated", "Unapplied", "StoreRetries"] :
    ["iotpipe", m, "Function", "process", { stat = "Sum" }]
  ]

  widgets = [
    { title = "Readings in: Kinesis records put and read", metrics = [
      ["AWS/Kinesis", "IncomingRecords", "StreamName", aws_kinesis_stream.readings.name, { stat = "Sum" }],
      ["AWS/Kinesis", "GetRecords.Records", "StreamName", aws_kinesis_stream.readings.name, { stat = "Sum" }],
    ] },
    { title = "Process lag: iterator age (ms)", metrics = [
      ["AWS/Lambda", "IteratorAge", "FunctionName", local.fn.process, { stat = "Maximum" }],
      ["iotpipe", "ProcessingLag", "Function", "process", { stat = "Maximum" }],
    ] },
    { title = "Readings processed (EMF, per minute)", metrics = local.emf_process },
    { title = "Rejected readings by reason (EMF)", metrics = [
      [{ expression = "SEARCH('{iotpipe,Function,Reason} MetricName=\"RejectedByReason\"', 'Sum', 60)", id = "reasons", label = "" }],
    ] },
    { title = "Batch duration (EMF, ms)", metrics = [
      ["iotpipe", "BatchDuration", "Function", "process", { stat = "Average" }],
      ["iotpipe", "BatchDuration", "Function", "process", { stat = "p99" }],
    ] },
    { title = "Function invocations", metrics = local.lambda_metric["Invocations"] },
    { title = "Function errors and throttles", metrics = concat(local.lambda_metric["Errors"], local.lambda_metric["Throttles"]) },
    { title = "Function duration p99 (ms)", metrics = [
      for k, name in local.fn : ["AWS/Lambda", "Duration", "FunctionName", name, { label = k, stat = "p99" }]
    ] },
    { title = "HTTP API: requests, 4xx, 5xx", metrics = [
      for m in ["Count", "4xx", "5xx"] : ["AWS/ApiGateway", m, "ApiId", aws_apigatewayv2_api.http.id, "Stage", "$default", { stat = "Sum" }]
    ] },
    { title = "HTTP API latency p99 (ms)", metrics = [
      ["AWS/ApiGateway", "Latency", "ApiId", aws_apigatewayv2_api.http.id, "Stage", "$default", { stat = "p99" }],
      ["AWS/ApiGateway", "IntegrationLatency", "ApiId", aws_apigatewayv2_api.http.id, "Stage", "$default", { stat = "p99" }],
    ] },
    { title = "DynamoDB: capacity consumed and throttles", metrics = [
      for m in ["ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits", "ReadThrottleEvents", "WriteThrottleEvents"] :
      ["AWS/DynamoDB", m, "TableName", aws_dynamodb_table.windows.name, { stat = "Sum" }]
    ] },
  ]
}

resource "aws_cloudwatch_dashboard" "pipeline" {
  dashboard_name = "${var.name_prefix}-pipeline"
  dashboard_body = jsonencode({
    widgets = [for i, w in local.widgets : {
      type   = "metric"
      x      = (i % 2) * 12
      y      = floor(i / 2) * 6
      width  = 12
      height = 6
      properties = {
        title   = w.title
        region  = local.region
        metrics = w.metrics
        view    = "timeSeries"
        stacked = false
        period  = 60
      }
    }]
  })
}
