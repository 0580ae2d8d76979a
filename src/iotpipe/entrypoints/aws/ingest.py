"""Lambda handler: API Gateway HTTP API ``POST /v1/readings`` -> validated readings -> Kinesis."""

from __future__ import annotations

import functools
import os
from typing import Any

from iotpipe.adapters.aws.kinesis import KinesisStream
from iotpipe.adapters.clock import SystemClock
from iotpipe.application import IngestService
from iotpipe.entrypoints.aws.apigw import Gateway
from iotpipe.entrypoints.aws.clients import api_keys, client
from iotpipe.entrypoints.aws.settings import AwsSettings
from iotpipe.entrypoints.http.api import AnalyticsApi


@functools.cache
def _api() -> Gateway:
    settings = AwsSettings.from_env(os.environ)
    stream = KinesisStream(settings.need("stream_name"), client("kinesis"))
    ingest = IngestService(stream, SystemClock(), settings.lateness)
    # Ingest only: this function may write the stream, never read the store.
    return Gateway(AnalyticsApi(None, ingest, api_keys(settings)), settings.api_base_path)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The API Gateway proxy result for one request."""
    return _api().handle(event)
