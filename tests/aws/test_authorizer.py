"""The API Gateway authorizer against moto's Secrets Manager: the same keys and headers as the
functions' own check, answered in API Gateway's simple-response format."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from iotpipe.entrypoints.aws import authorizer, bootstrap, clients, settings
from tests.aws.apigw import http_event
from tests.aws_support import REGION, MotoServer

pytestmark = pytest.mark.integration

KEYS = ["fleet-key-0123456789", "old-key-9876543210"]


@pytest.fixture
def secret(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    arn = moto.client("secretsmanager").create_secret(
        Name="iotpipe/api-keys", SecretString=orjson.dumps(KEYS).decode()
    )["ARN"]
    for name, value in {
        "AWS_ENDPOINT_URL": moto.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        settings.API_KEYS_SECRET: arn,
    }.items():
        monkeypatch.setenv(name, value)
    clients.client.cache_clear()
    bootstrap.authorizer_keys.cache_clear()
    yield arn
    clients.client.cache_clear()
    bootstrap.authorizer_keys.cache_clear()


@pytest.mark.parametrize("key", KEYS)
def test_a_key_of_the_secret_is_authorized_in_either_header(secret: str, key: str) -> None:
    event = http_event("POST", "/v1/readings", b"[]", key=key)
    assert authorizer.handler(event, None) == {"isAuthorized": True}
    event["headers"] = {"X-API-Key": key}  # as devices may send it, in any case
    assert authorizer.handler(event, None) == {"isAuthorized": True}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer "},
        {"authorization": f"Bearer {KEYS[0]}x"},
        {"authorization": f"Basic {KEYS[0]}"},
        {"x-api-key": KEYS[0][:-1]},
    ],
)
def test_anything_else_is_refused(secret: str, headers: dict[str, str]) -> None:
    event = http_event("GET", "/v1/devices")
    event["headers"] = headers
    assert authorizer.handler(event, None) == {"isAuthorized": False}
