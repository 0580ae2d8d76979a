"""boto3 clients and the API keys, made once per execution environment."""

from __future__ import annotations

import functools
from typing import Any

import orjson

from iotpipe.entrypoints.aws.settings import AwsSettings
from iotpipe.entrypoints.http.auth import ApiKeys


@functools.cache
def client(service: str) -> Any:
    """A boto3 client (honours ``AWS_ENDPOINT_URL``, so tests point it at moto)."""
    import boto3  # imported on first use: handler modules import fast

    return boto3.client(service)


def api_keys(settings: AwsSettings) -> ApiKeys:
    """Keys from the environment, plus those in the Secrets Manager secret if one is named.

    The secret's string is a JSON list of keys or a comma-separated list.
    """
    keys = list(settings.api_keys)
    if settings.api_keys_secret:
        secret = client("secretsmanager").get_secret_value(SecretId=settings.api_keys_secret)
        keys += _parse_keys(str(secret.get("SecretString", "")))
    return ApiKeys(keys)


def _parse_keys(text: str) -> list[str]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = text.split(",")
    items = value if isinstance(value, list) else [value]
    return [str(k).strip() for k in items if str(k).strip()]
