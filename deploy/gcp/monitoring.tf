# Cloud Monitoring: log-based metrics from the process function's summary lines, alert
# policies, and a dashboard.
#
# The process function writes one structured line per delivery (iotpipe.entrypoints.gcp.process):
# `"message": "batch processed"` per readings message, with the counts of
# ProcessReport.counts(): records, received, accepted, duplicates, rejected (by reason),
# rejected_total, windows_updated, unapplied, failed_records, store_retries, errors; plus
# duration_ms and lag_ms; and `"message": "file processed"` per archive file (files mode), with
# the same counts summed over the file's chunks, plus duration_ms and file_age_ms (how old the
# file was when processed: the files path's freshness). Its severity is INFO, or WARNING when
# readings were left unapplied (the message or file is then delivered again). Cloud Logging
# keeps every key under jsonPayload; the metrics below read them there.
# tests/terraform/test_gcp_static.py checks each extracted field against ProcessReport.counts().

locals {
  # Every entry of one of the stack's functions (2nd gen functions log as Cloud Run revisions).
  function_logs = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=(\"${join("\" OR \"", values(local.function_names))}\")"

  # The process function's summary lines: one per message, or one per file.
  summary_logs = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.function_names.process}\" AND jsonPayload.message=(\"batch processed\" OR \"file processed\")"

  # Distribution metrics: field of the summary line => what it counts, and its unit.
  summary_fields = {
    received        = { unit = "1", description = "Readings received per message or file (valid or not)" }
    accepted        = { unit = "1", description = "Readings counted into a window for the first time, per message" }
    duplicates      = { unit = "1", description = "Readings already counted (resends, redeliveries), per message" }
    rejected_total  = { unit = "1", description = "Readings quarantined (invalid, too late, from the future, conflicting, window full), per message" }
    windows_updated = { unit = "1", description = "Firestore window documents written, per message" }
    unapplied       = { unit = "1", description = "Readings left unapplied by a transient failure (redelivered), per message" }
    store_retries   = { unit = "1", description = "Optimistic-concurrency retries of window writes, per message" }
    duration_ms     = { unit = "ms", description = "Processing time of one message" }
    lag_ms          = { unit = "ms", description = "Age of the newest reading of a message when it was processed (messages mode)" }
    file_age_ms     = { unit = "ms", description = "Age of an archive file when it was processed (files mode: the roll and notification delay)" }
  }
}

resource "google_logging_metric" "summary" {
  for_each = local.summary_fields

  name        = "${local.metric_prefix}_process_${each.key}"
  description = each.value.description
  filter      = local.summary_logs

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = each.value.unit
    display_name = "iotpipe process ${each.key}"
  }

  value_extractor = "EXTRACT(jsonPayload.${each.key})"

  # 1, 2, 4, ... 2^31: counts up to a 500-reading message and times up to days, in 32 buckets.
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 32
      growth_factor      = 2
      scale              = 1
    }
  }
}

# Messages or files processed, by severity: INFO = all applied, WARNING = some readings left
# unapplied (the function answered 500 and Pub/Sub delivers the message or file again).
resource "google_logging_metric" "batches" {
  name        = "${local.metric_prefix}_process_batches"
  description = "Messages or files processed by the process function, by severity (WARNING: redelivered)"
  filter      = local.summary_logs

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "iotpipe process messages"
    labels {
      key         = "severity"
      value_type  = "STRING"
      description = "INFO, or WARNING when readings were left unapplied"
    }
  }

  label_extractors = {
    severity = "EXTRACT(severity)"
  }
}

# Errors of any function: exceptions and tracebacks (functions-framework writes them to stderr,
# which Cloud Run records as ERROR), the process function's "batch failed" lines, the API's
# unexpected errors (the iotpipe logger at ERROR).
resource "google_logging_metric" "errors" {
  name        = "${local.metric_prefix}_function_errors"
  description = "Log entries of severity ERROR or above from the iotpipe functions"
  filter      = "${local.function_logs} AND severity>=ERROR"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "iotpipe function errors"
    labels {
      key         = "service"
      value_type  = "STRING"
      description = "The function (Cloud Run service) that logged the error"
    }
  }

  label_extractors = {
    service = "EXTRACT(resource.labels.service_name)"
  }
}

# --- alert policies -------------------------------------------------------------------------------

