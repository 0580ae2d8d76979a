"""Errors as RFC 9457 problem details, from one catalogue of stable problem types.

Every error the API returns is ``application/problem+json`` with ``type``
(``https://iotpipe.dev/problems/<code>``), ``title``, ``status``, ``detail`` and ``code``, plus
extension members where they help (``errors``, ``rejected``, ``unpublished``). Clients branch
on ``code`` (or ``type``); ``detail`` is for people and may change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from iotpipe.entrypoints.http.messages import PROBLEM_JSON, HttpResponse, json_response

TYPE_BASE = "https://iotpipe.dev/problems/"


@dataclass(frozen=True, slots=True)
class ProblemType:
    """One kind of error: its stable code, HTTP status, short title and when it happens."""

    code: str
    status: int
    title: str
    description: str

    @property
    def uri(self) -> str:
        """The problem's ``type`` URI."""
        return TYPE_BASE + self.code


MALFORMED_JSON = ProblemType(
    "malformed_json", 400, "Malformed JSON", "The body is not JSON, or nests too deeply."
)
INVALID_READINGS = ProblemType(
    "invalid_readings",
    400,
    "No valid reading",
    "Every reading was rejected; `rejected` lists each one's index, reason and message.",
)
NO_READINGS = ProblemType(
    "no_readings", 400, "No readings", "The body is an empty array: there is nothing to ingest."
)
INVALID_PARAMETER = ProblemType(
    "invalid_parameter",
    400,
    "Invalid parameter",
    "A path or query parameter is missing, unknown or malformed (bad or naive instant, "
    "limit out of range); `errors` lists each parameter and what is wrong with it.",
)
INVALID_RANGE = ProblemType("invalid_range", 400, "Empty time range", "`from` is not before `to`.")
RANGE_TOO_LARGE = ProblemType(
    "range_too_large", 400, "Time range too large", "`to` - `from` exceeds the route's maximum."
)
INVALID_CURSOR = ProblemType(
    "invalid_cursor",
    400,
    "Invalid cursor",
    "The cursor is not one this API issued, or was issued for other parameters.",
)
UNAUTHORIZED = ProblemType(
    "unauthorized",
    401,
    "Missing or invalid API key",
    "Send a configured key as `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
)
NOT_FOUND = ProblemType("not_found", 404, "Not found", "No route has this path.")
UNKNOWN_DEVICE = ProblemType(
    "unknown_device", 404, "Unknown device", "No reading of this device has been stored."
)
METHOD_NOT_ALLOWED = ProblemType(
    "method_not_allowed",
    405,
    "Method not allowed",
    "The path exists but not with this method; the `Allow` header lists the methods.",
)
LENGTH_REQUIRED = ProblemType(
    "length_required",
    411,
    "Length required",
    "A request body must be sent with `Content-Length` (chunked bodies are not accepted).",
)
PAYLOAD_TOO_LARGE = ProblemType(
    "payload_too_large", 413, "Body too large", "The body exceeds the maximum size."
)
TOO_MANY_ITEMS = ProblemType(
    "too_many_items", 413, "Too many readings", "The array holds more readings than allowed."
)
UNSUPPORTED_MEDIA_TYPE = ProblemType(
    "unsupported_media_type",
    415,
    "Unsupported media type",
    "Send readings as `application/json` (or with no `Content-Type`).",
)
INTERNAL_ERROR = ProblemType(
    "internal_error", 500, "Internal error", "An unexpected failure; it has been logged."
)
INGEST_UNAVAILABLE = ProblemType(
    "ingest_unavailable",
    503,
    "Stream unavailable",
    "The stream refused the readings after its retries; resend them after `Retry-After`.",
)
STORE_UNAVAILABLE = ProblemType(
    "store_unavailable",
    503,
    "Store unavailable",
    "The aggregate store could not answer; retry after `Retry-After`.",
)
PROTOCOL_ERROR = ProblemType(
    "protocol_error",
    400,
    "Bad HTTP request",
    "The server could not read the request as HTTP (the status tells more).",
)

#: Every problem type the API and its local server may return.
CATALOGUE: tuple[ProblemType, ...] = (
    MALFORMED_JSON,
    INVALID_READINGS,
    NO_READINGS,
    INVALID_PARAMETER,
    INVALID_RANGE,
    RANGE_TOO_LARGE,
    INVALID_CURSOR,
    UNAUTHORIZED,
    NOT_FOUND,
    UNKNOWN_DEVICE,
    METHOD_NOT_ALLOWED,
    LENGTH_REQUIRED,
    PAYLOAD_TOO_LARGE,
    TOO_MANY_ITEMS,
    UNSUPPORTED_MEDIA_TYPE,
    INTERNAL_ERROR,
    INGEST_UNAVAILABLE,
    STORE_UNAVAILABLE,
    PROTOCOL_ERROR,
)

#: Seconds a client should wait before retrying after a 503.
RETRY_AFTER_S = 1


class ApiProblem(Exception):
    """Raised by handlers to answer with a problem document instead of their normal reply."""

    def __init__(
        self,
        kind: ProblemType,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(f"{kind.code}: {detail}")
        self.kind = kind
        self.detail = detail
        self.headers = dict(headers or {})
        self.extensions = extensions

    def response(self) -> HttpResponse:
        """The problem as an HTTP response."""
        return problem_response(
            self.kind, self.detail, headers=self.headers, extensions=self.extensions
        )


def problem_response(
    kind: ProblemType,
    detail: str,
    *,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> HttpResponse:
    """A problem document response; ``status`` overrides the type's (protocol errors only)."""
    code = status or kind.status
    body = {
        "type": kind.uri,
        "title": kind.title,
        "status": code,
        "detail": detail,
        "code": kind.code,
        **(extensions or {}),
    }
    extra = dict(headers or {})
    if code == 503:
        extra.setdefault("retry-after", str(RETRY_AFTER_S))
    return json_response(code, body, content_type=PROBLEM_JSON, headers=extra)
