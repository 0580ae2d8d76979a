# The archive bucket: the archive subscription's files (stream/, process_from "files" or "both":
# archive_files.tf), the per-message path's raw batches (raw/, "messages" or "both"), and the
# quarantine (rejected/), in the layout iotpipe.application.codecs.archive defines.
# `iotpipe replay` rebuilds aggregates from stream/ and raw/; rejected/ is for inspection.

resource "google_storage_bucket" "archive" {
  #checkov:skip=CKV_GCP_62: Cloud Audit Logs (Data Access logs for Cloud Storage, switched on per project) are the supported record of object access; legacy usage logs would need a second bucket
  name     = local.archive_bucket_name
  location = coalesce(var.archive_location, var.region)

  # IAM only, no object ACLs; never public, whatever IAM says.
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  # Deleting or overwriting keeps the old version (for noncurrent_days): a mistaken delete, or
  # a replaced object, can be restored. A redelivered message rewrites its own object with the
  # same bytes, so versions stay rare.
  versioning {
    enabled = true
  }

  # Terraform empties the bucket on destroy only once protect_data is off (make destroy-gcp).
  force_destroy = !var.protect_data

  # Colder classes as the archive ages: it is read only when replaying (a stream/ file is read
  # once by the process function within minutes of being written, while STANDARD). NEARLINE and
  # COLDLINE have 30- and 90-day minimum storage durations, ARCHIVE 365: the defaults respect
  # them. The rules name no prefix: stream/ and raw/ age alike.
  lifecycle_rule {
    condition {
      age                   = var.archive_lifecycle.nearline_days
      matches_storage_class = ["STANDARD"]
      with_state            = "LIVE"
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }

  lifecycle_rule {
    condition {
      age                   = var.archive_lifecycle.coldline_days
      matches_storage_class = ["STANDARD", "NEARLINE"]
      with_state            = "LIVE"
    }
    action {
      type          = "SetStorageClass"
      storage_class = "COLDLINE"
    }
  }

  dynamic "lifecycle_rule" {
    for_each = var.archive_lifecycle.archive_days == null ? [] : [var.archive_lifecycle.archive_days]
    content {
      condition {
        age                   = lifecycle_rule.value
        matches_storage_class = ["STANDARD", "NEARLINE", "COLDLINE"]
        with_state            = "LIVE"
      }
      action {
        type          = "SetStorageClass"
        storage_class = "ARCHIVE"
      }
    }
  }

  # The archive (stream/ and raw/) is kept forever by default (the source of truth for
  # replays); set expire_days to bound it.
  dynamic "lifecycle_rule" {
    for_each = var.archive_lifecycle.expire_days == null ? [] : [var.archive_lifecycle.expire_days]
    content {
      condition {
        age        = lifecycle_rule.value
        with_state = "LIVE"
      }
      action {
        type = "Delete"
      }
    }
  }

  # Rejections are for inspection: 90 days by default.
  dynamic "lifecycle_rule" {
    for_each = var.archive_lifecycle.rejected_expire_days == null ? [] : [var.archive_lifecycle.rejected_expire_days]
    content {
      condition {
        age            = lifecycle_rule.value
        matches_prefix = ["rejected/"]
        with_state     = "LIVE"
      }
      action {
        type = "Delete"
      }
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.archive_lifecycle.noncurrent_days
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.api]
}
