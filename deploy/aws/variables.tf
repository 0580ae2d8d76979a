# Inputs. Every one has a default suited to a first deployment; see README.md for the choices.

# --- where and what ---------------------------------------------------------------------------

variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-east-1"
}

variable "name_prefix" {
  description = "Prefix of every resource name (functions, stream, table, queue, ...). Change it to deploy a second stack in the same account."
  type        = string
  default     = "iotpipe"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix: 3-32 characters, lowercase letters, digits and '-', starting with a letter."
  }
}

variable "tags" {
  description = "Extra tags for every resource (added to Project and Stack)."
  type        = map(string)
  default     = {}
}

variable "aws_endpoint_url" {
  description = "null (the default) deploys to real AWS. A URL (e.g. http://127.0.0.1:5000, a moto server) sends every AWS call there, with dummy credentials and the provider's account checks off: for tests only."
  type        = string
  default     = null
}

variable "protect_data" {
  description = "Protect the stored data from `terraform destroy`: DynamoDB deletion protection on, and the archive bucket is not emptied by Terraform. `make destroy-aws` turns it off first."
  type        = bool
  default     = true
}

# --- code ---------------------------------------------------------------------------------------

variable "code_zip" {
  description = "Path of iotpipe-code.zip built by `iotpipe package aws` (relative to the directory Terraform runs in)."
  type        = string
  default     = "../../dist/aws/iotpipe-code.zip"
}

variable "telemetry_schema_file" {
  description = "The telemetry schema file (TOML) the functions' code was packaged with (`iotpipe package aws --schema FILE`); null: the default payload. The functions read the packaged copy; Terraform refuses to deploy code packaged with another schema (sha256 against the manifest.json beside the code zip)."
  type        = string
  default     = null
}

variable "layer_zip" {
  description = "Path of iotpipe-deps-layer.zip built by `iotpipe package aws` (relative to the directory Terraform runs in)."
  type        = string
  default     = "../../dist/aws/iotpipe-deps-layer.zip"
}

variable "lambda_architecture" {
  description = "Lambda architecture; must match `iotpipe package aws --arch` (arm64 by default: ~20% cheaper per GB-second, and the layer's wheels are built for it)."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be arm64 or x86_64."
  }
}

variable "lambda_runtime" {
  description = "Lambda Python runtime; must match `iotpipe package aws --python` (3.12 by default)."
  type        = string
  default     = "python3.12"
}

variable "functions" {
  description = "Memory (MB) and timeout (s) per function, and optional reserved concurrency (null: share the account's pool). The defaults are explained in functions.tf."
  type = map(object({
    memory_mb            = number
    timeout_s            = number
    reserved_concurrency = optional(number)
  }))
  default = {
    ingest     = { memory_mb = 512, timeout_s = 10 }
    process    = { memory_mb = 512, timeout_s = 60 }
    api        = { memory_mb = 512, timeout_s = 10 }
    authorizer = { memory_mb = 256, timeout_s = 5 }
    fleet      = { memory_mb = 256, timeout_s = 30 }
  }

  validation {
    condition     = alltrue([for k in ["ingest", "process", "api", "authorizer", "fleet"] : contains(keys(var.functions), k)])
    error_message = "functions must have the entries ingest, process, api, authorizer and fleet."
  }

  validation {
    # The process function keeps ~8 s back from its time left to finish a batch in time
    # (iotpipe.entrypoints.aws.process.RESERVE_S): a shorter timeout could start no write.
    condition     = var.functions["process"].timeout_s >= 15
    error_message = "functions.process.timeout_s must be at least 15 s."
  }
}

variable "table_max_request_units" {
  description = "Cost guard: DynamoDB on-demand maximum read and write request units per second for the table (its on_demand_throughput; -1: no cap). Requests beyond are throttled, and the process function retries them (partial batch failures). The defaults leave room above the documented scale (docs/scaling.md: ~15,700 WRU/s, ~4,500 RRU/s at 100,000 readings/s)."
  type        = object({ read = number, write = number })
  default     = { read = 20000, write = 20000 }
}

variable "ingest_gateway_authorizer" {
  description = "Whether POST /v1/readings also has the Lambda request authorizer at API Gateway. false (the default): the ingest function checks the key itself (the same code as the authorizer; 401 without a valid key, in Authorization or X-API-Key), one Lambda invocation per request instead of two (the authorizer on every ingest request is ~$950 a month at 100,000 devices, docs/scaling.md). true: refused requests are answered by API Gateway and never use ingest's concurrency, at that cost; with authorizer_cache_s > 0 the cost mostly goes away, but then devices must send the key in Authorization (X-API-Key alone is refused, 401). The query routes always have the authorizer."
  type        = bool
  default     = false
}

