# Authentication: the application's own API keys, held in a Secrets Manager secret, checked at
# API Gateway by a Lambda request authorizer on the query routes (api.tf), and by the functions
# themselves (ingest's own check is the only one on POST /v1/readings by default: api.tf says why).
#
# The authorizer and the HTTP handlers check `Authorization: Bearer KEY` or `x-api-key` with the
# same code as every other runtime, reading the valid keys from the secret named by
# IOTPIPE_API_KEYS_SECRET once per execution environment
# (iotpipe.entrypoints.aws.clients.api_keys). Devices rarely can do OAuth flows (JWT authorizer)
# or SigV4 (IAM authorizer); a static per-fleet key is what they can do.
#
# The secret's value is a JSON list of keys (or a comma-separated list). Terraform writes
# var.api_keys once, when the secret is created, and then ignores the value: rotate keys with
# `aws secretsmanager put-secret-value --secret-id <api_keys_secret_arn output> --secret-string
# '["new-key","old-key"]'`; new execution environments pick them up (existing ones within
# minutes to hours, as Lambda recycles them; publish a new version or update the function's
# configuration to force it). The initial value is in the Terraform state: keep the state
# private, or leave api_keys empty and put the keys out of band as above.

resource "aws_secretsmanager_secret" "api_keys" {
  #checkov:skip=CKV2_AWS_57: the keys are shared with devices and rotated by their operator (put-secret-value); automatic rotation would need a rotation Lambda that cannot reach the devices
  name                    = "${var.name_prefix}/api-keys"
  description             = "iotpipe API keys: a JSON list of the keys accepted by the HTTP API"
  kms_key_id              = aws_kms_key.data.arn
  recovery_window_in_days = var.secret_recovery_days
}

resource "aws_secretsmanager_secret_version" "api_keys" {
  secret_id     = aws_secretsmanager_secret.api_keys.id
  secret_string = jsonencode(var.api_keys)

  lifecycle {
    ignore_changes = [secret_string] # rotated out of band, never reverted by Terraform
  }
}
