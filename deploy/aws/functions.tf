# The five Lambda functions, from the zips of `iotpipe package aws` (one code zip shared by
# all, each with its own handler; the dependencies in a layer; boto3 from the runtime), and the
# Kinesis event source mapping of the process function, and the table stream's mapping of the
# fleet function.
#
# Choices common to all five (ingest, process, api, the API's authorizer, and fleet):
# - arm64 (Graviton): ~20% cheaper per GB-second than x86_64 and at least as fast for this
#   pure-Python + Rust-extension (pydantic-core, orjson) code; the layer is built for it.
# - X-Ray tracing (var.xray_tracing): Active on process, api and fleet gives Lambda's own
#   segments per invocation (the service, initialization and invocation time, errors and
#   throttles), sampled at 1 invocation/s + 5% (Lambda's fixed rate: an X-Ray sampling rule does
#   not change it). Ingest and the authorizer run once per request, so they are PassThrough:
#   an HTTP API sends no trace header, so they record no traces (at 100,000 devices, Active on
#   them would record ~170 traces/s, ~$2,200 a month). The AWS SDK calls made inside (DynamoDB,
#   S3, Kinesis) are NOT traced: nothing instruments boto3 (the X-Ray SDK or Powertools Tracer
#   would add their import to every cold start and a few MB to the package); the handlers' EMF
#   metrics and summary lines (BatchDuration, StoreRetries, Unapplied) cover where time goes.
# - Platform logs (var.platform_log_level): Lambda writes START, END and REPORT lines for every
#   invocation; at ingest's and the authorizer's rate (once per request) they would cost more
#   than everything the handlers log, so those two log JSON at system level WARN (errors only).
# - Log groups /aws/lambda/<name> (Lambda's default) are created here, before the functions, so
#   that they have a retention and are encrypted; Lambda would otherwise create them on first
#   use, kept forever. The handlers write JSON lines and EMF metric lines (observability.py).
# - The environment is encrypted with the stack's KMS key and holds exactly the settings each
#   function reads (iotpipe.entrypoints.aws.settings; a test checks them), no secret: the API
#   keys are read from Secrets Manager at cold start (auth.tf).

locals {
  # The telemetry schema: packaged in the code zip (iotpipe.entrypoints.deployed_schema), named
  # here so that a zip packaged with another schema is never deployed by mistake.
  packaged_schema        = try(jsondecode(file("${dirname(var.code_zip)}/manifest.json")).telemetry_schema, null)
  declared_schema_sha256 = var.telemetry_schema_file == null ? null : filesha256(var.telemetry_schema_file)

  handlers = {
    ingest     = "iotpipe.entrypoints.aws.ingest.handler"
    process    = "iotpipe.entrypoints.aws.process.handler"
    api        = "iotpipe.entrypoints.aws.api.handler"
    authorizer = "iotpipe.entrypoints.aws.authorizer.handler"
    fleet      = "iotpipe.entrypoints.aws.fleet.handler"
  }

  lateness = {
    IOTPIPE_LATENESS_HORIZON_HOURS = tostring(var.lateness_horizon_hours)
    IOTPIPE_MAX_SKEW_SECONDS       = tostring(var.max_skew_seconds)
  }

  environment = {
    # Validates and publishes: needs the stream, the keys, and the lateness policy (it refuses
    # too_late/from_future readings at the door, with the same rules as process).
    # Compresses what it publishes (var.stream_compression).
    ingest = merge(local.lateness, {
      IOTPIPE_STREAM_NAME        = aws_kinesis_stream.readings.name
      IOTPIPE_API_KEYS_SECRET    = aws_secretsmanager_secret.api_keys.arn
      IOTPIPE_STREAM_COMPRESSION = var.stream_compression
    }, local.base_path)
    # Applies batches to the table and writes the archive and quarantine. The lateness policy is
    # judged against the record's arrival on the stream; TTL only when var.ttl_days is set.
    process = merge(local.lateness, {
      IOTPIPE_TABLE_NAME   = aws_dynamodb_table.windows.name
      IOTPIPE_BUCKET       = aws_s3_bucket.archive.bucket
      IOTPIPE_FLEET_SHARDS = tostring(var.fleet_shards)
      }, var.ttl_days == null ? {} : {
      IOTPIPE_TTL_DAYS = tostring(var.ttl_days)
    })
    # Read-only queries: the table (with the same fleet_shards as process) and the keys.
    api = merge({
      IOTPIPE_TABLE_NAME      = aws_dynamodb_table.windows.name
      IOTPIPE_FLEET_SHARDS    = tostring(var.fleet_shards)
      IOTPIPE_API_KEYS_SECRET = aws_secretsmanager_secret.api_keys.arn
    }, local.base_path)
    # The gateway's key check (api.tf): the keys only.
    authorizer = {
      IOTPIPE_API_KEYS_SECRET = aws_secretsmanager_secret.api_keys.arn
    }
    # Folds window heads from the table's stream into the fleet lanes (same table, same TTL).
    fleet = merge({
      IOTPIPE_TABLE_NAME = aws_dynamodb_table.windows.name
      }, var.ttl_days == null ? {} : {
      IOTPIPE_TTL_DAYS = tostring(var.ttl_days)
    })
  }

  # A custom domain's API mapping key, stripped from paths before routing (only when set).
  base_path = var.api_base_path == null ? {} : { IOTPIPE_API_BASE_PATH = var.api_base_path }
}