resource "google_monitoring_notification_channel" "email" {
  count = var.alert_email == null ? 0 : 1

  display_name = "${var.name_prefix} alerts"
  type         = "email"
  labels = {
    email_address = var.alert_email
  }
}

locals {
  notification_channels = google_monitoring_notification_channel.email[*].id

  # Every subscription whose backlog is processing not yet done: the push subscriptions to the
  # process function and, with files, the archive subscription (messages not yet in a file).
  # A Cloud Storage subscription that cannot write (its state PERMISSION_DENIED or NOT_FOUND,
  # which `gcloud pubsub subscriptions describe` shows; no Cloud Monitoring metric reports it)
  # shows here as its oldest message ageing.
  processing_subscriptions = concat(
    [for s in google_pubsub_subscription.process : s.name],
    google_pubsub_subscription.archive[*].name,
  )
  processing_subscription_filter = "resource.labels.subscription_id=one_of(\"${join("\", \"", local.processing_subscriptions)}\")"

  alerts = {
    function-errors = {
      title       = "a function logged errors"
      description = "A function raised or logged an error. For the process function a raised error means its message is delivered again (transient store or archive failures heal by themselves; see the error in the logs); for ingest and api it is a 5xx answer."
      filter      = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.errors.name}\" AND resource.type=\"cloud_run_revision\""
      aligner     = "ALIGN_SUM"
      reducer     = "REDUCE_SUM"
      threshold   = 0
      duration    = "0s"
    }
    dead-letter-backlog = {
      title       = "messages on the dead-letter subscription"
      description = "A message failed every delivery to the process function (or every write to an archive file) and rests on the dead-letter subscription. Pull it (gcloud pubsub subscriptions pull), fix the cause, publish it again with its attributes where it came from: a readings message to the readings topic, a file's notification (attribute objectId) to the archive-files topic. Processing is idempotent."
      filter      = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${google_pubsub_subscription.dead_letter.name}\""
      aligner     = "ALIGN_MAX"
      reducer     = "REDUCE_SUM"
      threshold   = 0
      duration    = "0s"
    }
    oldest-unacked = {
      title       = "processing is falling behind"
      description = "The oldest message or file not yet processed is older than ${var.oldest_unacked_alert_s} s: the process function fails or runs at its maximum instances while work arrives faster, or the archive subscription cannot write its files (see its state: gcloud pubsub subscriptions describe ${var.name_prefix}-archive)."
      filter      = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.type=\"pubsub_subscription\" AND ${local.processing_subscription_filter}"
      aligner     = "ALIGN_MAX"
      reducer     = "REDUCE_MAX"
      threshold   = var.oldest_unacked_alert_s
      duration    = "300s"
    }
    api-5xx = {
      title       = "the HTTP API answers server errors"
      description = "The ingest or api function answered more than ${var.api_5xx_alert} 5xx responses in 5 minutes (a 503 from ingest means Pub/Sub did not take the readings)."
      filter      = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=one_of(\"${local.function_names.ingest}\", \"${local.function_names.api}\") AND metric.labels.response_code_class=\"5xx\""
      aligner     = "ALIGN_SUM"
      reducer     = "REDUCE_SUM"
      threshold   = var.api_5xx_alert
      duration    = "0s"
    }
  }
}