variable "authorizer_cache_s" {
  description = "Seconds API Gateway caches the authorizer's answer per key (0-3600) on the routes it protects (the query routes; also POST /v1/readings with ingest_gateway_authorizer). 0 (the default) calls it for every request and accepts keys in Authorization or X-API-Key, as every iotpipe runtime does. > 0 calls it about once per key per period: a revoked key keeps working up to that long, and the cache is keyed on the Authorization header, which API Gateway then requires on those routes (X-API-Key alone is refused, 401). A lever for heavy query traffic, or with ingest_gateway_authorizer if your devices send Authorization. See deploy/aws/README.md."
  type        = number
  default     = 0

  validation {
    condition     = var.authorizer_cache_s >= 0 && var.authorizer_cache_s <= 3600
    error_message = "authorizer_cache_s must be between 0 and 3600."
  }
}

variable "api_base_path" {
  description = "The API mapping key if you serve the API on a custom domain with one (e.g. \"iot\" for https://api.example.com/iot/v1/...): the handlers strip it from paths. null: no custom-domain base path (a named stage's prefix is stripped either way)."
  type        = string
  default     = null
}

# --- the pipeline's tunables (the handlers' environment) ----------------------------------------

variable "lateness_horizon_hours" {
  description = "Readings older than this (judged against their arrival on the stream) are refused as too_late. 0 accepts any age."
  type        = number
  default     = 168
}

variable "max_skew_seconds" {
  description = "Readings more than this ahead of their arrival time are refused as from_future."
  type        = number
  default     = 300
}

variable "fleet_shards" {
  description = "Partitions of the fleet index per hour (spreads a busy hour). Part of the table's layout: never change it on a table holding data."
  type        = number
  default     = 16
}

variable "ttl_days" {
  description = "Hourly aggregates expire this many days after the end of their hour, in event time (DynamoDB TTL). null keeps them forever."
  type        = number
  default     = null
}

variable "api_keys" {
  description = "Initial API keys written to the Secrets Manager secret. They end up in the Terraform state; Terraform writes them once and never reverts keys rotated later with `aws secretsmanager put-secret-value`. Empty: no key is valid until you put one."
  type        = list(string)
  default     = []
  sensitive   = true
}

variable "secret_recovery_days" {
  description = "Days a deleted API-keys secret can be restored (0 deletes it at once; 7-30 otherwise)."
  type        = number
  default     = 7
}

# --- stream and event source mapping ----------------------------------------------------------

variable "stream_retention_hours" {
  description = "Kinesis retention (24-8760 h). 72 by default, so that records given up on a Friday night can still be read from the stream on Monday; hours beyond 24 are billed as extended retention (docs/scaling.md)."
  type        = number
  default     = 72

  validation {
    condition     = var.stream_retention_hours >= 24 && var.stream_retention_hours <= 8760
    error_message = "stream_retention_hours must be between 24 and 8760."
  }
}

variable "batch_size" {
  description = "Records per process invocation (1-10000). See functions.tf."
  type        = number
  default     = 500
}

variable "batching_window_s" {
  description = "Seconds Lambda may wait to fill a batch (0-300). 5 by default: up to 4 s more before a reading is in the aggregates than 1 s would take, for ~5x fewer process invocations and archive objects, large enough for the archive's lifecycle rules (docs/scaling.md). See functions.tf."
  type        = number
  default     = 5

  validation {
    condition     = var.batching_window_s >= 0 && var.batching_window_s <= 300
    error_message = "batching_window_s must be between 0 and 300."
  }
}

variable "stream_compression" {
  description = "How ingest writes stream records: \"zlib\" (the default) compresses each record over 1 KB (a device-minute of ~9.1 KB of JSON bills 1 KB of Kinesis instead of 10); \"none\" sends plain JSON, as releases before did. Process reads both. Upgrading a stack that has traffic from a release that cannot read compressed records: apply once with \"none\", then with \"zlib\" (docs/deployment.md)."
  type        = string
  default     = "zlib"

  validation {
    condition     = contains(["zlib", "none"], var.stream_compression)
    error_message = "stream_compression must be \"zlib\" or \"none\"."
  }
}

variable "platform_log_level" {
  description = "Lambda's system (platform) log level per function, with JSON log format: \"WARN\" drops the START, END and REPORT lines Lambda writes for every invocation (~330 bytes), keeping errors; a function not named keeps Lambda's default (text, every line). Ingest and the authorizer run once per request (~1,667/s at 100,000 devices: ~$720 a month of CloudWatch Logs, docs/scaling.md), so they are WARN by default; their invocations, durations, errors and throttles stay in Lambda's CloudWatch metrics."
  type        = map(string)
  default = {
    ingest     = "WARN"
    authorizer = "WARN"
  }

  validation {
    condition     = alltrue([for level in values(var.platform_log_level) : contains(["DEBUG", "INFO", "WARN"], level)])
    error_message = "platform_log_level values must be DEBUG, INFO or WARN."
  }
}

