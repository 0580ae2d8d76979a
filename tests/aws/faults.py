"""Fault injection around REAL boto3 clients (pointed at the moto server).

:class:`Intercepted` forwards every call to the real client, counting them, and lets a test
replace chosen operations with a function that receives the real operation: to fail the first
call, to mark some records failed after sending the others for real, and so on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

Operation = Callable[..., dict[str, Any]]


class Intercepted:
    """A real client with some operations intercepted; ``calls`` counts every operation."""

    def __init__(self, client: Any, **overrides: Callable[..., dict[str, Any]]) -> None:
        self._client = client
        self._overrides = overrides
        self.calls: Counter[str] = Counter()
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._client, name)
        if not callable(real):
            return real
        override = self._overrides.get(name)

        def call(**kwargs: Any) -> Any:
            self.calls[name] += 1
            self.requests.append((name, kwargs))
            if override is not None:
                return override(real, **kwargs)
            return real(**kwargs)

        return call


def client_error(code: str, operation: str, status: int = 400, message: str = "") -> ClientError:
    """The error botocore raises for a service error response."""
    response = {
        "Error": {"Code": code, "Message": message or code},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)


def fail_first(times: int, error: BaseException) -> Operation:
    """An override raising ``error`` on the first ``times`` calls, then calling through."""
    state = {"left": times}

    def operation(real: Operation, **kwargs: Any) -> dict[str, Any]:
        if state["left"] > 0:
            state["left"] -= 1
            raise error
        return real(**kwargs)

    return operation
