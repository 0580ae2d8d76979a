# The archive as files (process_from = "files", the default, or "both"):
#
#   readings topic ──> <prefix>-archive: a Cloud Storage subscription, text format
#        └─> archive bucket: stream/YYYY-MM-DD/hh_mm_ssZ_<uuid>.jsonl (one readings message per line)
#              └─ OBJECT_FINALIZE notification ──> <prefix>-archive-files topic
#                    └─> <prefix>-process-files push subscription (pubsub.tf) ──> process function
#
# Why: one archive object per message is 1,667 objects/s at 100,000 devices (~$21,900 a month of
# Cloud Storage writes, above a bucket's initial write rate) and as many function invocations.
# Pub/Sub itself batches the messages into files, a few per minute per writer; the process
# function reads each finished file (its notification names it and pins its generation) and
# processes it in chunks without writing any archive object: the file is the archive, and
# `iotpipe replay` reads stream/ beside the raw/ objects of the per-message path.
#
# Text format: Pub/Sub writes each message's data followed by a newline, and only the data. A
# readings message's data is the device's readings as one compact JSON array (no newline inside:
# iotpipe.adapters.gcp.pubsub), so a file is JSON lines, one message per line. Avro would keep
# the attributes and message ids, which processing does not need (a reading's identity is in
# the reading), at the price of a decoder in the function.
#
# Freshness: a file is finished at most archive_file_max_duration_s (60 s) after it was begun,
# then the notification and the push take seconds: readings are visible ~1-2 minutes after
# ingest, against seconds on the per-message path (process_from = "messages").
#
# Not an Eventarc trigger on the bucket, for the same reason as the process subscription (pubsub.tf):
# its subscription could not be given a dead-letter policy.

locals {
  # The Cloud Storage service agent publishes the bucket's notifications. null without files
  # (a template cannot interpolate null, even in a local nothing reads: hence the for).
  gcs_agent = one([for agent in data.google_storage_project_service_account.gcs : "serviceAccount:${agent.email_address}"])
}

# The project's Cloud Storage service agent (reading it also makes Google create it if needed).
data "google_storage_project_service_account" "gcs" {
  count = local.archive_files_on ? 1 : 0

  depends_on = [google_project_service.api]
}

resource "google_pubsub_subscription" "archive" {
  count = local.archive_files_on ? 1 : 0

  name  = "${var.name_prefix}-archive"
  topic = google_pubsub_topic.readings.id

  # No avro_config block: the text format (above).
  cloud_storage_config {
    bucket                   = google_storage_bucket.archive.name
    filename_prefix          = local.archive_files.prefix
    filename_datetime_format = local.archive_files.datetime_format
    filename_suffix          = local.archive_files.suffix
    max_duration             = "${var.archive_file_max_duration_s}s"
    max_bytes                = var.archive_file_max_bytes
  }

  # A file's messages are acknowledged once it is written; max_duration may not exceed the ack
  # deadline, so the deadline is Pub/Sub's maximum, 600 s, above any allowed max_duration.
  ack_deadline_seconds = 600

  # Writes that fail (the bucket's rate limits, an outage, a lost permission) are retried like a
  # push (pubsub.tf), and after max_delivery_attempts the messages go to the dead-letter topic:
  # kept there, rather than expiring from this backlog after the retention.
  retry_policy {
    minimum_backoff = local.delivery.minimum_backoff
    maximum_backoff = local.delivery.maximum_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = local.delivery.dead_letter_topic
    max_delivery_attempts = local.delivery.max_delivery_attempts
  }

  message_retention_duration = local.retention
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }

  # Pub/Sub checks its rights on the bucket when the subscription is created.
  depends_on = [
    google_storage_bucket_iam_member.agent_writes_files,
    google_storage_bucket_iam_member.agent_reads_bucket,
  ]
}

# What the Pub/Sub service agent needs to write the files (Google's documented pair for a Cloud
# Storage subscription): create objects, and read the bucket's metadata. objectCreator cannot
# overwrite or delete: Pub/Sub only ever creates new files. Not narrowed to stream/ by a
# condition: Pub/Sub checks the grant on the bucket when the subscription is created.
resource "google_storage_bucket_iam_member" "agent_writes_files" {
  count = local.archive_files_on ? 1 : 0

  bucket = google_storage_bucket.archive.name
  role   = "roles/storage.objectCreator"
  member = local.pubsub_agent
}

resource "google_storage_bucket_iam_member" "agent_reads_bucket" {
  count = local.archive_files_on ? 1 : 0

  bucket = google_storage_bucket.archive.name
  role   = "roles/storage.legacyBucketReader"
  member = local.pubsub_agent
}

# The dead-lettering of the archive subscription, as for the push subscriptions (pubsub.tf).
resource "google_pubsub_subscription_iam_member" "agent_forwards_archive_dead_letters" {
  count = local.archive_files_on ? 1 : 0

  subscription = google_pubsub_subscription.archive[0].id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# --- the files' notifications ----------------------------------------------------------------------

resource "google_pubsub_topic" "archive_files" {
  #checkov:skip=CKV_GCP_83: Google-managed encryption at rest; a CMEK would need a Cloud KMS key ring (never deletable) and grants to several service agents: add one if your compliance requires it
  count = local.archive_files_on ? 1 : 0

  name = "${var.name_prefix}-archive-files"

  message_storage_policy {
    allowed_persistence_regions = [var.region]
  }

  depends_on = [google_project_service.api]
}

resource "google_pubsub_topic_iam_member" "gcs_agent_publishes_files" {
  count = local.archive_files_on ? 1 : 0

  topic  = google_pubsub_topic.archive_files[0].id
  role   = "roles/pubsub.publisher"
  member = local.gcs_agent
}

# One message per finished file under stream/ (not raw/ or rejected/, which the process function
# writes itself), with the object's JSON resource as data and eventType, bucketId, objectId and
# objectGeneration as attributes: what the process function reads to tell a file from a message.
resource "google_storage_notification" "archive_files" {
  count = local.archive_files_on ? 1 : 0

  bucket             = google_storage_bucket.archive.name
  topic              = google_pubsub_topic.archive_files[0].id
  payload_format     = "JSON_API_V1"
  event_types        = ["OBJECT_FINALIZE"]
  object_name_prefix = local.archive_files.prefix

  depends_on = [google_pubsub_topic_iam_member.gcs_agent_publishes_files]
}
