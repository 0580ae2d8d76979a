# One customer-managed KMS key encrypts the stack's data at rest: the stream, the table, the
# archive, the queue, the alarm topic, the log groups, the API-keys secret and the functions'
# environment. One key keeps the key policy (and its cost, $1/month) in one place; each role is
# granted only the key operations its own data needs (iam.tf).

resource "aws_kms_key" "data" {
  description             = "${var.name_prefix}: encrypts the pipeline's stream, table, archive, topic, logs and secret"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "data" {
  name          = "alias/${var.name_prefix}-data"
  target_key_id = aws_kms_key.data.key_id
}

data "aws_iam_policy_document" "kms" {
  # The account administers the key through IAM (the standard default statement); without it
  # no IAM policy could grant use of the key. In a key policy "*" means this key.
  #checkov:skip=CKV_AWS_109: a key policy's "*" resource is the key itself; IAM delegation is the AWS default statement
  #checkov:skip=CKV_AWS_111: a key policy's "*" resource is the key itself
  #checkov:skip=CKV_AWS_356: a key policy's "*" resource is the key itself
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # CloudWatch Logs encrypts the stack's log groups (and only those) with the key.
  statement {
    sid       = "CloudWatchLogsEncryptsTheStacksLogGroups"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
    }
  }

  # S3 announces failed batches on the encrypted SNS topic (failures.tf).
  statement {
    sid       = "S3PublishesToTheEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  # CloudWatch alarms publish to the encrypted SNS topic (AWS's documented statement for it).
  statement {
    sid       = "CloudWatchAlarmsPublishToTheEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
  }
}
