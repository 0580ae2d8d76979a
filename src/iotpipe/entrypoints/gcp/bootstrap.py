"""The Google Cloud runtime's composition root: each function's use case, wired to its adapters.

One function per Cloud Function, named as on every runtime (:mod:`iotpipe.bootstrap` for the
in-process and local runtimes, :mod:`iotpipe.entrypoints.aws.bootstrap` for AWS):
:func:`process_service`, :func:`ingest_api`, :func:`query_api`. Each is built on the first
request or event and kept for the life of the instance; nothing is built at import, and each
imports only what its function needs. Settings are read once per instance
(:func:`~iotpipe.entrypoints.gcp.clients.settings`).
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

from iotpipe.entrypoints.gcp import clients
from iotpipe.entrypoints.gcp import observability as obs
from iotpipe.entrypoints.gcp.clients import settings

if TYPE_CHECKING:
    from iotpipe.application import ProcessService
    from iotpipe.entrypoints.http.api import AnalyticsApi


@functools.cache
def process_service() -> ProcessService:
    """The process use case over Firestore and Cloud Storage (built on the first event)."""
    from iotpipe.adapters.clock import SystemClock
    from iotpipe.adapters.gcp.firestore import FirestoreStore
    from iotpipe.adapters.gcp.gcs import GcsArchive, GcsQuarantine
    from iotpipe.application import ProcessService, use_schema
    from iotpipe.entrypoints.deployed_schema import deployed_schema

    obs.configure_logging()
    config = settings()
    store = FirestoreStore(
        clients.firestore_for(config),
        prefix=config.firestore_prefix,
        ttl_days=config.ttl_days,
        fleet_lanes=config.fleet_lanes,
    )
    schema = use_schema(store, deployed_schema(os.environ))  # refuses an unsafe schema
    storage, bucket = clients.storage(config.project), config.need_bucket()
    return ProcessService(
        store,
        SystemClock(),
        GcsArchive(bucket, storage),
        GcsQuarantine(bucket, storage),
        config.lateness,
        schema,
    )


@functools.cache
def ingest_api() -> AnalyticsApi:
    """The ingest-only API over the Pub/Sub stream (built on the first request): it may
    publish to the topic, never read the store."""
    from iotpipe.adapters.clock import SystemClock
    from iotpipe.adapters.gcp.pubsub import PubSubStream
    from iotpipe.application import IngestService
    from iotpipe.entrypoints.deployed_schema import deployed_schema
    from iotpipe.entrypoints.http.api import AnalyticsApi
    from iotpipe.entrypoints.http.auth import ApiKeys

    obs.configure_logging()
    config = settings()
    schema = deployed_schema(os.environ)
    stream = PubSubStream(config.topic_path(), clients.publisher())
    ingest = IngestService(stream, SystemClock(), config.lateness, schema)
    return AnalyticsApi(None, ingest, ApiKeys(config.api_keys), schema=schema)


@functools.cache
def query_api() -> AnalyticsApi:
    """The read-only API over the Firestore store (built on the first request)."""
    from iotpipe.adapters.gcp.firestore import FirestoreStore
    from iotpipe.application import QueryService, use_schema
    from iotpipe.entrypoints.deployed_schema import deployed_schema
    from iotpipe.entrypoints.http.api import AnalyticsApi
    from iotpipe.entrypoints.http.auth import ApiKeys

    obs.configure_logging()
    config = settings()
    # The fleet route's total: the lanes if the process function keeps them, else the walk.
    store = FirestoreStore(
        clients.firestore_for(config),
        prefix=config.firestore_prefix,
        fleet_lanes=config.fleet_lanes,
    )
    # Read-only: checks the schema against the store's record, never writes it.
    schema = use_schema(store, deployed_schema(os.environ), write=False)
    return AnalyticsApi(QueryService(store), None, ApiKeys(config.api_keys), schema=schema)
