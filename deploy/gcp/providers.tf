# Terraform, the google provider, and the names shared by every file.
#
# The provider uses the credentials of whoever runs Terraform (Application Default Credentials:
# `gcloud auth application-default login`, or GOOGLE_APPLICATION_CREDENTIALS), in var.project.
# Nothing here has been planned or applied against real GCP: no google provider can be installed
# where iotpipe is built, so the tests check formatting, checkov and the wiring by parsing the HCL
# (tests/terraform/test_gcp_static.py). Run `terraform validate` after `init` on your machine.

terraform {
  required_version = ">= 1.6"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }
}

provider "google" {
  project = var.project
  region  = var.region

  default_labels = merge({ project = "iotpipe", stack = var.name_prefix }, var.labels)
}

data "google_project" "this" {
  project_id = var.project
}

locals {
  # Bucket names are global across all of Cloud Storage: the project id makes them unique.
  archive_bucket_name = coalesce(var.archive_bucket_name, "${var.project}-${var.name_prefix}-archive")
  source_bucket_name  = "${var.project}-${var.name_prefix}-source"

  # The Pub/Sub service agent: it pushes to the process function (minting the trigger service
  # account's OIDC token) and forwards undeliverable messages to the dead-letter topic.
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  # Log-based metric names: letters, digits and '_' keep them usable from PromQL.
  metric_prefix = replace(var.name_prefix, "-", "_")
}
