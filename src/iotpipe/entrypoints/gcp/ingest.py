"""The ingest function (HTTP): the shared API's ``POST /v1/readings`` -> validated readings ->
Pub/Sub. It may publish to the topic, never read the store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from iotpipe.entrypoints.gcp import bootstrap
from iotpipe.entrypoints.gcp.clients import settings
from iotpipe.entrypoints.gcp.flask_http import serve

if TYPE_CHECKING:
    import flask

FUNCTION = "ingest"


def handle(request: flask.Request) -> flask.Response:
    """Answer one HTTP request (the function's logic; ``main.ingest`` registers it)."""
    return serve(FUNCTION, bootstrap.ingest_api(), request, settings().project)
