"""Lambda handler: API Gateway HTTP API query routes -> DynamoDB (read-only)."""

from __future__ import annotations

import functools
import os
from typing import Any

from iotpipe.adapters.aws.dynamodb import DynamoStore
from iotpipe.application import QueryService
from iotpipe.entrypoints.aws.apigw import Gateway
from iotpipe.entrypoints.aws.clients import api_keys, client
from iotpipe.entrypoints.aws.settings import AwsSettings
from iotpipe.entrypoints.http.api import AnalyticsApi


@functools.cache
def _api() -> Gateway:
    settings = AwsSettings.from_env(os.environ)
    store = DynamoStore(
        settings.need("table_name"), client("dynamodb"), fleet_shards=settings.fleet_shards
    )
    return Gateway(
        AnalyticsApi(QueryService(store), None, api_keys(settings)), settings.api_base_path
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The API Gateway proxy result for one request."""
    return _api().handle(event)
