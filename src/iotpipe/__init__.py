"""iotpipe: serverless, real-time IoT pipelines with exact, delivery-independent aggregates.

The embedding API::

    from iotpipe import in_memory_pipeline, LatenessPolicy

    pipeline = in_memory_pipeline(lateness=LatenessPolicy.backfill())
    pipeline.ingest([{"device_id": "d1", "timestamp": "2025-08-31T10:00:00Z", "temperature": 25.5}])
    for report in pipeline.drain():
        print(report.accepted, report.duplicates, report.rejected)
    page = pipeline.query.hourly("d1", start_ms, end_ms, limit=24)
"""

from typing import TYPE_CHECKING

from iotpipe._exports import lazy_exports

if TYPE_CHECKING:
    from iotpipe.application import (
        IngestResult,
        Pipeline,
        ProcessReport,
        QueryService,
    )
    from iotpipe.application.views import daily_json, reading_json, stats_json, window_json
    from iotpipe.bootstrap import in_memory_pipeline
    from iotpipe.domain import (
        METRICS,
        DailyRollup,
        HourlyWindow,
        InvalidReading,
        IotPipeError,
        LatenessPolicy,
        Location,
        Moments,
        Reading,
        Reason,
        Stats,
        parse_reading,
    )
    from iotpipe.ports import RawBatch, RawRecord

__version__ = "0.1.0"

__all__ = [
    "METRICS",
    "DailyRollup",
    "HourlyWindow",
    "IngestResult",
    "InvalidReading",
    "IotPipeError",
    "LatenessPolicy",
    "Location",
    "Moments",
    "Pipeline",
    "ProcessReport",
    "QueryService",
    "RawBatch",
    "RawRecord",
    "Reading",
    "Reason",
    "Stats",
    "__version__",
    "daily_json",
    "in_memory_pipeline",
    "parse_reading",
    "reading_json",
    "stats_json",
    "window_json",
]

if not TYPE_CHECKING:  # type checkers read the imports above instead
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "IngestResult": "iotpipe.application",
            "Pipeline": "iotpipe.application",
            "ProcessReport": "iotpipe.application",
            "QueryService": "iotpipe.application",
            "daily_json": "iotpipe.application.views",
            "reading_json": "iotpipe.application.views",
            "stats_json": "iotpipe.application.views",
            "window_json": "iotpipe.application.views",
            "in_memory_pipeline": "iotpipe.bootstrap",
            "METRICS": "iotpipe.domain",
            "DailyRollup": "iotpipe.domain",
            "HourlyWindow": "iotpipe.domain",
            "InvalidReading": "iotpipe.domain",
            "IotPipeError": "iotpipe.domain",
            "LatenessPolicy": "iotpipe.domain",
            "Location": "iotpipe.domain",
            "Moments": "iotpipe.domain",
            "Reading": "iotpipe.domain",
            "Reason": "iotpipe.domain",
            "Stats": "iotpipe.domain",
            "parse_reading": "iotpipe.domain",
            "RawBatch": "iotpipe.ports",
            "RawRecord": "iotpipe.ports",
        },
    )
