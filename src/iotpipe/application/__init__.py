"""The use cases (ingest, process, query, replay) wired to ports; no adapter is named here."""

from iotpipe.application.ingest import IngestResult, IngestService, ItemRejection
from iotpipe.application.pipeline import Pipeline
from iotpipe.application.process import ProcessReport, ProcessService
from iotpipe.application.query import FleetHour, QueryService
from iotpipe.application.replay import ReplayReport, replay
from iotpipe.application.worker import StreamWorker

__all__ = [
    "FleetHour",
    "IngestResult",
    "IngestService",
    "ItemRejection",
    "Pipeline",
    "ProcessReport",
    "ProcessService",
    "QueryService",
    "ReplayReport",
    "StreamWorker",
    "replay",
]
