"""Platform-neutral HTTP messages: what every runtime translates its own request and response to.

The local server, an AWS Lambda handler and a GCP Cloud Function each convert their platform's
shapes to :class:`HttpRequest` and back from :class:`HttpResponse`; nothing else of theirs
reaches the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
HTML = "text/html; charset=utf-8"

# Sent on every response: nothing the API returns is meant to be sniffed, cached by a shared
# cache (the data is per-key and changes every minute) or leak the URL through a Referer.
_COMMON_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request as the API sees it.

    ``path`` is the request target's path without the query string, percent-encoding intact
    (an already-decoded path works too: device ids contain neither ``/`` nor ``%``).
    ``query`` maps each parameter to its decoded value; a runtime joins repeated parameters
    with commas, as API Gateway does. ``headers`` names are lower-case.
    """

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """One response: status, lower-case header names, and the body.

    For ``HEAD`` requests the API answers as for ``GET``; the runtime sends the headers only.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes = b""

    def json(self) -> Any:
        """The body decoded as JSON (for tests and adapters that re-encode)."""
        return orjson.loads(self.body)


def json_response(
    status: int,
    payload: object,
    *,
    content_type: str = JSON,
    headers: Mapping[str, str] | None = None,
) -> HttpResponse:
    """A JSON response that no shared cache keeps."""
    return bytes_response(
        status,
        orjson.dumps(payload),
        content_type=content_type,
        headers={"cache-control": "no-store", **(headers or {})},
    )


def bytes_response(
    status: int, body: bytes, *, content_type: str, headers: Mapping[str, str] | None = None
) -> HttpResponse:
    """A response with the common security headers and an exact ``content-length``."""
    return HttpResponse(
        status,
        {
            **_COMMON_HEADERS,
            "content-type": content_type,
            "content-length": str(len(body)),
            **(headers or {}),
        },
        body,
    )
