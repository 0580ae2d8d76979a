# The aggregate store: a Firestore database in Native mode, the index and the field settings
# the store's queries need, and the TTL policy. They follow iotpipe.adapters.gcp.firestore (its
# module docstring, FLEET_INDEX, UNINDEXED_FIELDS, TTL_FIELD); tests/terraform/test_gcp_static.py
# derives what the adapter's queries need and checks that this file declares it. The emulator
# enforces no index: production does, and a missing one fails the query (FailedPrecondition).

resource "google_firestore_database" "store" {
  name        = var.firestore_database
  location_id = coalesce(var.firestore_location, var.region)
  type        = "FIRESTORE_NATIVE"

  # 7 days of point-in-time recovery (reads of past versions, restores): a bad deployment's
  # writes can be undone.
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"

  delete_protection_state = var.protect_data ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  # `terraform destroy` deletes the database (once protection is off, see make destroy-gcp)
  # rather than leaving it behind, unmanaged.
  deletion_policy = "DELETE"

  depends_on = [google_project_service.api]
}

# fleet_hour: a collection-group query over every device's "hours" subcollection,
# hour_ms == H ordered by device_id (paged after the last device). A composite index with
# collection-group scope is the only way Firestore can serve it.
resource "google_firestore_index" "fleet_hour" {
  database    = google_firestore_database.store.name
  collection  = "hours"
  query_scope = "COLLECTION_GROUP"

  fields {
    field_path = "hour_ms"
    order      = "ASCENDING"
  }
  fields {
    field_path = "device_id"
    order      = "ASCENDING"
  }
}

# The other queries need only the automatic single-field indexes, kept on: hourly (a range on
# hour_ms ordered by it), latest (hour_ms descending) within one device's "hours", and the
# device registry ordered by device_id. These window fields are never queried: indexing them
# would only cost write latency and index storage (seen is up to ~290 KB of bytes).
resource "google_firestore_field" "unindexed" {
  for_each = toset(["seen", "metrics", "located", "latest"])

  database   = google_firestore_database.store.name
  collection = "hours"
  field      = each.key

  index_config {} # no single-field index
}

# expire_at: written only when IOTPIPE_TTL_DAYS is set (var.ttl_days); the TTL policy deletes a
# window within about a day after that time (documents without the field never expire). Not
# indexed either: Google advises against indexing a TTL field (timestamps in order hotspot).
resource "google_firestore_field" "expire_at" {
  database   = google_firestore_database.store.name
  collection = "hours"
  field      = "expire_at"

  index_config {}
  ttl_config {}

  # Field settings are applied one at a time per database.
  depends_on = [google_firestore_field.unindexed]
}
