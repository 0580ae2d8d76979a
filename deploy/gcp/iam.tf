# One service account per function, plus one for the push subscription's invocations and one for
# the builds, each granted only what it uses, on the narrowest resource IAM offers. README.md
# lists the same grants in a table, and tests/terraform/test_gcp_static.py holds the two equal.
#
#   ingest:  publish to the readings topic; read the API-keys secret.
#   process: read and write documents of the stack's Firestore database; create (and, on a
#            redelivery, overwrite) objects under raw/ and rejected/ of the archive bucket;
#            read the archive subscription's files under stream/.
#   api:     read documents of the stack's Firestore database; read the API-keys secret.
#   trigger: invoke the process function (Pub/Sub pushes with its OIDC token).
#   (the Pub/Sub and Cloud Storage service agents: pubsub.tf, archive_files.tf.)
#   build:   what Cloud Build needs to turn the source archive into the functions' image.
#
# Firestore grants are project roles (Firestore has no per-database IAM policy), narrowed to the
# stack's database by an IAM condition. Nothing here grants a role on the whole project unless
# IAM offers nothing narrower (logging for the builds).

locals {
  service_accounts = {
    ingest  = "iotpipe ingest function: publishes readings"
    process = "iotpipe process function: writes aggregates and the archive"
    api     = "iotpipe api function: reads aggregates"
    trigger = "iotpipe: Pub/Sub pushes to the process function as this account"
    build   = "iotpipe: Cloud Build builds the functions as this account"
  }

  firestore_database_condition = "resource.name == \"projects/${var.project}/databases/${google_firestore_database.store.name}\""
}

resource "google_service_account" "fn" {
  for_each = local.service_accounts

  account_id   = "${var.name_prefix}-${each.key}"
  display_name = "${var.name_prefix} ${each.key}"
  description  = each.value

  depends_on = [google_project_service.api]
}

# --- ingest ---------------------------------------------------------------------------------------

resource "google_pubsub_topic_iam_member" "ingest_publishes" {
  topic  = google_pubsub_topic.readings.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.fn["ingest"].email}"
}

# ingest and api read the API keys (mounted as IOTPIPE_API_KEYS when an instance starts).
resource "google_secret_manager_secret_iam_member" "reads_api_keys" {
  for_each = toset(["ingest", "api"])

  secret_id = google_secret_manager_secret.api_keys.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.fn[each.key].email}"
}

# --- process --------------------------------------------------------------------------------------

# Lookups, creates and preconditioned updates of windows; registry reads and creates.
resource "google_project_iam_member" "process_writes_windows" {
  project = var.project
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.fn["process"].email}"

  condition {
    title       = "${var.name_prefix} database only"
    description = "Only the stack's Firestore database"
    expression  = local.firestore_database_condition
  }
}

# Creating an object needs storage.objects.create; replacing one (a redelivered message
# rewrites its own archive object) also needs storage.objects.delete. No predefined role has
# just these two (objectCreator lacks delete, objectUser adds reading and listing), hence a
# custom role, granted on the archive bucket and only under raw/ and rejected/.
resource "google_project_iam_custom_role" "archive_writer" {
  role_id     = "${local.metric_prefix}_archiveWriter"
  title       = "${var.name_prefix} archive writer"
  description = "Create and overwrite objects (iotpipe process: raw archive and quarantine)"
  permissions = ["storage.objects.create", "storage.objects.delete"]
}

resource "google_storage_bucket_iam_member" "process_writes_archive" {
  bucket = google_storage_bucket.archive.name
  role   = google_project_iam_custom_role.archive_writer.id
  member = "serviceAccount:${google_service_account.fn["process"].email}"

  condition {
    title       = "raw and rejected only"
    description = "Objects under raw/ and rejected/"
    expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.archive.name}/objects/raw/\") || resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.archive.name}/objects/rejected/\")"
  }
}

# Reading the files of the archive subscription (process_from "files" or "both"), only under
# stream/. Of objectViewer's two permissions only objects.get takes effect under this condition
# (objects.list is checked on the bucket, which no object name matches): the function reads
# the file its notification names, and never lists.
resource "google_storage_bucket_iam_member" "process_reads_files" {
  count = local.archive_files_on ? 1 : 0

  bucket = google_storage_bucket.archive.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.fn["process"].email}"

  condition {
    title       = "stream only"
    description = "Objects under stream/ (the archive subscription's files)"
    expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.archive.name}/objects/${local.archive_files.prefix}\")"
  }
}

# --- api ----------------------------------------------------------------------------------------

resource "google_project_iam_member" "api_reads_windows" {
  project = var.project
  role    = "roles/datastore.viewer"
  member  = "serviceAccount:${google_service_account.fn["api"].email}"

  condition {
    title       = "${var.name_prefix} database only"
    description = "Only the stack's Firestore database"
    expression  = local.firestore_database_condition
  }
}

# --- trigger: the push subscription's identity ----------------------------------------------------

resource "google_cloud_run_service_iam_member" "trigger_invokes_process" {
  location = var.region
  service  = google_cloudfunctions2_function.process.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.fn["trigger"].email}"
}

# The Pub/Sub service agent mints the trigger account's OIDC tokens (needed explicitly in
# projects created before April 2021; harmless after), on this one account only.
resource "google_service_account_iam_member" "agent_signs_as_trigger" {
  service_account_id = google_service_account.fn["trigger"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

# --- build ----------------------------------------------------------------------------------------

# Build logs (Cloud Logging offers no narrower scope than the project).
resource "google_project_iam_member" "build" {
  project = var.project
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.fn["build"].email}"
}

# Cloud Functions copies the archive to its staging bucket gcf-v2-sources-<number>-<region>,
# which it creates itself (so there is no bucket to grant on beforehand): the build reads it
# from there. Narrowed by a condition to that bucket.
resource "google_project_iam_member" "build_reads_staged_source" {
  project = var.project
  role    = "roles/storage.objectViewer"
  member  = "serviceAccount:${google_service_account.fn["build"].email}"

  condition {
    title       = "function sources only"
    description = "The Cloud Functions staging bucket of this region"
    expression  = "resource.name.startsWith(\"projects/_/buckets/gcf-v2-sources-${data.google_project.this.number}-${var.region}\")"
  }
}

resource "google_storage_bucket_iam_member" "build_reads_source" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.fn["build"].email}"
}

resource "google_artifact_registry_repository_iam_member" "build_pushes_images" {
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.fn["build"].email}"
}