resource "aws_cloudwatch_log_group" "function" {
  for_each = local.function_names

  name              = "/aws/lambda/${each.value}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.data.arn
  #checkov:skip=CKV_AWS_338: retention is var.log_retention_days (30 by default): operational logs, not an audit trail; raise it if you need a year
}

resource "aws_lambda_layer_version" "deps" {
  layer_name               = "${var.name_prefix}-deps"
  description              = "iotpipe's runtime dependencies (pydantic, orjson) for ${var.lambda_runtime} ${var.lambda_architecture}"
  filename                 = var.layer_zip
  source_code_hash         = filebase64sha256(var.layer_zip)
  compatible_runtimes      = [var.lambda_runtime]
  compatible_architectures = [var.lambda_architecture]
}

# Memory and timeout (var.functions); on Lambda, CPU is proportional to memory:
# - ingest, 512 MB / 10 s: validates up to 500 readings (1 MiB) per request with pydantic and
#   makes one or two PutRecords calls; 512 MB keeps that, and the cold start (imports), in tens of
#   milliseconds. API Gateway gives up after 30 s anyway; 10 s bounds a stuck call far sooner.
# - process, 512 MB / 60 s: unpacks, decodes and validates a batch of up to batch_size records,
#   then reads and writes the DynamoDB items of each window touched (with retries on conflicts)
#   and puts the archive objects. It waits on DynamoDB most of the time (~10 of ~13
#   function-seconds per second at 100,000 devices, docs/scaling.md), so 512 MB (~0.29 vCPU)
#   costs half the GB-seconds of 1,024 for a batch a few hundred milliseconds longer in CPU;
#   raise it to drain a backlog faster. 60 s leaves ample room over a normal batch (~1-2 s) for
#   store retries with backoff; a batch that times out is retried like any failure.
# - api, 512 MB / 10 s: a query is a few DynamoDB Query/BatchGetItem pages (a fleet hour merges
#   fleet_shards of them); 10 s is far above that and below API Gateway's 30 s.
# - authorizer, 256 MB / 5 s: compares the presented key with the secret's (read once per
#   execution environment); its imports are the HTTP API's key check only.
# - fleet, 256 MB / 30 s: one GetItem and one conditional PutItem per hour in a batch of stream
#   records (a batch rarely spans more than two hours).
resource "aws_lambda_function" "fn" {
  for_each = local.function_names
  #checkov:skip=CKV_AWS_116: invoked synchronously (API Gateway) or by the Kinesis mapping, which has its own on-failure S3 destination; a function DLQ applies to async invocations only
  #checkov:skip=CKV_AWS_117: the functions call only AWS APIs under IAM-scoped roles; a VPC would need NAT gateways or VPC endpoints (cost) without protecting anything more
  #checkov:skip=CKV_AWS_272: code signing needs an AWS Signer profile; the zips are reproducible and their hashes pinned by source_code_hash
  #checkov:skip=CKV_AWS_115: reserved concurrency is opt-in (var.functions: reserved_concurrency): on new accounts with a low concurrency quota reserving any fails the deployment

  function_name = each.value
  description   = "iotpipe ${each.key}"
  role          = aws_iam_role.function[each.key].arn
  handler       = local.handlers[each.key]
  runtime       = var.lambda_runtime
  architectures = [var.lambda_architecture]

  filename         = var.code_zip
  source_code_hash = filebase64sha256(var.code_zip)
  layers           = [aws_lambda_layer_version.deps.arn]

  memory_size                    = var.functions[each.key].memory_mb
  timeout                        = var.functions[each.key].timeout_s
  reserved_concurrent_executions = coalesce(var.functions[each.key].reserved_concurrency, -1)

  kms_key_arn = aws_kms_key.data.arn
  environment {
    variables = local.environment[each.key]
  }

  tracing_config {
    mode = lookup(var.xray_tracing, each.key, "Active")
  }

  # Only for the functions named in var.platform_log_level (ingest and the authorizer): JSON
  # logs whose system level drops Lambda's per-invocation START/END/REPORT lines.
  dynamic "logging_config" {
    for_each = contains(keys(var.platform_log_level), each.key) ? [var.platform_log_level[each.key]] : []
    content {
      log_format            = "JSON"
      system_log_level      = logging_config.value
      application_log_level = "INFO"
    }
  }

  lifecycle {
    precondition {
      condition     = local.packaged_schema == null || try(local.packaged_schema.sha256, null) == local.declared_schema_sha256
      error_message = "The code zip was packaged with another telemetry schema than var.telemetry_schema_file: run `iotpipe package aws --schema FILE` with the same file (or set the variable to the file the zip was packaged with)."
    }
  }

  depends_on = [aws_iam_role_policy.function, aws_cloudwatch_log_group.function]
}

