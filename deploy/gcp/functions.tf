# The three functions (Cloud Functions 2nd gen, i.e. Cloud Run services built by Cloud Build)
# from the one source archive of `iotpipe package gcp`: main.py at its top registers `ingest`,
# `process` and `api`, each deployed with its own entry point (iotpipe.entrypoints.gcp.main).
#
# Common choices:
# - Each function runs as a service account of its own holding only what it uses (iam.tf); the
#   image is built by a build service account, into a repository of this stack.
# - The environment holds exactly the settings each function reads
#   (iotpipe.entrypoints.gcp.settings; tests/terraform/test_gcp_static.py compares them), plus
#   THREADS: functions-framework serves with gunicorn threads, 4 per vCPU unless THREADS says
#   otherwise, so it is set to the function's concurrency (requests beyond the threads would
#   only wait inside the instance). IOTPIPE_FIRESTORE_PREFIX is not set: the prefix namespaces
#   test stores inside one database; a deployment has its own database and the default, no prefix.
# - The API keys come from Secret Manager as the IOTPIPE_API_KEYS variable (auth.tf).
# - The functions write JSON lines on stdout, which Cloud Logging ingests as structured entries
#   (iotpipe.entrypoints.gcp.observability): no logging permission is needed for that.
#
# Sizing (var.functions; Cloud Run bills vCPU and memory per 100 ms of a request in flight):
# - All get 1 vCPU, the least that allows concurrency > 1; Python then uses ~1 core anyway.
# - ingest, 512 MiB / 30 s / concurrency 16 / 0-20 instances: validates up to 500 readings (1 MiB)
#   per request and publishes (the publisher waits at most 10 s, PubSubStream.timeout_s). Time in
#   a request is mostly waiting on Pub/Sub, so 16 requests share an instance well. 20 instances
#   x 16 bounds the intake at ~320 concurrent requests; raise it for a bigger fleet.
# - process, 512 MiB / 540 s / concurrency 8 / 0-30 instances. With process_from = "files" (the
#   default) one delivery is one archive file: up to archive_file_max_bytes (16 MiB) of messages,
#   read whole and processed in chunks, each chunk a Firestore lookup and commit. A file of
#   small messages (one reading each, ~150 bytes) holds ~100,000 of them, minutes of work: hence
#   540 s, under the 600 s that Pub/Sub allows a push's ack deadline (which equals the timeout,
#   pubsub.tf); lower archive_file_max_bytes if files take longer. 8 files in flight per
#   instance hold at most 8 x 16 MiB of file bytes in 512 MiB. With "messages" one delivery is
#   one message (one device's readings of one request): a Firestore lookup, one write per
#   window touched (retried on conflicts) and one archive upload, each call bounded at 20-30 s
#   by the adapters. 8 x 30 = 240 deliveries in flight: the per-message path at the documented
#   scale needs ~83 (1,667 messages/s x ~50 ms, docs/scaling.md), so a backlog drains at ~3x
#   the steady rate; files need a few. Beyond 240, Cloud Run answers 429, which Pub/Sub counts
#   as a failed delivery: max_delivery_attempts (100) and the backoff (pubsub.tf) turn that
#   into a delay, not a dead letter. Raise max_instances with the fleet (it is only a cap: idle
#   instances cost nothing).
# - api, 512 MiB / 30 s / concurrency 16 / 0-10 instances: a query is a few Firestore reads; a
#   fleet hour pages through every device's window, the largest answer.
# - min_instances 0 everywhere: no cost at rest, at the price of a cold start (~1-2 s: imports
#   and client creation, benchmarks/gcp_cold_import.py) on the first request after idling. Set
#   ingest's to 1 if devices must never wait for one.

locals {
  # The Cloud Run ingress of each function: the process function is called only by its Pub/Sub
  # push subscription, which Cloud Run counts as internal traffic of the project.
  ingress = {
    ingest  = "ALLOW_ALL"
    process = "ALLOW_INTERNAL_ONLY"
    api     = "ALLOW_ALL"
  }

  # The telemetry schema: packaged in the source archive (iotpipe.entrypoints.deployed_schema),
  # named here so that an archive packaged with another schema is never deployed by mistake.
  packaged_schema        = try(jsondecode(file("${dirname(var.source_zip)}/manifest.json")).telemetry_schema, null)
  declared_schema_sha256 = var.telemetry_schema_file == null ? null : filesha256(var.telemetry_schema_file)
}

