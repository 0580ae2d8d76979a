"""The Cloud Functions entry module: ``main.py`` at the top of the source archive.

Each function is deployed from the same archive with its own entry point: ``ingest``, ``api``
and ``process``, all HTTP (``process`` is the target of the readings topic's push subscription
and reads the push request itself: see :mod:`iotpipe.entrypoints.gcp.process`). The decorators only
register each function's signature type with functions-framework; the logic lives in
:mod:`iotpipe.entrypoints.gcp` and nothing is built at import: clients and services are made on
the first request and kept for the life of the instance. Locally::

    functions-framework --source=src/iotpipe/entrypoints/gcp/main.py --target=ingest --port=8080
"""

from __future__ import annotations

from typing import Any

import functions_framework

from iotpipe.entrypoints.gcp import api as _api
from iotpipe.entrypoints.gcp import ingest as _ingest
from iotpipe.entrypoints.gcp import process as _process


@functions_framework.http
def ingest(request: Any) -> Any:
    """``POST /v1/readings`` -> Pub/Sub."""
    return _ingest.handle(request)


@functions_framework.http
def process(request: Any) -> Any:
    """One pushed Pub/Sub message -> Firestore and Cloud Storage; 500 to be redelivered."""
    return _process.handle_request(request)


@functions_framework.http
def api(request: Any) -> Any:
    """The query routes over Firestore."""
    return _api.handle(request)
