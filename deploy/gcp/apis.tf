# The Google APIs the stack uses, enabled in var.project. Terraform never disables them on
# destroy (other things in the project may use them), and dependent services are left alone.

locals {
  apis = toset([
    "artifactregistry.googleapis.com", # the functions' container images
    "cloudbuild.googleapis.com",       # builds the functions from the source archive
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com", # project IAM grants (read at plan time too: see README)
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com", # 2nd gen functions run on Cloud Run
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ])
}

resource "google_project_service" "api" {
  for_each = local.apis

  service                    = each.key
  disable_on_destroy         = false
  disable_dependent_services = false
}
