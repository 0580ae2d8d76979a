"""The use cases (ingest, process, query, replay) wired to ports; no adapter is named here."""

from typing import TYPE_CHECKING

from iotpipe._exports import lazy_exports

if TYPE_CHECKING:
    from iotpipe.application.archive_replay import ReplayReport, replay
    from iotpipe.application.ingest import IngestResult, IngestService, ItemRejection
    from iotpipe.application.pipeline import Pipeline
    from iotpipe.application.process import ProcessReport, ProcessService
    from iotpipe.application.query import FleetHour, QueryService
    from iotpipe.application.schema_check import settle_schema, use_schema
    from iotpipe.application.stream_files import FileReport, StreamFileService
    from iotpipe.application.worker import StreamWorker

__all__ = [
    "FileReport",
    "FleetHour",
    "IngestResult",
    "IngestService",
    "ItemRejection",
    "Pipeline",
    "ProcessReport",
    "ProcessService",
    "QueryService",
    "ReplayReport",
    "StreamFileService",
    "StreamWorker",
    "replay",
    "settle_schema",
    "use_schema",
]

if not TYPE_CHECKING:  # type checkers read the imports above instead
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "IngestResult": "iotpipe.application.ingest",
            "IngestService": "iotpipe.application.ingest",
            "ItemRejection": "iotpipe.application.ingest",
            "Pipeline": "iotpipe.application.pipeline",
            "ProcessReport": "iotpipe.application.process",
            "ProcessService": "iotpipe.application.process",
            "FleetHour": "iotpipe.application.query",
            "QueryService": "iotpipe.application.query",
            "ReplayReport": "iotpipe.application.archive_replay",
            "replay": "iotpipe.application.archive_replay",
            "StreamWorker": "iotpipe.application.worker",
            "FileReport": "iotpipe.application.stream_files",
            "StreamFileService": "iotpipe.application.stream_files",
            "settle_schema": "iotpipe.application.schema_check",
            "use_schema": "iotpipe.application.schema_check",
        },
    )
