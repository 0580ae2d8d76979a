"""The AWS composition root's store: the deployment's fleet shards, or the store's default.

The settings leave an unset ``IOTPIPE_FLEET_SHARDS`` as ``None`` (resolving it would load the
DynamoDB adapter in every handler module); the root resolves it where it builds the store.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from iotpipe.adapters.aws.dynamodb import DEFAULT_FLEET_SHARDS
from iotpipe.entrypoints.aws import bootstrap, clients, settings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _offline_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # A client is made, never called: building a store sends no request.
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    clients.client.cache_clear()
    yield
    clients.client.cache_clear()  # no later test may get this client, pointed at no endpoint


@pytest.mark.parametrize(
    ("environment", "shards"),
    [({}, DEFAULT_FLEET_SHARDS), ({settings.FLEET_SHARDS: "5"}, 5)],
)
def test_the_store_gets_the_deployments_fleet_shards_or_the_default(
    environment: dict[str, str], shards: int
) -> None:
    read = settings.AwsSettings.from_env({settings.TABLE_NAME: "windows", **environment})
    store = bootstrap._dynamo_store(read, ttl_days=30)
    assert (store.table_name, store.fleet_shards, store.ttl_days) == ("windows", shards, 30)
