# What follows from the variables alone: the functions' names, the path that feeds the process
# function (var.process_from), the fleet lanes' default, the archive files' names and the request
# logs' exclusion filter. Nothing here reads a resource, so tests/terraform/test_gcp_files.py
# evaluates this file with Terraform itself (no provider needed) for every mode, and checks
# the variables' validations the same way.

locals {
  # Resource names. Cloud Run (which runs 2nd gen functions) wants lowercase letters, digits
  # and '-'; var.name_prefix is validated to fit every resource below.
  function_names = {
    ingest  = "${var.name_prefix}-ingest"
    process = "${var.name_prefix}-process"
    api     = "${var.name_prefix}-api"
  }

  # The push subscriptions to the process function, by what they deliver (pubsub.tf):
  # "messages": each readings message, which the function archives under raw/ and processes;
  # "files": each file the archive subscription finished under stream/ (its bucket notification).
  process_routes = var.process_from == "both" ? ["messages", "files"] : [var.process_from]

  # The Cloud Storage subscription, the bucket notification and their grants (archive_files.tf).
  archive_files_on = contains(local.process_routes, "files")

  # Lanes are on by default only where each Firestore commit is a chunk of a file: a few commits
  # per second in all, so ~1/8 of them on each lane document. On the per-message path every
  # message is a commit (1,667/s at 100,000 devices: ~210/s per lane document, far above
  # Firestore's ~1 sustained write/s per document), hence 0 there.
  fleet_lanes = var.fleet_lanes != null ? var.fleet_lanes : (var.process_from == "files" ? 8 : 0)

  # The files the Cloud Storage subscription writes are named
  # <prefix><UTC date-time>_<uuid><suffix> (https://cloud.google.com/pubsub/docs/create-cloudstorage-subscription#file_names):
  # here stream/2026-12-05/14_07_31Z_<uuid>.jsonl. The date-time format must use each of YYYY,
  # MM, DD, hh, mm and ss exactly once and may add '-', '_', ':' and '/'; this one is Google's
  # own example: a day is a "directory", and one hour of files is one prefix
  # (stream/2026-12-05/14_), which is how replay lists an hour. The process function and replay parse the same pattern
  # (iotpipe.application.codecs.archive); tests/terraform/test_gcp_files.py holds the two equal.
  archive_files = {
    prefix          = "stream/"
    datetime_format = "YYYY-MM-DD/hh_mm_ssZ"
    suffix          = ".jsonl"
  }

  # Cloud Run writes one request log entry per request (log run.googleapis.com/requests,
  # https://cloud.google.com/run/docs/logging#request); 2nd gen functions are Cloud Run services
  # of the same names. The exclusion drops those of ingest and process that succeeded, except a
  # sample: sample(insertId, f) matches a fraction f of entries, and an exclusion drops what it
  # matches (https://cloud.google.com/logging/docs/view/logging-query-language#sample,
  # https://cloud.google.com/logging/docs/routing/overview#exclusions). Kept: every entry with
  # status >= 400, the api function's requests, and every line the code writes (other logs).
  request_log_exclusion_on = var.request_log_sample < 1
  request_log_exclusion = join(" AND ", [
    "logName=\"projects/${var.project}/logs/run.googleapis.com%2Frequests\"",
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=(\"${local.function_names.ingest}\" OR \"${local.function_names.process}\")",
    "httpRequest.status<400",
    "sample(insertId, ${1 - var.request_log_sample})",
  ])
}

# Lanes with the per-message path put every message's commit on a lane document: a warning, not
# an error, since a small fleet stays far below the per-document limit (docs/scaling.md).
check "fleet_lanes_on_the_per_message_path" {
  assert {
    condition     = local.fleet_lanes == 0 || var.process_from == "files"
    error_message = "fleet_lanes = ${local.fleet_lanes} with process_from = \"${var.process_from}\": every message is a Firestore commit that also writes one of the ${local.fleet_lanes} lane documents of its hour; above ~${local.fleet_lanes} messages per second in all, lane documents exceed Firestore's ~1 sustained write per second per document (docs/scaling.md)."
  }
}
