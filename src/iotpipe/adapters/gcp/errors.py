"""Which Google Cloud client errors are worth retrying, and how to name them in a log line.

The Google clients raise :mod:`google.api_core.exceptions` (gRPC status codes and HTTP statuses
mapped to one hierarchy). Transient, so worth a retry later: ``UNAVAILABLE``,
``DEADLINE_EXCEEDED``, ``INTERNAL``, ``RESOURCE_EXHAUSTED`` (quota, throttling), ``ABORTED``
(contention), ``UNKNOWN`` (typically a dropped connection) and every HTTP 5xx or 429; a
client-side retry loop that gave up (:class:`RetryError`) and a failure to reach the metadata
server for credentials (:class:`google.auth.exceptions.TransportError`) too. Everything else
(``PERMISSION_DENIED``, ``NOT_FOUND`` for a database or topic, ``INVALID_ARGUMENT``, a missing
index) is a deployment error or a bug that retrying cannot fix.
"""

from __future__ import annotations

from google.api_core import exceptions as api
from google.auth import exceptions as auth

#: Every error the Google clients raise for a failed call (what adapters catch and translate).
GOOGLE_ERRORS: tuple[type[BaseException], ...] = (
    api.GoogleAPIError,
    auth.TransportError,
)

_TRANSIENT: tuple[type[BaseException], ...] = (
    api.ServiceUnavailable,
    api.DeadlineExceeded,
    api.InternalServerError,
    api.ResourceExhausted,
    api.TooManyRequests,
    api.Aborted,
    api.Unknown,
    api.RetryError,
    auth.TransportError,
)

__all__ = ["GOOGLE_ERRORS", "describe", "is_transient"]


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the call later may succeed (see the module docstring)."""
    if isinstance(exc, _TRANSIENT):
        return True
    code = getattr(exc, "code", None)
    return isinstance(exc, api.GoogleAPICallError) and isinstance(code, int) and code >= 500


def describe(exc: BaseException) -> str:
    """A short, log-friendly description: ``ClassName: message`` (first line only)."""
    message = getattr(exc, "message", None) or str(exc)
    first = str(message).strip().splitlines()[0] if str(message).strip() else ""
    return f"{type(exc).__name__}: {first[:300]}" if first else type(exc).__name__
