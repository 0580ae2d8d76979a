"""The composition root of the runtimes in this process: the in-process pipeline (memory
adapters), the local runtime (a durable log, an SQLite store and an archive directory) and the
CLI's batch run. The clouds have theirs: :mod:`iotpipe.entrypoints.aws.bootstrap` and
:mod:`iotpipe.entrypoints.gcp.bootstrap`.

Nothing is built at import time; each call builds a fresh pipeline. Each takes the telemetry
schema its readings follow (the default payload unless one is given) and settles it against
the store's schema record first (:func:`~iotpipe.application.use_schema`): a schema that would
break the store's exact sums is refused with :class:`~iotpipe.domain.SchemaConflict`.
"""

from __future__ import annotations

from pathlib import Path

from iotpipe.adapters.clock import SystemClock
from iotpipe.adapters.local import FileArchive, FileQuarantine, SqliteLog, SqliteStore
from iotpipe.adapters.memory import MemoryArchive, MemoryQuarantine, MemoryStore, MemoryStream
from iotpipe.application import Pipeline, use_schema
from iotpipe.domain import DEFAULT_SCHEMA, LatenessPolicy, TelemetrySchema
from iotpipe.ports import AggregateStore, Clock, Quarantine, ReadingStream

#: The durable log's file in a local runtime's data directory.
LOG_FILE = "log.db"


def in_memory_pipeline(
    *,
    clock: Clock | None = None,
    lateness: LatenessPolicy | None = None,
    store: AggregateStore | None = None,
    archive: bool = True,
    schema: TelemetrySchema = DEFAULT_SCHEMA,
) -> Pipeline:
    """A complete pipeline in this process: memory stream, store, archive and quarantine.

    ``store`` swaps in another store (e.g. a persistent one); ``archive=False`` keeps no raw
    copy (for long batch runs whose input file is the archive).
    """
    clock = clock or SystemClock()
    store = store or MemoryStore()
    return Pipeline(
        store=store,
        clock=clock,
        stream=MemoryStream(clock),
        archive=MemoryArchive() if archive else None,
        quarantine=MemoryQuarantine(),
        lateness=lateness,
        schema=use_schema(store, schema),
    )


def local_pipeline(
    data_dir: Path,
    *,
    clock: Clock | None = None,
    lateness: LatenessPolicy | None = None,
    stream: ReadingStream | None = None,
    schema: TelemetrySchema = DEFAULT_SCHEMA,
) -> Pipeline:
    """A pipeline whose results persist in ``data_dir`` (created if missing).

    The store is ``data_dir/iotpipe.db`` (SQLite); raw batches and rejections are kept under
    ``data_dir/archive`` (``raw/`` and ``rejected/``). Several processes may open pipelines on
    the same directory. The stream is the durable log ``data_dir/log.db`` unless ``stream``
    is given (the local runtime passes one with its own bounds).
    """
    clock = clock or SystemClock()
    data_dir.mkdir(parents=True, exist_ok=True)
    archive_dir = data_dir / "archive"
    store = SqliteStore(data_dir / "iotpipe.db")
    return Pipeline(
        store=store,
        clock=clock,
        stream=stream or SqliteLog(data_dir / LOG_FILE, clock=clock),
        archive=FileArchive(archive_dir),
        quarantine=FileQuarantine(archive_dir),
        lateness=lateness,
        schema=use_schema(store, schema),
    )


def batch_pipeline(
    store: AggregateStore,
    *,
    quarantine: Quarantine | None = None,
    schema: TelemetrySchema = DEFAULT_SCHEMA,
) -> Pipeline:
    """The pipeline of a batch run over a file (``iotpipe process``): no stream and no archive
    (the input file is the archive), and any event time counts (a backfill)."""
    return Pipeline(
        store=store,
        clock=SystemClock(),
        quarantine=quarantine,
        lateness=LatenessPolicy.backfill(),
        schema=use_schema(store, schema),
    )
