# Inputs. Only `project` has no default; see README.md for the choices behind the others.

# --- where and what ---------------------------------------------------------------------------

variable "project" {
  description = "Id of the Google Cloud project to deploy into (it must exist, with billing)."
  type        = string
}

variable "region" {
  description = "Region of the functions, the topic's message storage and (by default) the buckets and the Firestore database."
  type        = string
  default     = "us-central1"
}

variable "name_prefix" {
  description = "Prefix of every resource name (functions, topics, buckets, service accounts, metrics). Change it to deploy a second stack in the same project."
  type        = string
  default     = "iotpipe"

  validation {
    # Service account ids are 6-30 characters and get a 12-character suffix at most here.
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix: 3-17 characters, lowercase letters, digits and '-', starting with a letter."
  }
}

variable "labels" {
  description = "Extra labels for every resource that takes labels (added to project and stack)."
  type        = map(string)
  default     = {}
}

variable "protect_data" {
  description = "Protect the stored data from `terraform destroy`: Firestore delete protection on, and the archive bucket is not emptied by Terraform. `make destroy-gcp` turns it off first."
  type        = bool
  default     = true
}

# --- code ---------------------------------------------------------------------------------------

variable "source_zip" {
  description = "Path of iotpipe-gcf-source.zip built by `iotpipe package gcp` (relative to the directory Terraform runs in)."
  type        = string
  default     = "../../dist/gcp/iotpipe-gcf-source.zip"
}

variable "telemetry_schema_file" {
  description = "The telemetry schema file (TOML) the functions' code was packaged with (`iotpipe package gcp --schema FILE`); null: the default payload. The functions read the packaged copy; Terraform refuses to deploy code packaged with another schema (sha256 against the manifest.json beside the source zip)."
  type        = string
  default     = null
}

variable "python_runtime" {
  description = "Cloud Functions Python runtime; the source archive pins its requirements for the Python it was built with, so keep them close."
  type        = string
  default     = "python312"
}

variable "functions" {
  description = "Per function: memory, vCPUs, timeout (s), min and max instances, and concurrent requests per instance. The defaults are explained in functions.tf."
  type = map(object({
    memory        = string
    cpu           = string
    timeout_s     = number
    min_instances = number
    max_instances = number
    concurrency   = number
  }))
  default = {
    ingest  = { memory = "512Mi", cpu = "1", timeout_s = 30, min_instances = 0, max_instances = 20, concurrency = 16 }
    process = { memory = "512Mi", cpu = "1", timeout_s = 540, min_instances = 0, max_instances = 30, concurrency = 8 }
    api     = { memory = "512Mi", cpu = "1", timeout_s = 30, min_instances = 0, max_instances = 10, concurrency = 16 }
  }

  validation {
    condition     = alltrue([for k in ["ingest", "process", "api"] : contains(keys(var.functions), k)])
    error_message = "functions must have the entries ingest, process and api."
  }

  validation {
    # The push subscriptions' ack deadline equals the process function's timeout (pubsub.tf),
    # and Pub/Sub allows at most 600 s.
    condition     = try(var.functions["process"].timeout_s >= 10 && var.functions["process"].timeout_s <= 600, true) # a missing entry: the validation above
    error_message = "functions.process.timeout_s must be 10-600: it is also the push subscriptions' ack deadline."
  }

  validation {
    # Cloud Run serves more than one request at a time only with at least one whole vCPU.
    condition     = alltrue([for f in values(var.functions) : f.concurrency == 1 || tonumber(f.cpu) >= 1])
    error_message = "a function with concurrency > 1 needs cpu >= 1."
  }
}

# --- the pipeline's tunables (the functions' environment) ---------------------------------------

variable "lateness_horizon_hours" {
  description = "Readings older than this (judged against their publish time on the topic) are refused as too_late. 0 accepts any age."
  type        = number
  default     = 168
}

variable "max_skew_seconds" {
  description = "Readings more than this ahead of their arrival time are refused as from_future."
  type        = number
  default     = 300
}

variable "ttl_days" {
  description = "Hourly aggregates expire this many days after their hour ends (a Firestore TTL policy on expire_at). null keeps them forever. Keep it well above the lateness horizon."
  type        = number
  default     = null

  validation {
    condition     = var.ttl_days == null ? true : var.ttl_days >= 1
    error_message = "ttl_days must be at least 1, or null."
  }
}

