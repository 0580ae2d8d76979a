# Cloud Logging: what is not stored.
#
# Cloud Run writes a request log entry for every request a function serves. At 100,000 devices
# that is ~1,667 ingest requests a second, plus the process function's pushes: gigabytes a day
# of entries that say "200" and are billed at ingestion. The exclusion below drops the successful
# ones of ingest and process but a sample (var.request_log_sample, 1%), before they are stored or
# billed. Kept: every request with status 400 or above (client errors, 429s, 5xx), every request
# log of the api function, and all application logs (the functions' JSON lines, on other log
# names), from which the log-based metrics are made (monitoring.tf). Request counts and
# latencies in Cloud Monitoring (run.googleapis.com/request_count, request_latencies) come from
# metrics, not logs: the dashboard and the 5xx alert are unchanged. The filter is built in
# derived.tf (tests/terraform/test_gcp_files.py evaluates it); request_log_sample = 1 removes it.

resource "google_logging_project_exclusion" "request_logs" {
  count = local.request_log_exclusion_on ? 1 : 0

  name        = "${var.name_prefix}-request-logs"
  description = "iotpipe: successful request logs of ${local.function_names.ingest} and ${local.function_names.process}, except a ${var.request_log_sample * 100}% sample"
  filter      = local.request_log_exclusion

  depends_on = [google_project_service.api]
}