resource "google_monitoring_alert_policy" "alert" {
  for_each = local.alerts

  display_name = "${var.name_prefix}: ${each.value.title}"
  combiner     = "OR"

  conditions {
    display_name = each.value.title
    condition_threshold {
      filter          = each.value.filter
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.threshold
      duration        = each.value.duration

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = each.value.aligner
        cross_series_reducer = each.value.reducer
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    content   = each.value.description
    mime_type = "text/markdown"
  }

  alert_strategy {
    auto_close = "86400s"
  }

  notification_channels = local.notification_channels

  # A log-based metric can take minutes to become known to Cloud Monitoring after it is created,
  # and until then creating a policy on it fails with "Error 404: Cannot find metric(s)"
  # (hashicorp/terraform-provider-google#11102). Waiting for the functions (minutes of builds)
  # leaves it that time on a first apply; if the error still appears, apply again a little later.
  depends_on = [
    google_cloudfunctions2_function.ingest,
    google_cloudfunctions2_function.process,
    google_cloudfunctions2_function.api,
  ]
}

# --- dashboard --------------------------------------------------------------------------------------

locals {
  # Charts of the summary fields' totals use PromQL, where a distribution's _sum series is the
  # total of the field (the filter API has no aligner turning a distribution into its sum).
  promql_sum = { for field in keys(local.summary_fields) :
    field => "sum(increase(logging_googleapis_com:user_${google_logging_metric.summary[field].name}_sum{monitored_resource=\"cloud_run_revision\"}[1m]))"
  }

  run_filter = { for k, name in local.function_names :
    k => "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${name}\""
  }

  # Each tile: PromQL series (query, legend) and/or filter series (filter, aligner, reducer,
  # group-by fields).
  tiles = [
    { title = "Readings per minute: received, accepted, duplicates, rejected", filters = [], promql = [
      for f in ["received", "accepted", "duplicates", "rejected_total"] : { query = local.promql_sum[f], label = f }
    ] },
    { title = "Window writes, store retries and unapplied readings per minute", filters = [], promql = [
      for f in ["windows_updated", "store_retries", "unapplied"] : { query = local.promql_sum[f], label = f }
    ] },
    { title = "Messages or files processed, by severity (WARNING: redelivered)", promql = [], filters = [
      { filter = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.batches.name}\"", aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", group = ["metric.label.severity"] },
    ] },
    { title = "Processing time, lag (messages) and file age (files) p99 (ms)", promql = [], filters = [
      for f in ["duration_ms", "lag_ms", "file_age_ms"] : { filter = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.summary[f].name}\"", aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_99", group = [] }
    ] },
    { title = "Undelivered messages: archive, process and dead-letter subscriptions", promql = [], filters = [
      for sub in concat(local.processing_subscriptions, [google_pubsub_subscription.dead_letter.name]) : {
        filter = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.labels.subscription_id=\"${sub}\"", aligner = "ALIGN_MAX", reducer = "REDUCE_MAX", group = ["resource.label.subscription_id"]
      }
    ] },
    { title = "Oldest unacknowledged message (s), per subscription", promql = [], filters = [
      { filter = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND ${local.processing_subscription_filter}", aligner = "ALIGN_MAX", reducer = "REDUCE_MAX", group = ["resource.label.subscription_id"] },
    ] },
    { title = "Requests per second per function, by response class", promql = [], filters = [
      for k, f in local.run_filter : { filter = "metric.type=\"run.googleapis.com/request_count\" AND ${f}", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = ["resource.label.service_name", "metric.label.response_code_class"] }
    ] },
    { title = "Request latency p99 per function (ms)", promql = [], filters = [
      for k, f in local.run_filter : { filter = "metric.type=\"run.googleapis.com/request_latencies\" AND ${f}", aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_99", group = ["resource.label.service_name"] }
    ] },
    { title = "Instances per function", promql = [], filters = [
      for k, f in local.run_filter : { filter = "metric.type=\"run.googleapis.com/container/instance_count\" AND ${f}", aligner = "ALIGN_MAX", reducer = "REDUCE_SUM", group = ["resource.label.service_name"] }
    ] },
    { title = "Function errors (log entries)", promql = [], filters = [
      { filter = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.errors.name}\"", aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", group = ["metric.label.service"] },
    ] },
    { title = "Firestore document reads, writes, deletes per second", promql = [], filters = [
      for m in ["read_count", "write_count", "delete_count"] : { filter = "metric.type=\"firestore.googleapis.com/document/${m}\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = [] }
    ] },
  ]
}

resource "google_monitoring_dashboard" "pipeline" {
  dashboard_json = jsonencode({
    displayName = "${var.name_prefix} pipeline"
    mosaicLayout = {
      columns = 48
      tiles = [for i, tile in local.tiles : {
        xPos   = (i % 2) * 24
        yPos   = floor(i / 2) * 16
        width  = 24
        height = 16
        widget = {
          title = tile.title
          xyChart = {
            dataSets = concat(
              [for q in tile.promql : {
                plotType        = "LINE"
                targetAxis      = "Y1"
                legendTemplate  = q.label
                timeSeriesQuery = { prometheusQuery = q.query }
              }],
              [for f in tile.filters : {
                plotType   = "LINE"
                targetAxis = "Y1"
                timeSeriesQuery = {
                  timeSeriesFilter = {
                    filter = f.filter
                    aggregation = {
                      alignmentPeriod    = "60s"
                      perSeriesAligner   = f.aligner
                      crossSeriesReducer = f.reducer
                      groupByFields      = f.group
                    }
                  }
                }
              }],
            )
          }
        }
      }]
    }
  })
}
