"""API Gateway HTTP API (payload format 2.0) <-> the platform-neutral HTTP messages."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from iotpipe.entrypoints.http.messages import HttpRequest, HttpResponse


def to_request(event: Mapping[str, Any]) -> HttpRequest:
    """The request an API Gateway v2 event carries (headers lower-cased, body decoded)."""
    http = event.get("requestContext", {}).get("http", {})
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    # API Gateway already joins repeated query parameters with commas, as the API expects.
    query = {str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()}
    return HttpRequest(
        method=str(http.get("method", "GET")).upper(),
        path=str(event.get("rawPath") or http.get("path") or "/"),
        query=query,
        headers=headers,
        body=raw,
    )


def to_result(response: HttpResponse) -> dict[str, Any]:
    """The Lambda proxy result for a response (binary-safe: bodies travel base64-encoded)."""
    return {
        "statusCode": response.status,
        "headers": dict(response.headers),
        "body": base64.b64encode(response.body).decode(),
        "isBase64Encoded": True,
    }
