"""The Google Cloud runtime's composition root: each function's use case, wired to its adapters.

One function per use case, named as on every runtime (:mod:`iotpipe.bootstrap` for the
in-process and local runtimes, :mod:`iotpipe.entrypoints.aws.bootstrap` for AWS):
:func:`process_service`, :func:`ingest_api`, :func:`query_api`. Each is built on the first
request or event and kept for the life of the instance; nothing is built at import, and each
imports only what its function needs. Settings are read once per instance
(:func:`~iotpipe.entrypoints.gcp.clients.settings`).
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, NamedTuple

from iotpipe.entrypoints.gcp import clients
from iotpipe.entrypoints.gcp import observability as obs
from iotpipe.entrypoints.gcp.clients import settings

if TYPE_CHECKING:
    from iotpipe.adapters.clock import SystemClock
    from iotpipe.adapters.gcp.firestore import FirestoreStore
    from iotpipe.adapters.gcp.gcs import GcsArchive, GcsQuarantine
    from iotpipe.application import ProcessService, StreamFileService
    from iotpipe.domain import LatenessPolicy, TelemetrySchema
    from iotpipe.entrypoints.http.api import AnalyticsApi


@functools.cache
def process_service() -> ProcessService:
    """The process use case over Firestore and Cloud Storage (built on the first message):
    each readings message is archived as an object of its own, then processed."""
    from iotpipe.application import ProcessService

    parts = _process_parts()
    return ProcessService(
        parts.store,
        parts.clock,
        parts.archive,
        parts.quarantine,
        parts.lateness,
        parts.schema,
    )


@functools.cache
def stream_file_service() -> StreamFileService:
    """The process use case for the archive's stream files (built on the first
    notification): the same store, quarantine and schema, and no archive to write, since the
    file is the archive."""
    from iotpipe.application import ProcessService, StreamFileService

    parts = _process_parts()
    chunks = ProcessService(
        parts.store, parts.clock, None, parts.quarantine, parts.lateness, parts.schema
    )
    return StreamFileService(parts.archive, chunks)


@functools.cache
def _process_parts() -> _ProcessParts:
    """The adapters both kinds of processing share, built once per instance."""
    from iotpipe.adapters.clock import SystemClock
    from iotpipe.adapters.gcp.firestore import FirestoreStore, commit_bytes_for
    from iotpipe.adapters.gcp.gcs import GcsArchive, GcsQuarantine
    from iotpipe.application import use_schema
    from iotpipe.entrypoints.deployed_schema import deployed_schema

    obs.configure_logging()
    config = settings()
    store = FirestoreStore(
        clients.firestore_for(config),
        prefix=config.firestore_prefix,
        ttl_days=config.ttl_days,
        fleet_lanes=config.fleet_lanes,
        commit_bytes=commit_bytes_for(os.environ),
    )
    schema = use_schema(store, deployed_schema(os.environ))  # refuses an unsafe schema
    storage, bucket = clients.storage(config.project), config.need_bucket()
    return _ProcessParts(
        store,
        SystemClock(),
        GcsArchive(bucket, storage),
        GcsQuarantine(bucket, storage),
        config.lateness,
        schema,
    )


class _ProcessParts(NamedTuple):
    store: FirestoreStore
    clock: SystemClock
    archive: GcsArchive
    quarantine: GcsQuarantine
    lateness: LatenessPolicy
    schema: TelemetrySchema


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
    stream = PubSubStream(config.topic_path(), clients.publisher(), compress=config.compress_stream)
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


def forget() -> None:
    """Drop every composition root built so far (tests point the functions at fresh
    emulators; :func:`~iotpipe.entrypoints.gcp.clients.forget` drops the clients)."""
    for root in (process_service, stream_file_service, _process_parts, ingest_api, query_api):
        root.cache_clear()