variable "fleet_lanes" {
  description = "Firestore fleet lanes per hour (IOTPIPE_FLEET_LANES). null (default): 8 with process_from = \"files\", 0 otherwise. 0: off, each commit writes only its window and GET /v1/fleet/hourly merges the hour's windows (its cost grows with the fleet). N >= 1: each commit also writes one of N lane documents and the fleet total reads them; with files a commit is a chunk of a file (a few per second in all), but on the per-message path (\"messages\", \"both\") every message is a commit, which doubles document writes and puts ~1/N of the fleet's messages on each lane document (keep that under ~1/s: docs/scaling.md; Terraform warns). Switching on: run `iotpipe migrate --store firestore:PROJECT` after the deployment."
  type        = number
  default     = null

  validation {
    condition     = var.fleet_lanes == null ? true : var.fleet_lanes >= 0 && floor(var.fleet_lanes) == var.fleet_lanes
    error_message = "fleet_lanes must be a whole number, 0 (off) or more, or null (8 with files, 0 otherwise)."
  }
}

variable "api_keys" {
  description = "Initial API keys written to the Secret Manager secret (comma-separated in one version). They end up in the Terraform state; Terraform writes them once and never reverts keys added later with `gcloud secrets versions add`. Empty: a placeholder that matches no request."
  type        = list(string)
  default     = []
  sensitive   = true
}

variable "public_invokers" {
  description = "Who may call the ingest and api functions' URLs at the Cloud Run level (roles/run.invoker). [\"allUsers\"] (the default) leaves authentication to the application's API keys; [] or a list of members (\"serviceAccount:...\", \"group:...\") makes callers present a Google ID token as well."
  type        = list(string)
  default     = ["allUsers"]
}

# --- how readings reach the process function -----------------------------------------------------

variable "process_from" {
  description = "How the process function gets the readings. \"files\" (default): a Cloud Storage subscription writes the readings topic into files under stream/ of the archive bucket (a new file every archive_file_max_duration_s or archive_file_max_bytes), and each finished file is pushed to the process function (a bucket notification): ~50x fewer archive objects and function invocations, readings visible ~1-2 minutes after ingest. \"messages\": every message is pushed to the process function, which archives it under raw/ (seconds of latency; for small fleets that need it). \"both\": the two at once, only to switch an existing deployment safely (README.md, Switching)."
  type        = string
  default     = "files"

  validation {
    condition     = contains(["files", "messages", "both"], var.process_from)
    error_message = "process_from must be \"files\", \"messages\" or \"both\"."
  }
}

variable "archive_file_max_duration_s" {
  description = "The Cloud Storage subscription finishes a file at most this many seconds after it began writing it (Pub/Sub's bounds: 60-600). It is most of the files path's latency: readings are visible about this long plus a few seconds after ingest."
  type        = number
  default     = 60

  validation {
    condition     = var.archive_file_max_duration_s >= 60 && var.archive_file_max_duration_s <= 600 && floor(var.archive_file_max_duration_s) == var.archive_file_max_duration_s
    error_message = "archive_file_max_duration_s must be a whole number of seconds from 60 to 600 (Pub/Sub's bounds)."
  }
}

variable "archive_file_max_bytes" {
  description = "The Cloud Storage subscription starts a new file past this many bytes (Pub/Sub's bounds: 1 KB to 10 GiB; a single larger message may exceed it). The process function reads a whole file per delivery, so this bounds its memory per request: with concurrency 8, 8 x 16 MiB of files in a 512 MiB instance."
  type        = number
  default     = 16777216

  validation {
    condition     = var.archive_file_max_bytes >= 1000 && var.archive_file_max_bytes <= 10737418240 && floor(var.archive_file_max_bytes) == var.archive_file_max_bytes
    error_message = "archive_file_max_bytes must be a whole number from 1000 (1 KB) to 10737418240 (10 GiB), Pub/Sub's bounds."
  }
}

variable "stream_compression" {
  description = "How ingest publishes readings messages: \"zlib\" (the default) sends each message over 1 KB as base64 text of its zlib bytes (a device-minute of ~9.1 KB of JSON becomes ~1.3 KB: Pub/Sub bills publishing and the Cloud Storage subscription ~7x less, and the archive files are ~7x smaller); \"none\" publishes plain JSON, as releases before did. Process and replay read both. Upgrading a deployment that has traffic from a release that cannot read compressed messages: apply once with \"none\", then with \"zlib\" (docs/deployment.md)."
  type        = string
  default     = "zlib"

  validation {
    condition     = contains(["zlib", "none"], var.stream_compression)
    error_message = "stream_compression must be \"zlib\" or \"none\"."
  }
}

