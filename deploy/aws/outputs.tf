# What a user (and the tests) need to reach the deployed stack.

output "api_url" {
  description = "Base URL of the HTTP API (POST /v1/readings, GET /v1/..., the dashboard at /)."
  value       = aws_apigatewayv2_stage.default.invoke_url
}

output "api_id" {
  description = "Id of the API Gateway HTTP API."
  value       = aws_apigatewayv2_api.http.id
}

output "stream_name" {
  description = "The Kinesis stream readings are put on."
  value       = aws_kinesis_stream.readings.name
}

output "stream_arn" {
  description = "ARN of the Kinesis stream."
  value       = aws_kinesis_stream.readings.arn
}

output "table_name" {
  description = "The DynamoDB table of hourly aggregates."
  value       = aws_dynamodb_table.windows.name
}

output "bucket" {
  description = "The S3 bucket of the raw archive (raw/) and the quarantine (rejected/)."
  value       = aws_s3_bucket.archive.bucket
}

output "failure_destination" {
  description = "Where the event source mapping keeps the batches it gave up on: s3://<bucket>/<prefix> (`iotpipe redrive` reads them)."
  value       = "s3://${aws_s3_bucket.archive.bucket}/${local.failure_prefix}"
}

output "api_keys_secret_arn" {
  description = "ARN of the Secrets Manager secret holding the API keys (a JSON list)."
  value       = aws_secretsmanager_secret.api_keys.arn
}

output "function_names" {
  description = "The Lambda functions, by role: ingest, process, api."
  value       = { for k, f in aws_lambda_function.fn : k => f.function_name }
}

output "alarm_topic_arn" {
  description = "The SNS topic the alarms publish to: subscribe to it."
  value       = aws_sns_topic.alarms.arn
}

output "dashboard_name" {
  description = "The CloudWatch dashboard of the pipeline."
  value       = aws_cloudwatch_dashboard.pipeline.dashboard_name
}

output "kms_key_arn" {
  description = "The KMS key encrypting the stack's data."
  value       = aws_kms_key.data.arn
}
