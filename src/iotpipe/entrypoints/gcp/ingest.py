"""The ingest function (HTTP): the shared API's ``POST /v1/readings`` -> validated readings ->
Pub/Sub. It may publish to the topic, never read the store."""

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

FUNCTION = "ingest"


@functools.cache
def analytics_api() -> AnalyticsApi:
    """The ingest-only API over the Pub/Sub stream (built on the first request)."""
    from iotpipe.adapters.clock import SystemClock
    from iotpipe.adapters.gcp.pubsub import PubSubStream
    from iotpipe.application import IngestService

    obs.configure_logging()
    config = settings()
    stream = PubSubStream(config.topic_path(), clients.publisher())
    ingest = IngestService(stream, SystemClock(), config.lateness)
    return AnalyticsApi(None, ingest, ApiKeys(config.api_keys))


def handle(request: flask.Request) -> flask.Response:
    """Answer one HTTP request (the function's logic; ``main.ingest`` registers it)."""
    return serve(FUNCTION, analytics_api(), request, settings().project)
