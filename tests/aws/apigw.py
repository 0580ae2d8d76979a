"""API Gateway HTTP API (payload format 2.0) events and results, as the handlers see them."""

from __future__ import annotations

import base64
from typing import Any

import orjson


def http_event(
    method: str,
    path: str,
    body: bytes = b"",
    query: dict[str, str] | None = None,
    key: str | None = None,
    *,
    stage: str = "$default",
    domain: str = "abc123.execute-api.us-east-1.amazonaws.com",
    prefix: str = "",
) -> dict[str, Any]:
    """An API Gateway HTTP API payload format 2.0 event (binary-safe: the body is base64).

    ``prefix`` is what API Gateway leaves in front of the route's path in ``rawPath``: a named
    stage's ``/<stage>`` through the API's own endpoint, or a custom domain's base path."""
    headers = {"content-type": "application/json", "user-agent": "iotpipe-tests"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    raw_path = prefix + path
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": raw_path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "headers": headers,
        "queryStringParameters": query,
        "requestContext": {
            "http": {"method": method, "path": raw_path},
            "requestId": "test-1",
            "stage": stage,
            "domainName": domain,
            "domainPrefix": domain.split(".", maxsplit=1)[0],
        },
        "body": base64.b64encode(body).decode() if body else None,
        "isBase64Encoded": bool(body),
    }


def answer(result: dict[str, Any]) -> tuple[int, Any]:
    """The status and decoded JSON body of a handler's proxy result."""
    body = base64.b64decode(result["body"]) if result.get("isBase64Encoded") else result["body"]
    return result["statusCode"], orjson.loads(body) if body else None