# --- the source archive -----------------------------------------------------------------------

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62: holds only build inputs written by Terraform (the packaged source); Cloud Audit Logs record who changes it, access logs would add nothing
  name                        = local.source_bucket_name
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true # only reproducible build inputs: destroy may empty it

  versioning {
    enabled = true
  }

  # Each archive is stored under its hash: a new one replaces the object, and the old
  # (now non-current) version is deleted a week later.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.api]
}

# Named after its content: a new archive is a new object, which makes the functions rebuild;
# the same archive (it is reproducible) changes nothing.
resource "google_storage_bucket_object" "source" {
  name         = "iotpipe-gcf-source-${filesha256(var.source_zip)}.zip"
  bucket       = google_storage_bucket.source.name
  source       = var.source_zip
  content_type = "application/zip"

  lifecycle {
    precondition {
      condition     = local.packaged_schema == null || try(local.packaged_schema.sha256, null) == local.declared_schema_sha256
      error_message = "The source archive was packaged with another telemetry schema than var.telemetry_schema_file: run `iotpipe package gcp --schema FILE` with the same file (or set the variable to the file the archive was packaged with)."
    }
  }
}

# The functions' images, in a repository of the stack's own (rather than the shared gcf-artifacts
# one), keeping the newest few.
resource "google_artifact_registry_repository" "functions" {
  #checkov:skip=CKV_GCP_84: Google-managed encryption at rest; the images hold only the open-source code of the archive, no data
  repository_id = "${var.name_prefix}-functions"
  location      = var.region
  format        = "DOCKER"
  description   = "iotpipe function images (built by Cloud Build from the source archive)"

  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 5
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s" # 30 days, unless among the 5 most recent
    }
  }

  depends_on = [google_project_service.api]
}

locals {
  build = {
    runtime           = var.python_runtime
    bucket            = google_storage_bucket.source.name
    object            = google_storage_bucket_object.source.name
    docker_repository = google_artifact_registry_repository.functions.id
    service_account   = google_service_account.fn["build"].id
  }
}

# --- the functions --------------------------------------------------------------------------------

# POST /v1/readings: validates readings and publishes them to the readings topic.
resource "google_cloudfunctions2_function" "ingest" {
  #checkov:skip=CKV_GCP_124: devices and browsers reach this function from the internet; the app's API keys (auth.tf) authenticate every non-public route
  name        = local.function_names.ingest
  location    = var.region
  description = "iotpipe ingest: POST /v1/readings -> Pub/Sub"

  build_config {
    runtime           = local.build.runtime
    entry_point       = "ingest"
    docker_repository = local.build.docker_repository
    service_account   = local.build.service_account
    source {
      storage_source {
        bucket = local.build.bucket
        object = local.build.object
      }
    }
  }

  service_config {
    available_memory                 = var.functions["ingest"].memory
    available_cpu                    = var.functions["ingest"].cpu
    timeout_seconds                  = var.functions["ingest"].timeout_s
    min_instance_count               = var.functions["ingest"].min_instances
    max_instance_count               = var.functions["ingest"].max_instances
    max_instance_request_concurrency = var.functions["ingest"].concurrency
    service_account_email            = google_service_account.fn["ingest"].email
    ingress_settings                 = local.ingress.ingest
    all_traffic_on_latest_revision   = true

    environment_variables = {
      IOTPIPE_PROJECT                = var.project
      IOTPIPE_TOPIC                  = google_pubsub_topic.readings.id
      IOTPIPE_LATENESS_HORIZON_HOURS = tostring(var.lateness_horizon_hours)
      IOTPIPE_MAX_SKEW_SECONDS       = tostring(var.max_skew_seconds)
      IOTPIPE_STREAM_COMPRESSION     = var.stream_compression # messages over 1 KB as base64 zlib text
      THREADS                        = tostring(var.functions["ingest"].concurrency)
    }

    secret_environment_variables {
      key        = "IOTPIPE_API_KEYS"
      project_id = var.project
      secret     = google_secret_manager_secret.api_keys.secret_id
      version    = "latest"
    }
  }

  depends_on = [
    # The revision mounts the secret's "latest" version: it must exist (and be readable) first.
    google_secret_manager_secret_version.api_keys,
    google_secret_manager_secret_iam_member.reads_api_keys,
    google_project_iam_member.build,
    google_project_iam_member.build_reads_staged_source,
    google_storage_bucket_iam_member.build_reads_source,
    google_artifact_registry_repository_iam_member.build_pushes_images,
  ]
}

