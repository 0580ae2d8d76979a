"""API Gateway HTTP API (payload format 2.0) <-> the platform-neutral HTTP messages.

Routing uses the path as the API sees it: ``rawPath`` without what API Gateway puts in front.

- A named stage (anything but ``$default``) called through the API's own endpoint
  (``<id>.execute-api.<region>.amazonaws.com/<stage>/...``) keeps ``/<stage>`` in ``rawPath``;
  it is stripped. The ``$default`` stage has no prefix.
- A custom domain never adds the stage, but an API mapping with a key (a base path:
  ``api.example.com/<key>/...``) keeps ``/<key>`` in ``rawPath``; the handlers strip the base
  path they are configured with (``IOTPIPE_API_BASE_PATH``), since the event does not name it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from iotpipe.entrypoints.http.messages import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from iotpipe.entrypoints.http.api import AnalyticsApi

#: The stage served at the API's root, with no prefix in paths.
DEFAULT_STAGE = "$default"
#: The host of an API's own endpoint (``<id>.execute-api.<region>.amazonaws.com``).
_EXECUTE_API = ".execute-api."


@dataclass(frozen=True, slots=True)
class Gateway:
    """The API behind API Gateway: events in, proxy results out, paths as the API sees them."""

    api: AnalyticsApi
    base_path: str = ""

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The proxy result for one API Gateway v2 event."""
        return to_result(self.api.handle(to_request(event, self.base_path)))


def to_request(event: Mapping[str, Any], base_path: str = "") -> HttpRequest:
    """The request an API Gateway v2 event carries (headers lower-cased, body decoded, the
    stage or ``base_path`` prefix stripped from the path)."""
    context = event.get("requestContext") or {}
    http = context.get("http", {})
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    # API Gateway already joins repeated query parameters with commas, as the API expects.
    query = {str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()}
    return HttpRequest(
        method=str(http.get("method", "GET")).upper(),
        path=route_path(event, base_path),
        query=query,
        headers=headers,
        body=raw,
    )


def route_path(event: Mapping[str, Any], base_path: str = "") -> str:
    """The path to route: ``rawPath`` less a named stage's prefix (through the API's own
    endpoint) or the custom domain's ``base_path``."""
    context = event.get("requestContext") or {}
    path = str(event.get("rawPath") or context.get("http", {}).get("path") or "/")
    stage = str(context.get("stage") or DEFAULT_STAGE)
    domain = str(context.get("domainName") or "")
    if stage != DEFAULT_STAGE and (not domain or _EXECUTE_API in domain):
        path = _strip(path, stage)
    if base_path.strip("/"):
        path = _strip(path, base_path.strip("/"))
    return path


def _strip(path: str, segment: str) -> str:
    """``path`` without a leading ``/segment`` (whole segments only)."""
    prefix = "/" + segment
    if path == prefix or path.startswith(prefix + "/"):
        return path[len(prefix) :] or "/"
    return path


def to_result(response: HttpResponse) -> dict[str, Any]:
    """The Lambda proxy result for a response (binary-safe: bodies travel base64-encoded)."""
    return {
        "statusCode": response.status,
        "headers": dict(response.headers),
        "body": base64.b64encode(response.body).decode(),
        "isBase64Encoded": True,
    }
