# The raw archive and the quarantine: one bucket, prefixes raw/ (every batch as received, the
# source of `iotpipe replay`) and rejected/ (what validation refused, with reasons), as written
# by iotpipe.adapters.aws.s3.

resource "aws_s3_bucket" "archive" {
  #checkov:skip=CKV_AWS_18: server access logs need a second bucket; only the process role writes here; enable CloudTrail S3 data events if you need an audit trail
  #checkov:skip=CKV_AWS_144: cross-region replication doubles storage cost; add a replica bucket in another region if the archive must survive a regional outage
  #checkov:skip=CKV2_AWS_62: nothing consumes object events; the archive is read on demand by `iotpipe replay`
  bucket = local.bucket_name

  # With protect_data (the default) Terraform refuses to delete a non-empty archive.
  force_destroy = !var.protect_data
}

resource "aws_s3_bucket_ownership_controls" "archive" {
  bucket = aws_s3_bucket.archive.id
  rule {
    object_ownership = "BucketOwnerEnforced" # no ACLs: access is by IAM and the bucket policy
  }
}

resource "aws_s3_bucket_public_access_block" "archive" {
  bucket                  = aws_s3_bucket.archive.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# Versioning: a retried batch overwrites its own object with identical bytes; versions guard
# against anything else (a bug, an operator) overwriting or deleting raw data.
resource "aws_s3_bucket_versioning" "archive" {
  bucket = aws_s3_bucket.archive.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "archive" {
  bucket = aws_s3_bucket.archive.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.data.arn
    }
    bucket_key_enabled = true # one KMS request per bucket key, not per object: far fewer KMS calls
  }
}

# TLS only: any request over plain HTTP is denied, whoever makes it.
resource "aws_s3_bucket_policy" "archive" {
  bucket = aws_s3_bucket.archive.id
  policy = data.aws_iam_policy_document.archive_tls_only.json

  depends_on = [aws_s3_bucket_public_access_block.archive]
}

data "aws_iam_policy_document" "archive_tls_only" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.archive.arn, "${aws_s3_bucket.archive.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

# Archived batches are written once and read rarely (a replay, an investigation): move them to
# cheaper classes as they age; expiry is off by default for raw/ (it is the source of truth for
# replays) and 90 days for rejected/. All configurable (var.archive_lifecycle). S3 does not
# transition objects under 128 KB by default (their per-object overhead would cost more than it
# saves), so a quiet pipeline's small batch objects simply stay in STANDARD.
resource "aws_s3_bucket_lifecycle_configuration" "archive" {
  bucket = aws_s3_bucket.archive.id

  rule {
    id     = "raw"
    status = "Enabled"
    filter {
      prefix = "raw/"
    }
    transition {
      days          = var.archive_lifecycle.infrequent_access_days
      storage_class = "STANDARD_IA"
    }
    transition {
      days          = var.archive_lifecycle.glacier_days
      storage_class = "GLACIER_IR" # instant retrieval: a replay needs no restore step
    }
    dynamic "expiration" {
      for_each = var.archive_lifecycle.expire_days == null ? [] : [var.archive_lifecycle.expire_days]
      content {
        days = expiration.value
      }
    }
    noncurrent_version_expiration {
      noncurrent_days = var.archive_lifecycle.noncurrent_days
    }
  }

  rule {
    id     = "rejected"
    status = "Enabled"
    filter {
      prefix = "rejected/"
    }
    transition {
      days          = var.archive_lifecycle.infrequent_access_days
      storage_class = "STANDARD_IA"
    }
    dynamic "expiration" {
      for_each = var.archive_lifecycle.rejected_expire_days == null ? [] : [var.archive_lifecycle.rejected_expire_days]
      content {
        days = expiration.value
      }
    }
    noncurrent_version_expiration {
      noncurrent_days = var.archive_lifecycle.noncurrent_days
    }
  }

  # The whole bucket: parts of uploads never completed are deleted after a day (the handlers
  # write whole objects, but an interrupted upload by anyone else would be billed forever).
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.archive]
}