variable "xray_tracing" {
  description = "X-Ray tracing mode per function: \"Active\" (Lambda samples 1 invocation/s + 5% of the rest, a rate Lambda does not let you configure) or \"PassThrough\" (traced only when the caller's trace header says sampled: never, for API Gateway HTTP APIs and the Kinesis mapping). Ingest and the authorizer run once per request (~1,667/s each at 100,000 devices: ~$2,200 a month of traces, docs/scaling.md), so they are PassThrough by default; their durations and errors stay in CloudWatch metrics and logs."
  type        = map(string)
  default = {
    ingest     = "PassThrough"
    authorizer = "PassThrough"
    process    = "Active"
    api        = "Active"
    fleet      = "Active"
  }

  validation {
    condition     = alltrue([for mode in values(var.xray_tracing) : contains(["Active", "PassThrough"], mode)])
    error_message = "xray_tracing modes must be \"Active\" or \"PassThrough\"."
  }
}

variable "parallelization_factor" {
  description = "Concurrent batches per shard (1-10). 8 by default: compressed records keep the stream at a few shards, and process needs ~15 concurrent batches at 100,000 devices. See functions.tf."
  type        = number
  default     = 8
}

variable "max_retry_attempts" {
  description = "Retries of a failing batch before it goes to the S3 failure destination (-1 = until it expires). See functions.tf."
  type        = number
  default     = 10
}

variable "max_record_age_s" {
  description = "Records older than this are not retried but sent to the S3 failure destination (60-604800, or -1). See functions.tf."
  type        = number
  default     = 21600
}

# --- archive ------------------------------------------------------------------------------------

variable "archive_bucket_name" {
  description = "Name of the raw archive bucket. null: <name_prefix>-archive-<account>-<region>."
  type        = string
  default     = null
}

variable "archive_lifecycle" {
  description = "Days after which archived objects (raw/ and rejected/) move to STANDARD_IA and to GLACIER_IR, and expire (null: never). Non-current versions expire after noncurrent_days."
  type = object({
    infrequent_access_days = number
    glacier_days           = number
    expire_days            = optional(number)
    rejected_expire_days   = optional(number)
    noncurrent_days        = number
  })
  default = {
    infrequent_access_days = 30
    glacier_days           = 90
    expire_days            = null
    rejected_expire_days   = 90
    noncurrent_days        = 30
  }
}

# --- API ------------------------------------------------------------------------------------------

variable "api_throttle" {
  description = "API Gateway throttling for the whole stage: steady requests per second and burst."
  type        = object({ rate = number, burst = number })
  default     = { rate = 200, burst = 400 }
}

variable "ingest_throttle" {
  description = "Throttling of POST /v1/readings (each request carries up to 500 readings)."
  type        = object({ rate = number, burst = number })
  default     = { rate = 100, burst = 200 }
}

# --- monitoring ---------------------------------------------------------------------------------

variable "log_retention_days" {
  description = "Retention of the functions' and the API's log groups (a value CloudWatch Logs accepts)."
  type        = number
  default     = 30
}

variable "alarm_email" {
  description = "An address subscribed to the alarm topic (it must confirm). null: subscribe yourself."
  type        = string
  default     = null
}

variable "iterator_age_alarm_ms" {
  description = "Alarm when the process function falls this far behind the stream, or the fleet function behind the table's stream (ms)."
  type        = number
  default     = 300000
}

variable "kms_deletion_window_days" {
  description = "Waiting period before the stack's KMS key is deleted after destroy (7-30 days)."
  type        = number
  default     = 30
}

# --- IoT Core (optional) ------------------------------------------------------------------------

variable "enable_iot" {
  description = "Create an AWS IoT Core topic rule that puts MQTT messages on the stream (devices speaking MQTT instead of HTTP)."
  type        = bool
  default     = false
}

variable "iot_topic_filter" {
  description = "MQTT topic filter of the IoT rule. Each message is one reading (or an array of readings) as JSON. Its second level is the device (the stream's partition key, `$${topic(2)}`)."
  type        = string
  default     = "iotpipe/+/readings"

  validation {
    condition     = length(split("/", var.iot_topic_filter)) >= 2 && split("/", var.iot_topic_filter)[1] == "+"
    error_message = "iot_topic_filter: the second level must be the device wildcard '+' (e.g. iotpipe/+/readings): it is the stream's partition key."
  }
}