# --- Pub/Sub --------------------------------------------------------------------------------------

variable "max_delivery_attempts" {
  description = "Deliveries of a message (or of a file's notification) to the process function, or attempts to write it to a file, before it goes to the dead-letter topic (5-100). 100 by default: an overload (Cloud Storage or Firestore rate limits, the function at its maximum instances) counts as failed deliveries too, and must delay healthy messages, not dead-letter them. See pubsub.tf."
  type        = number
  default     = 100

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be between 5 and 100 (Pub/Sub's limits)."
  }
}

variable "retry_backoff" {
  description = "Pub/Sub's exponential backoff between deliveries of a failed message: minimum and maximum, in seconds (0-600)."
  type        = object({ min_s = number, max_s = number })
  default     = { min_s = 10, max_s = 600 }
}

variable "message_retention_days" {
  description = "Days the archive, process and dead-letter subscriptions keep unacknowledged messages (1-7): how long an outage can last before messages are lost."
  type        = number
  default     = 7

  validation {
    condition     = var.message_retention_days >= 1 && var.message_retention_days <= 7
    error_message = "message_retention_days must be between 1 and 7."
  }
}

# --- Firestore ----------------------------------------------------------------------------------

variable "firestore_database" {
  description = "Id of the Firestore (Native mode) database created for the aggregates. \"(default)\" is the project's default database (the free tier applies to it); name another (e.g. \"iotpipe\") if the project already has a default database."
  type        = string
  default     = "(default)"
}

variable "firestore_location" {
  description = "Firestore location: a region (e.g. us-central1) or a multi-region (nam5, eur3). null: var.region. It cannot change after creation."
  type        = string
  default     = null
}

# --- archive ------------------------------------------------------------------------------------

variable "archive_bucket_name" {
  description = "Name of the archive bucket (stream/ files, raw/ objects, rejected/). null: <project>-<name_prefix>-archive."
  type        = string
  default     = null
}

variable "archive_location" {
  description = "Location of the archive bucket (a region, dual- or multi-region). null: var.region."
  type        = string
  default     = null
}

variable "archive_lifecycle" {
  description = "Days after which archived objects (stream/ files and raw/ objects alike) move to NEARLINE, COLDLINE and ARCHIVE, and expire (null: never); rejected/ expires after rejected_expire_days; non-current versions are deleted after noncurrent_days."
  type = object({
    nearline_days        = number
    coldline_days        = number
    archive_days         = optional(number)
    expire_days          = optional(number)
    rejected_expire_days = optional(number)
    noncurrent_days      = number
  })
  default = {
    nearline_days        = 30
    coldline_days        = 90
    archive_days         = 365
    expire_days          = null
    rejected_expire_days = 90
    noncurrent_days      = 30
  }
}

# --- monitoring ---------------------------------------------------------------------------------

variable "alert_email" {
  description = "An address notified by every alert policy. null: no notification channel (the incidents still open in Cloud Monitoring)."
  type        = string
  default     = null
}

variable "oldest_unacked_alert_s" {
  description = "Alert when the oldest message not yet processed is older than this (seconds): processing is falling behind or failing."
  type        = number
  default     = 600
}

variable "api_5xx_alert" {
  description = "Alert when the ingest and api functions together answer more than this many 5xx responses in 5 minutes."
  type        = number
  default     = 5
}

# --- logging ------------------------------------------------------------------------------------

variable "request_log_sample" {
  description = "Fraction of the ingest and process functions' successful request logs (Cloud Run's run.googleapis.com/requests entries with a status below 400) that Cloud Logging keeps; the rest are excluded before they are stored or billed. Every request log with status 400 or above, every request log of the api function and every application log line are kept. 1 keeps them all (no exclusion). See logging.tf."
  type        = number
  default     = 0.01

  validation {
    condition     = var.request_log_sample >= 0 && var.request_log_sample <= 1
    error_message = "request_log_sample must be a fraction from 0 to 1 (1 keeps every request log)."
  }
}
