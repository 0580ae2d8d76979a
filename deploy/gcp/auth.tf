# Authentication: the application's own API keys, from Secret Manager, checked by the functions;
# the functions' URLs are open at the Cloud Run level (var.public_invokers, allUsers by default).
#
# The HTTP functions check `Authorization: Bearer KEY` or `x-api-key` themselves, with the same
# code as every other iotpipe runtime (iotpipe.entrypoints.http.auth): one definition of which
# routes are public (/, /v1/health, /v1/openapi.json) and of the problem+json errors. Devices can
# hold a static key; few can obtain Google-signed ID tokens, which Cloud Run's invoker IAM would
# demand of every caller (and browsers opening the dashboard cannot send them). So the URLs
# admit anyone (roles/run.invoker for allUsers) and the keys decide. To put the API behind
# another gateway instead, set public_invokers to that gateway's identity: then both apply.
# An organisation policy restricting members to your domain (iam.allowedPolicyMemberDomains)
# refuses allUsers; ask for an exception for this project, or use a gateway.
#
# Cloud Functions mounts the secret's latest version as the IOTPIPE_API_KEYS variable
# (comma-separated keys, as settings.py reads them) when an instance starts: the key never sits
# in the function's configuration or in the code, and no SDK call is made for it. Terraform
# writes var.api_keys once and then ignores the value. Rotate by adding a version:
#   printf 'new-key,old-key' | gcloud secrets versions add <api_keys_secret output> --data-file=-
# New instances read it at start; roll the running ones with `terraform apply -replace=...` or
# a new revision (`gcloud run services update <function> --region R --update-labels rotated=N`).
# Remove an old key only once no device uses it.

resource "google_secret_manager_secret" "api_keys" {
  secret_id = "${var.name_prefix}-api-keys"

  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }

  depends_on = [google_project_service.api]
}

resource "google_secret_manager_secret_version" "api_keys" {
  secret = google_secret_manager_secret.api_keys.id
  # A secret version cannot be empty: with no key, a lone comma, which settings.py reads as no
  # key at all, keeps every authenticated route closed.
  secret_data = length(var.api_keys) > 0 ? join(",", var.api_keys) : ","

  lifecycle {
    ignore_changes = [secret_data] # rotated out of band, never reverted by Terraform
  }
}

# Who may reach the ingest and api URLs at all (see above).
resource "google_cloud_run_service_iam_member" "public" {
  for_each = {
    for pair in setproduct(["ingest", "api"], var.public_invokers) : "${pair[0]} ${pair[1]}" => pair
  }

  location = var.region
  service  = local.function_names[each.value[0]]
  role     = "roles/run.invoker"
  member   = each.value[1]

  depends_on = [google_cloudfunctions2_function.ingest, google_cloudfunctions2_function.api]
}
