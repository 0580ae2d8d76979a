"""Lambda handler: API Gateway HTTP API ``POST /v1/readings`` -> validated readings -> Kinesis."""

from __future__ import annotations

from typing import Any

from iotpipe.entrypoints.aws import bootstrap
from iotpipe.entrypoints.aws.apigw import to_request, to_result

_api = bootstrap.ingest_api  # its former name


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The API Gateway proxy result for one request."""
    return to_result(bootstrap.ingest_api().handle(to_request(event)))