# Kinesis -> process. Each setting, and why:
resource "aws_lambda_event_source_mapping" "process" {
  function_name    = aws_lambda_function.fn["process"].arn
  event_source_arn = aws_kinesis_stream.readings.arn

  # From the oldest record kept: nothing put on the stream before the mapping exists is skipped.
  starting_position = "TRIM_HORIZON"

  # Up to 500 records per invocation, waiting at most 5 s to fill a batch. Store writes scale
  # with windows, not records, so bigger batches fold more readings into each DynamoDB write
  # when devices post more often than the window (cheaper); with device-minute records they cut
  # invocations and archive objects ~5x against 1 s (objects then large enough for the lifecycle
  # rules). 5 s bounds the latency a quiet stream adds to the aggregates.
  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.batching_window_s

  # The handler answers with the sequence numbers a transient failure left unapplied; Lambda
  # retries from the lowest of them only, and records already applied are absorbed again as
  # duplicates (no change). Bad data never fails: it is quarantined in S3 and reported a success.
  function_response_types = ["ReportBatchItemFailures"]

  # If the function itself fails (a crash, a timeout), halve the batch on each retry: a batch
  # that kills the function shrinks to the record that does, while the others get through.
  bisect_batch_on_function_error = true

  # Transient failures (throttling, a DynamoDB or S3 outage) deserve retries, but a batch
  # retried forever blocks its shard: 10 retries with bisection, and never past 6 hours of
  # age, then the batch itself goes to the S3 failure destination (failures.tf) and the shard
  # moves on; `iotpipe redrive` processes it from there. The stream keeps records 72 h besides
  # (stream_retention_hours), so a weekend's outage can also be read back from the stream.
  maximum_retry_attempts        = var.max_retry_attempts
  maximum_record_age_in_seconds = var.max_record_age_s

  # Eight concurrent batches per shard. Lambda keeps one partition key (one device) on one of
  # them, in order, so concurrent batches never contend for a device's windows. Compressed
  # records keep the stream small (100,000 devices put ~1.7 MB/s: ~4 shards, on-demand's
  # starting capacity), while process waits on DynamoDB for ~15 function-seconds each second
  # (docs/scaling.md): 4 shards x 8 = 32 concurrent batches hold that with ~2x headroom, where 2
  # per shard would give 8 and fall behind. On-demand streams add shards as traffic grows,
  # which multiplies concurrency further.
  parallelization_factor = var.parallelization_factor

  destination_config {
    on_failure {
      destination_arn = aws_s3_bucket.archive.arn # the records themselves (failures.tf)
    }
  }

  depends_on = [aws_iam_role_policy.function]
}

# The table's stream -> fleet (each hour's fleet total, iotpipe.adapters.aws.dynamodb_fleet).
# Each setting, and why:
resource "aws_lambda_event_source_mapping" "fleet" {
  function_name    = aws_lambda_function.fn["fleet"].arn
  event_source_arn = aws_dynamodb_table.windows.stream_arn

  # From the oldest record kept (24 h): no head write is skipped, and the lanes fold nothing
  # twice (each holds the last sequence number it folded for its stream shard).
  starting_position = "TRIM_HORIZON"

  # A tumbling window is what makes Lambda name the stream shard in the event (shardId): a lane
  # is one hour's total per stream shard. The window's own state is unused (the lanes are the
  # state), so its length only bounds how long a lane lags the heads: 60 s. Batches of up to
  # 1,000 records wait at most 5 s: each costs one read and one write per hour it touches.
  tumbling_window_in_seconds         = 60
  batch_size                         = 1000
  maximum_batching_window_in_seconds = 5

  # Only writes of window heads (PK "W#..."; not TTL's deletions): the lanes' and segments'
  # own writes are on the stream too, and would otherwise invoke the function for nothing.
  filter_criteria {
    filter {
      pattern = jsonencode({
        eventName = ["INSERT", "MODIFY"]
        dynamodb  = { Keys = { PK = { S = [{ prefix = "W#" }] } } }
      })
    }
  }

  # One batch per stream shard at a time, in order (the lanes' last-sequence rule needs it:
  # parallelization_factor stays 1). Failures (throttling) are retried until the records
  # leave the stream (24 h), never skipped: skipping would lose their deltas from the total.
  parallelization_factor = 1
  maximum_retry_attempts = -1

  depends_on = [aws_iam_role_policy.function]
}
