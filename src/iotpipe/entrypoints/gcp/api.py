"""The api function (HTTP): the shared API's query routes over Firestore (read-only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from iotpipe.entrypoints.gcp import bootstrap
from iotpipe.entrypoints.gcp.clients import settings
from iotpipe.entrypoints.gcp.flask_http import serve

if TYPE_CHECKING:
    import flask

FUNCTION = "api"


def handle(request: flask.Request) -> flask.Response:
    """Answer one HTTP request (the function's logic; ``main.api`` registers it)."""
    return serve(FUNCTION, bootstrap.query_api(), request, settings().project)
