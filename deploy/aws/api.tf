# The public HTTP API (API Gateway HTTP API, payload format 2.0):
#   POST /v1/readings      -> ingest
#   GET  /v1/{proxy+}      -> api  (devices, hourly, daily, latest, fleet, health, openapi.json)
#   GET  /                 -> api  (the dashboard)
# Anything else answers 404 from API Gateway itself, without invoking a function.

resource "aws_apigatewayv2_api" "http" {
  name          = "${var.name_prefix}-http"
  protocol_type = "HTTP"
  description   = "iotpipe: ingest readings and query hourly aggregates"
}

resource "aws_apigatewayv2_integration" "fn" {
  for_each = toset(["ingest", "api"])

  api_id                 = aws_apigatewayv2_api.http.id
  integration_type       = "AWS_PROXY"
  integration_uri        = aws_lambda_function.fn[each.key].invoke_arn
  integration_method     = "POST"
  payload_format_version = "2.0"
  timeout_milliseconds   = 29000
}

locals {
  routes = {
    "POST /v1/readings" = "ingest"
    "GET /v1/{proxy+}"  = "api"
    "GET /"             = "api"
  }
}

resource "aws_apigatewayv2_route" "route" {
  for_each = local.routes
  #checkov:skip=CKV_AWS_309: authentication is done by the functions with the app's API keys from Secrets Manager (auth.tf); /, /v1/health and /v1/openapi.json are public by design

  api_id             = aws_apigatewayv2_api.http.id
  route_key          = each.key
  target             = "integrations/${aws_apigatewayv2_integration.fn[each.value].id}"
  authorization_type = "NONE"
}

resource "aws_cloudwatch_log_group" "api_access" {
  name              = "/aws/apigateway/${var.name_prefix}-http"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.data.arn
  #checkov:skip=CKV_AWS_338: retention is var.log_retention_days (30 by default): operational logs, not an audit trail; raise it if you need a year
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.http.id
  name        = "$default" # served at the API's root URL: no stage prefix in paths
  auto_deploy = true

  # Stage-wide throttling protects the functions (and the account's concurrency) from a flood;
  # ingest gets its own, lower limit since each request may carry 500 readings.
  default_route_settings {
    throttling_rate_limit  = var.api_throttle.rate
    throttling_burst_limit = var.api_throttle.burst
  }

  route_settings {
    route_key              = "POST /v1/readings"
    throttling_rate_limit  = var.ingest_throttle.rate
    throttling_burst_limit = var.ingest_throttle.burst
  }

  # One JSON line per request: who, what, how long, and the integration's own error if any.
  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_access.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      ip                 = "$context.identity.sourceIp"
      requestTime        = "$context.requestTime"
      httpMethod         = "$context.httpMethod"
      routeKey           = "$context.routeKey"
      path               = "$context.path"
      status             = "$context.status"
      protocol           = "$context.protocol"
      responseLength     = "$context.responseLength"
      responseLatency    = "$context.responseLatency"
      integrationLatency = "$context.integrationLatency"
      integrationStatus  = "$context.integrationStatus"
      integrationError   = "$context.integrationErrorMessage"
      userAgent          = "$context.identity.userAgent"
    })
  }

  depends_on = [aws_apigatewayv2_route.route]
}

# API Gateway may invoke ingest and api, from this API only.
resource "aws_lambda_permission" "api" {
  for_each = toset(["ingest", "api"])

  statement_id  = "AllowApiGatewayInvoke"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.fn[each.key].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.http.execution_arn}/*/*"
}
