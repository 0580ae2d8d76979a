"""Which botocore errors are worth retrying, shared by the AWS adapters.

A failure is *transient* when the same request may well succeed later: throttling, a 5xx from
the service, or the network (connection refused or reset, timeouts). Anything else (a missing
table or stream, access denied, a malformed request) will fail again however often it is sent.
The clients' own retries (botocore's retry mode) run first; these rules decide what the
adapters do once the client has given up.
"""

from __future__ import annotations

from typing import Any

# botocore ships no type information (pyproject.toml lets mypy take it as Any); the adapters
# import its exceptions from here, and take clients as Any.
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from iotpipe.domain import StoreUnavailable

#: What a boto3 call raises: a service error response, or a failure inside botocore.
AWS_ERRORS = (ClientError, BotoCoreError)

#: Error codes AWS services use for "slow down" or "try again" (DynamoDB, Kinesis, S3).
THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "LimitExceededException",
        "KMSThrottlingException",
        "TransactionInProgressException",
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


__all__ = ["AWS_ERRORS", "ClientError", "call_table", "describe", "error_code", "is_transient"]


def error_code(exc: BaseException) -> str:
    """The service's error code of a :class:`ClientError`, else the exception's class name."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the request later may succeed (see the module docstring)."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(exc) in THROTTLING_CODES or int(status or 0) >= 500
    return isinstance(exc, BotoConnectionError | HTTPClientError)


def describe(exc: BaseException) -> str:
    """A short, log-friendly description: ``Code: message``."""
    if isinstance(exc, ClientError):
        message = exc.response.get("Error", {}).get("Message", "")
        return f"{error_code(exc)}: {message}" if message else error_code(exc)
    return f"{type(exc).__name__}: {exc}"


def call_table(client: Any, table: str, operation: str, **params: Any) -> dict[str, Any]:
    """One DynamoDB client call about ``table``: a transient failure becomes
    :class:`StoreUnavailable` (the store is down for now); the rest, a failed condition
    included, propagate as they are, for the caller to read."""
    try:
        response: dict[str, Any] = getattr(client, operation)(**params)
    except AWS_ERRORS as exc:
        if is_transient(exc):
            raise StoreUnavailable(f"dynamodb {table} {operation}: {describe(exc)}") from exc
        raise
    return response