# The Pub/Sub push subscriptions' target (pubsub.tf): one archive file -> Firestore, or one
# message -> Firestore and the archive. No event_trigger: the subscriptions are declared in
# pubsub.tf (see there why).
resource "google_cloudfunctions2_function" "process" {
  name        = local.function_names.process
  location    = var.region
  description = "iotpipe process: archive files or Pub/Sub messages -> Firestore"

  build_config {
    runtime           = local.build.runtime
    entry_point       = "process"
    docker_repository = local.build.docker_repository
    service_account   = local.build.service_account
    source {
      storage_source {
        bucket = local.build.bucket
        object = local.build.object
      }
    }
  }

  service_config {
    available_memory                 = var.functions["process"].memory
    available_cpu                    = var.functions["process"].cpu
    timeout_seconds                  = var.functions["process"].timeout_s
    min_instance_count               = var.functions["process"].min_instances
    max_instance_count               = var.functions["process"].max_instances
    max_instance_request_concurrency = var.functions["process"].concurrency
    service_account_email            = google_service_account.fn["process"].email
    ingress_settings                 = local.ingress.process
    all_traffic_on_latest_revision   = true

    environment_variables = {
      IOTPIPE_PROJECT                = var.project
      IOTPIPE_FIRESTORE_DATABASE     = google_firestore_database.store.name
      IOTPIPE_BUCKET                 = google_storage_bucket.archive.name
      IOTPIPE_LATENESS_HORIZON_HOURS = tostring(var.lateness_horizon_hours)
      IOTPIPE_MAX_SKEW_SECONDS       = tostring(var.max_skew_seconds)
      IOTPIPE_TTL_DAYS               = var.ttl_days == null ? "" : tostring(var.ttl_days) # empty: keep forever
      IOTPIPE_FLEET_LANES            = tostring(local.fleet_lanes)                        # derived.tf: 8 with files, 0 otherwise
      THREADS                        = tostring(var.functions["process"].concurrency)
    }
  }

  depends_on = [
    google_project_iam_member.process_writes_windows,
    google_storage_bucket_iam_member.process_writes_archive,
    google_storage_bucket_iam_member.process_reads_files,
    google_project_iam_member.build,
    google_project_iam_member.build_reads_staged_source,
    google_storage_bucket_iam_member.build_reads_source,
    google_artifact_registry_repository_iam_member.build_pushes_images,
  ]
}

# GET /v1/..., GET /: the read-only queries and the dashboard over Firestore.
resource "google_cloudfunctions2_function" "api" {
  #checkov:skip=CKV_GCP_124: devices and browsers reach this function from the internet; the app's API keys (auth.tf) authenticate every non-public route
  name        = local.function_names.api
  location    = var.region
  description = "iotpipe api: queries over Firestore, the dashboard"

  build_config {
    runtime           = local.build.runtime
    entry_point       = "api"
    docker_repository = local.build.docker_repository
    service_account   = local.build.service_account
    source {
      storage_source {
        bucket = local.build.bucket
        object = local.build.object
      }
    }
  }

  service_config {
    available_memory                 = var.functions["api"].memory
    available_cpu                    = var.functions["api"].cpu
    timeout_seconds                  = var.functions["api"].timeout_s
    min_instance_count               = var.functions["api"].min_instances
    max_instance_count               = var.functions["api"].max_instances
    max_instance_request_concurrency = var.functions["api"].concurrency
    service_account_email            = google_service_account.fn["api"].email
    ingress_settings                 = local.ingress.api
    all_traffic_on_latest_revision   = true

    environment_variables = {
      IOTPIPE_PROJECT            = var.project
      IOTPIPE_FIRESTORE_DATABASE = google_firestore_database.store.name
      IOTPIPE_FLEET_LANES        = tostring(local.fleet_lanes) # the process function's: lanes or walk
      THREADS                    = tostring(var.functions["api"].concurrency)
    }

    secret_environment_variables {
      key        = "IOTPIPE_API_KEYS"
      project_id = var.project
      secret     = google_secret_manager_secret.api_keys.secret_id
      version    = "latest"
    }
  }

  depends_on = [
    google_project_iam_member.api_reads_windows,
    google_secret_manager_secret_version.api_keys, # mounted as "latest" (see ingest)
    google_secret_manager_secret_iam_member.reads_api_keys,
    google_project_iam_member.build,
    google_project_iam_member.build_reads_staged_source,
    google_storage_bucket_iam_member.build_reads_source,
    google_artifact_registry_repository_iam_member.build_pushes_images,
  ]
}
