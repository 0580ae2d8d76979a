"""Throttling injected below botocore: a werkzeug front door to moto answering chosen requests
with DynamoDB's ``ProvisionedThroughputExceededException``.

boto3 clients pointed at :attr:`ThrottlingFront.endpoint` send real HTTP requests; the front
answers the ones its predicate picks with the exact response DynamoDB sends when it throttles
(HTTP 400, a JSON error body with ``__type``, ``x-amzn-RequestId`` and ``x-amz-crc32``
headers), and passes everything else to moto's own WSGI application (the same in-process
backends as the session's moto server, so tables made through either are seen by both). So
botocore's retry mode really runs: it classifies the error, backs off and retries, and only
then does the adapter see a ``ClientError``.
"""

from __future__ import annotations

import binascii
import io
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

Predicate = Callable[[str, dict[str, Any]], bool]
"""``(operation, JSON request body) -> throttle it?`` (DynamoDB operations only)."""

_THROTTLED = {
    "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
    "message": "The level of configured provisioned throughput for the table was exceeded. "
    "Consider increasing your provisioning level with the UpdateTable API.",
}


class LambdaContext:
    """The part of Lambda's context the process handler reads: the time left."""

    aws_request_id = "throttling-test"

    def __init__(self, seconds: float) -> None:
        self._ends = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until the invocation would be stopped."""
        return max(0, int((self._ends - time.monotonic()) * 1000))


class ThrottlingFront:
    """A WSGI server in a thread: moto behind, DynamoDB throttling in front."""

    def __init__(self, predicate: Predicate) -> None:
        self.predicate = predicate
        self.enabled = True
        self.throttled: Counter[str] = Counter()
        self.passed: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._moto = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(
            "127.0.0.1", 0, self._app, threaded=True, request_handler=MotoRequestHandler
        )
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Shut the front down (moto's backends stay, shared with the session's server)."""
        self._server.shutdown()
        self._thread.join(timeout=10)

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        operation = target.partition(".")[2] if target.startswith("DynamoDB_") else ""
        if operation and self.enabled:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
            if self.predicate(operation, json.loads(body or b"{}")):
                with self._lock:
                    self.throttled[operation] += 1
                return _throttled(start_response)
        with self._lock:
            self.passed[operation or "other"] += 1
        return self._moto(environ, start_response)  # type: ignore[no-any-return]


def _throttled(start_response: Any) -> list[bytes]:
    body = json.dumps(_THROTTLED).encode()
    start_response(
        "400 Bad Request",
        [
            ("Content-Type", "application/x-amz-json-1.0"),
            ("Content-Length", str(len(body))),
            ("x-amzn-RequestId", uuid.uuid4().hex.upper()),
            ("x-amz-crc32", str(binascii.crc32(body) & 0xFFFFFFFF)),
        ],
    )
    return [body]
