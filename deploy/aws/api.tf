# The public HTTP API (API Gateway HTTP API, payload format 2.0):
#   POST /v1/readings      -> ingest   (key checked by ingest itself; the authorizer first only
#                                       with var.ingest_gateway_authorizer)
#   GET  /v1/{proxy+}      -> api      (devices, hourly, daily, latest, fleet; the authorizer first)
#   GET  /v1/health, GET /v1/openapi.json, GET /  -> api, public (no key, as on every runtime)
# Anything else answers 404 from API Gateway itself, without invoking a function.
#
# Every function checks the key itself (the same code on every runtime: 401 without a valid
# one). The query routes also have a Lambda request authorizer at the gateway (the authorizer
# function, iotpipe.entrypoints.aws.authorizer), so an unauthenticated flood never reaches api.
# The ingest route does not by default: there the authorizer would check the same key with the
# same code a second time, for one more Lambda invocation per request (~$950 a month at 100,000
# devices, docs/scaling.md), and protect nothing more: a refused request costs one invocation
# either way (the authorizer's or ingest's), and the ingest route's throttle bounds both.
# var.ingest_gateway_authorizer = true puts it back (e.g. to keep refused requests out of
# ingest's concurrency, or to cache answers with var.authorizer_cache_s).

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
  # Route -> (function, protected by the gateway's authorizer).
  routes = {
    "POST /v1/readings"    = { fn = "ingest", protected = var.ingest_gateway_authorizer }
    "GET /v1/{proxy+}"     = { fn = "api", protected = true }
    "GET /v1/health"       = { fn = "api", protected = false }
    "GET /v1/openapi.json" = { fn = "api", protected = false }
    "GET /"                = { fn = "api", protected = false }
  }
}

# The key check, before the function: payload 2.0 with simple responses ({"isAuthorized": ...});
# a refusal is answered 403 by API Gateway. With authorizer_cache_s > 0 (0 by default) the answer
# is cached per Authorization header, which API Gateway then requires on the routes it protects
# (401 without it, no call at all: a key in X-API-Key alone is refused there).
resource "aws_apigatewayv2_authorizer" "keys" {
  api_id                            = aws_apigatewayv2_api.http.id
  name                              = "${var.name_prefix}-api-keys"
  authorizer_type                   = "REQUEST"
  authorizer_uri                    = aws_lambda_function.fn["authorizer"].invoke_arn
  authorizer_payload_format_version = "2.0"
  enable_simple_responses           = true
  authorizer_result_ttl_in_seconds  = var.authorizer_cache_s
  identity_sources                  = var.authorizer_cache_s > 0 ? ["$request.header.Authorization"] : []
}

resource "aws_apigatewayv2_route" "route" {
  for_each = local.routes
  #checkov:skip=CKV_AWS_309: /, /v1/health and /v1/openapi.json are public by design (no key on any runtime); POST /v1/readings is authorized by the ingest function itself (401 without a valid key, the authorizer's own code), since a gateway authorizer there would be a second Lambda invocation per request (~$950 a month at 100,000 devices) for the same check (var.ingest_gateway_authorizer puts it back); GET /v1/{proxy+} has the CUSTOM authorizer

  api_id             = aws_apigatewayv2_api.http.id
  route_key          = each.key
  target             = "integrations/${aws_apigatewayv2_integration.fn[each.value.fn].id}"
  authorization_type = each.value.protected ? "CUSTOM" : "NONE"
  authorizer_id      = each.value.protected ? aws_apigatewayv2_authorizer.keys.id : null
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

  # One short JSON line per request (~200 bytes): who, what, the answer, how long, and the
  # integration's own error if any. Every request is logged (~1,667/s at 100,000 devices), so
  # each byte costs: a 15-field line (~450 bytes, with the user agent, the protocol, the method
  # and path the route key repeats, the integration's status and latency) was ~$985 a month, this
  # one ~$440 (docs/scaling.md). The function's own logs and metrics say the rest.
  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_access.arn
    format = jsonencode({
      requestId        = "$context.requestId"
      ip               = "$context.identity.sourceIp"
      time             = "$context.requestTimeEpoch"
      routeKey         = "$context.routeKey"
      path             = "$context.path"
      status           = "$context.status"
      responseLength   = "$context.responseLength"
      responseLatency  = "$context.responseLatency"
      integrationError = "$context.integrationErrorMessage"
    })
  }

  depends_on = [aws_apigatewayv2_route.route]
}

# API Gateway may invoke the authorizer, from this API's authorizers only.
resource "aws_lambda_permission" "authorizer" {
  statement_id  = "AllowApiGatewayAuthorizer"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.fn["authorizer"].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.http.execution_arn}/authorizers/${aws_apigatewayv2_authorizer.keys.id}"
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
