"""Lambda handler: API Gateway HTTP API ``POST /v1/readings`` -> validated readings -> Kinesis."""

from __future__ import annotations

from typing import Any

from iotpipe.entrypoints.aws import bootstrap


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The API Gateway proxy result for one request."""
    return bootstrap.ingest_api().handle(event)
