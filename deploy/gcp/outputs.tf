# What a user (and make deploy-gcp) needs to reach the deployed stack.

output "ingest_url" {
  description = "URL of the ingest function: POST <ingest_url>/v1/readings."
  value       = google_cloudfunctions2_function.ingest.service_config[0].uri
}

output "api_url" {
  description = "URL of the api function: GET <api_url>/v1/... and the dashboard at <api_url>/."
  value       = google_cloudfunctions2_function.api.service_config[0].uri
}

output "function_names" {
  description = "The functions (Cloud Run services), by role: ingest, process, api."
  value       = local.function_names
}

output "topic" {
  description = "The Pub/Sub topic readings are published to (full path)."
  value       = google_pubsub_topic.readings.id
}

output "process_from" {
  description = "How the process function gets the readings: files, messages or both (var.process_from)."
  value       = var.process_from
}

output "subscriptions" {
  description = "The push subscriptions feeding the process function, by route: messages (<prefix>-process) and/or files (<prefix>-process-files)."
  value       = { for route, s in google_pubsub_subscription.process : route => s.id }
}

output "archive_subscription" {
  description = "The Cloud Storage subscription writing the readings topic into files under stream/ of the archive bucket (null with process_from = \"messages\")."
  value       = one(google_pubsub_subscription.archive[*].id)
}

output "archive_subscription_state" {
  description = "The archive subscription's state as of the last apply or refresh: ACTIVE, or why it cannot write (PERMISSION_DENIED, NOT_FOUND); null with process_from = \"messages\"."
  value       = one([for s in google_pubsub_subscription.archive : s.cloud_storage_config[0].state])
}

output "archive_files_topic" {
  description = "The topic of the archive bucket's notifications of finished files (null with process_from = \"messages\")."
  value       = one(google_pubsub_topic.archive_files[*].id)
}

output "fleet_lanes" {
  description = "The Firestore fleet lanes the functions use (var.fleet_lanes, or its default for process_from)."
  value       = local.fleet_lanes
}

output "dead_letter_topic" {
  description = "Where messages go after max_delivery_attempts failed deliveries."
  value       = google_pubsub_topic.dead_letter.id
}

output "dead_letter_subscription" {
  description = "Pull subscription keeping the dead-lettered messages for inspection and redrive."
  value       = google_pubsub_subscription.dead_letter.id
}

output "bucket" {
  description = "The Cloud Storage bucket of the archive (stream/ files, raw/ objects) and the quarantine (rejected/)."
  value       = google_storage_bucket.archive.name
}

output "firestore_database" {
  description = "The Firestore database of the hourly aggregates."
  value       = google_firestore_database.store.name
}

output "api_keys_secret" {
  description = "The Secret Manager secret holding the API keys (comma-separated, latest version)."
  value       = google_secret_manager_secret.api_keys.secret_id
}

output "service_accounts" {
  description = "The stack's service accounts, by role."
  value       = { for k, sa in google_service_account.fn : k => sa.email }
}

output "dashboard" {
  description = "The Cloud Monitoring dashboard of the pipeline."
  value       = "https://console.cloud.google.com/monitoring/dashboards/builder/${element(split("/", google_monitoring_dashboard.pipeline.id), 3)}?project=${var.project}"
}
