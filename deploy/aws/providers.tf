# Terraform, the AWS provider and the names every other file shares.
#
# One variable, aws_endpoint_url, switches every service endpoint to one URL (moto in the tests,
# see tests/terraform/) with dummy credentials. Its default, null, means real AWS with the
# credentials of whoever runs Terraform (environment, profile, SSO...).

terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}

locals {
  emulated = var.aws_endpoint_url != null
}

provider "aws" {
  region = var.region

  # Dummy credentials and no account/metadata look-ups only against an emulator; null leaves
  # the provider's normal credential chain and checks in place for real AWS.
  access_key                  = local.emulated ? "testing" : null
  secret_key                  = local.emulated ? "testing" : null
  skip_credentials_validation = local.emulated
  skip_requesting_account_id  = local.emulated
  skip_metadata_api_check     = local.emulated ? "true" : null
  s3_use_path_style           = local.emulated

  # Every service this configuration calls. null (the default) is the real endpoint.
  endpoints {
    apigatewayv2   = var.aws_endpoint_url
    cloudwatch     = var.aws_endpoint_url
    dynamodb       = var.aws_endpoint_url
    iam            = var.aws_endpoint_url
    iot            = var.aws_endpoint_url
    kinesis        = var.aws_endpoint_url
    kms            = var.aws_endpoint_url
    lambda         = var.aws_endpoint_url
    logs           = var.aws_endpoint_url
    s3             = var.aws_endpoint_url
    secretsmanager = var.aws_endpoint_url
    sns            = var.aws_endpoint_url
    sqs            = var.aws_endpoint_url
    sts            = var.aws_endpoint_url
  }

  default_tags {
    tags = merge({ Project = "iotpipe", Stack = var.name_prefix }, var.tags)
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  # The archive bucket's name must be unique across all of S3: account and region make it so.
  bucket_name = coalesce(var.archive_bucket_name, "${var.name_prefix}-archive-${local.account_id}-${local.region}")

  # The four functions share one code zip (see `iotpipe package aws`); each has its handler.
  function_names = {
    ingest     = "${var.name_prefix}-ingest"
    process    = "${var.name_prefix}-process"
    api        = "${var.name_prefix}-api"
    authorizer = "${var.name_prefix}-authorizer"
    fleet      = "${var.name_prefix}-fleet"
  }
}
