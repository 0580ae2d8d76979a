# The readings topic, the push subscriptions that feed the process function (each readings
# message, or each finished archive file: var.process_from), and the dead-letter topic with a
# subscription that keeps what lands there. The archive subscription and the files' topic are in
# archive_files.tf.
#
# Why a push subscription of our own rather than the function's Eventarc trigger
# (`event_trigger` of google_cloudfunctions2_function): Eventarc creates and owns the trigger's
# subscription, and neither the Cloud Functions nor the Eventarc resources of the google provider
# can give it a dead-letter policy (hashicorp/terraform-provider-google#17697 and #25069, open).
# `retry_policy = "RETRY_POLICY_RETRY"` retries on a backoff Eventarc chooses until the message
# expires from that subscription (users report 24 hours of retention; the API says up to 7 days):
# a poison message would be retried all that time, then lost without a trace. Editing Eventarc's
# subscription by hand lasts until Eventarc recreates it. A subscription declared here has what
# the pipeline needs: exponential backoff, bounded deliveries, a dead-letter topic, 7 days of
# retention, an ack deadline matching the function's timeout, no expiry.
#
# The process function is an HTTP function that reads the push request itself
# (iotpipe.entrypoints.gcp.process): functions-framework's CloudEvent conversion would answer 400
# for a message without `data` (Pub/Sub omits empty data), so such a message would be retried
# and dead-lettered instead of quarantined. It keeps the push body's `subscription` and
# `deliveryAttempt` for the summary log line, and also reads a CloudEvent (binary or structured)
# should an Eventarc trigger be used instead. The `/projects/<p>/topics/<t>` suffix of the push
# endpoint names the topic in the function's request logs. tests/gcp/test_end_to_end.py runs
# this path against the Pub/Sub emulator: push, redelivery on a failure, dead-lettering after
# the maximum attempts; tests/gcp/test_functions.py posts every documented envelope shape.

resource "google_pubsub_topic" "readings" {
  #checkov:skip=CKV_GCP_83: Google-managed encryption at rest; a CMEK would need a Cloud KMS key ring (never deletable) and grants to several service agents: add one if your compliance requires it
  name = "${var.name_prefix}-readings"

  # Messages are stored in the deployment's region only.
  message_storage_policy {
    allowed_persistence_regions = [var.region]
  }

  depends_on = [google_project_service.api]
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83: Google-managed encryption at rest; a CMEK would need a Cloud KMS key ring (never deletable) and grants to several service agents: add one if your compliance requires it
  name = "${var.name_prefix}-dead-letter"

  message_storage_policy {
    allowed_persistence_regions = [var.region]
  }

  depends_on = [google_project_service.api]
}

locals {
  retention = "${var.message_retention_days * 86400}s"

  # What each push subscription to the process function reads (derived.tf: local.process_routes):
  # the readings topic itself, or the archive bucket's notifications of finished files
  # (archive_files.tf). Both routes get the same delivery settings below: one resource, not two.
  process_subscriptions = {
    for route in local.process_routes : route => {
      name  = route == "messages" ? "${var.name_prefix}-process" : "${var.name_prefix}-process-files"
      topic = route == "messages" ? google_pubsub_topic.readings.id : one(google_pubsub_topic.archive_files[*].id)
    }
  }

  # Retries and dead letters of every subscription that delivers readings or files (the push
  # subscriptions here and the archive subscription, archive_files.tf).
  delivery = {
    minimum_backoff       = "${var.retry_backoff.min_s}s"
    maximum_backoff       = "${var.retry_backoff.max_s}s"
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }
}

# The per-message subscription was a single resource before process_from existed: the same
# subscription (and its backlog) becomes the "messages" route instead of being replaced.
moved {
  from = google_pubsub_subscription.process
  to   = google_pubsub_subscription.process["messages"]
}

resource "google_pubsub_subscription" "process" {
  for_each = local.process_subscriptions

  name  = each.value.name
  topic = each.value.topic

  push_config {
    # The Cloud Run URL of the function (its own audience); the path names the topic (above).
    push_endpoint = "${google_cloudfunctions2_function.process.service_config[0].uri}/${each.value.topic}"

    # Pub/Sub signs each push with an OIDC token of the trigger service account, the only
    # identity allowed to invoke the process function (iam.tf); the function is not public.
    oidc_token {
      service_account_email = google_service_account.fn["trigger"].email
      audience              = google_cloudfunctions2_function.process.service_config[0].uri
    }
  }

  # A push is acknowledged by the function's 2xx answer. The deadline matches the function's
  # timeout, so a delivery still being processed is never handed out a second time.
  ack_deadline_seconds = var.functions["process"].timeout_s

  # A failed delivery is retried with exponential backoff from 10 s to 10 min. Failed deliveries
  # include overload, not only bad luck: a Cloud Storage upload refused by its rate limits
  # (429/503 past the client's own 30 s of retries), Firestore contention, or Cloud Run's 429
  # when the function is at max_instances x concurrency. So the attempts are Pub/Sub's maximum,
  # 100: with the backoff at its 10 min ceiling from the ~7th attempt on, a message is given
  # up only after ~15 hours of continuous failure (well inside the 7 days of retention), so an
  # overload or an outage of a few hours delays healthy data and never dead-letters it; a
  # message that truly cannot succeed (a permission error, say) still ends on the dead-letter
  # topic, a day later at most. A file's notification is retried the same way: the whole file
  # is processed again, which exactness makes harmless.
  retry_policy {
    minimum_backoff = local.delivery.minimum_backoff
    maximum_backoff = local.delivery.maximum_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = local.delivery.dead_letter_topic
    max_delivery_attempts = local.delivery.max_delivery_attempts
  }

  # A backlog (the function failing, or scaled to its maximum) survives up to 7 days.
  message_retention_duration = local.retention
  retain_acked_messages      = false

  # Never expire for inactivity (Pub/Sub's default deletes a subscription idle for 31 days).
  expiration_policy {
    ttl = ""
  }

  # Ordering is off: aggregates do not depend on order (see iotpipe.adapters.gcp.pubsub), and
  # dead-lettering an ordered key would hold back its later messages.
  enable_message_ordering = false

  depends_on = [google_cloud_run_service_iam_member.trigger_invokes_process]
}

# Keeps what was dead-lettered, for inspection and redrive (a topic without a subscription
# drops messages). Pull it, fix the cause, and publish it again, with its attributes, where it
# came from: a readings message (attribute device_id; from the process or archive subscription)
# to the readings topic, a file's notification (attributes eventType, objectId) to the
# archive-files topic. Processing is idempotent, so what was partly applied is safe to send again.
resource "google_pubsub_subscription" "dead_letter" {
  name  = "${var.name_prefix}-dead-letter"
  topic = google_pubsub_topic.dead_letter.id

  ack_deadline_seconds       = 60
  message_retention_duration = local.retention

  expiration_policy {
    ttl = ""
  }
}

# What the Pub/Sub service agent needs to dead-letter: publish to the dead-letter topic, and
# acknowledge (subscribe to) the subscription the message leaves.
resource "google_pubsub_topic_iam_member" "agent_publishes_dead_letters" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "agent_forwards_dead_letters" {
  for_each = google_pubsub_subscription.process

  subscription = each.value.id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

moved {
  from = google_pubsub_subscription_iam_member.agent_forwards_dead_letters
  to   = google_pubsub_subscription_iam_member.agent_forwards_dead_letters["messages"]
}
