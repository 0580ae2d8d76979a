"""The Cloud Functions entry module: ``main.py`` at the top of the source archive.

Each function is deployed from the same archive with its own entry point: ``ingest`` and ``api``
(HTTP) and ``process`` (CloudEvent, triggered by the readings topic). The decorators only
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


@functions_framework.cloud_event
def process(event: Any) -> None:
    """One Pub/Sub message -> Firestore and Cloud Storage; raises to be redelivered."""
    _process.handle(event)


@functions_framework.http
def api(request: Any) -> Any:
    """The query routes over Firestore."""
    return _api.handle(request)
