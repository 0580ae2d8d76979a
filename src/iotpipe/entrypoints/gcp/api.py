"""The api function (HTTP): the shared API's query routes over Firestore (read-only)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from iotpipe.entrypoints.gcp import clients
from iotpipe.entrypoints.gcp import observability as obs
from iotpipe.entrypoints.gcp.clients import settings
from iotpipe.entrypoints.gcp.flask_http import serve
from iotpipe.entrypoints.http.api import AnalyticsApi
from iotpipe.entrypoints.http.auth import ApiKeys

if TYPE_CHECKING:
    import flask

FUNCTION = "api"


@functools.cache
def analytics_api() -> AnalyticsApi:
    """The read-only API over the Firestore store (built on the first request)."""
    from iotpipe.adapters.gcp.firestore import FirestoreStore
    from iotpipe.application import QueryService

    obs.configure_logging()
    config = settings()
    store = FirestoreStore(clients.firestore_for(config), prefix=config.firestore_prefix)
    return AnalyticsApi(QueryService(store), None, ApiKeys(config.api_keys))


def handle(request: flask.Request) -> flask.Response:
    """Answer one HTTP request (the function's logic; ``main.api`` registers it)."""
    return serve(FUNCTION, analytics_api(), request, settings().project)
