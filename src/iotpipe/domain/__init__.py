"""The pure core of iotpipe: readings, hourly windows and exact, mergeable aggregates.

No I/O, no clock, no environment, no cloud SDK: everything here is a value or a function of
values, which is what lets the same core run unchanged on every runtime. Read it in this order:
:mod:`~iotpipe.domain.reading`, :mod:`~iotpipe.domain.aggregate`,
:mod:`~iotpipe.domain.identity`, :mod:`~iotpipe.domain.window`. The fast path that computes the
same for whole batches is :mod:`iotpipe.domain.kernels`.
"""

from typing import TYPE_CHECKING

from iotpipe._exports import lazy_exports
from iotpipe.domain.aggregate import Located, MetricSummary, Moments, Stats, merge_all
from iotpipe.domain.errors import (
    ArchiveUnavailable,
    InvalidReading,
    IotPipeError,
    Reason,
    StoreUnavailable,
    StreamFull,
    StreamUnavailable,
    WindowConflict,
)
from iotpipe.domain.identity import IdentitySet
from iotpipe.domain.lateness import LatenessPolicy
from iotpipe.domain.metrics import METRIC_NAMES, METRICS, SCALE, InvalidSchema, Metric
from iotpipe.domain.parsing import parse_reading
from iotpipe.domain.reading import Location, Reading
from iotpipe.domain.rollup import DailyRollup, FleetTotal, daily, fleet, growth
from iotpipe.domain.telemetry import DEFAULT_SCHEMA, LocationPaths, SchemaConflict, TelemetrySchema
from iotpipe.domain.window import MAX_READINGS_PER_WINDOW, Absorption, HourlyWindow

__all__ = [
    "DEFAULT_SCHEMA",
    "MAX_READINGS_PER_WINDOW",
    "METRICS",
    "METRIC_NAMES",
    "SCALE",
    "Absorption",
    "ArchiveUnavailable",
    "DailyRollup",
    "FleetTotal",
    "HourlyWindow",
    "IdentitySet",
    "InvalidReading",
    "InvalidSchema",
    "IotPipeError",
    "LatenessPolicy",
    "Located",
    "Location",
    "LocationPaths",
    "Metric",
    "MetricSummary",
    "Moments",
    "Reading",
    "ReadingPayload",
    "Reason",
    "SchemaConflict",
    "SchemaRecord",
    "Stats",
    "StoreUnavailable",
    "StreamFull",
    "StreamUnavailable",
    "TelemetrySchema",
    "WindowConflict",
    "daily",
    "fleet",
    "growth",
    "merge_all",
    "parse_reading",
    "reconcile",
]

if TYPE_CHECKING:  # type checkers read the imports instead
    from iotpipe.domain.evolution import SchemaRecord, reconcile
    from iotpipe.domain.schema import ReadingPayload
else:
    # ReadingPayload pulls in pydantic: loaded only when someone asks for it. The moved names
    # are the fast path's, now in iotpipe.domain.kernels.
    _KERNELS = "iotpipe.domain.kernels"
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "ReadingPayload": "iotpipe.domain.schema",
            # Only start-ups that check a store's schema record need these.
            "SchemaRecord": "iotpipe.domain.evolution",
            "reconcile": "iotpipe.domain.evolution",
        },
        moved={
            name: _KERNELS
            for name in (
                "DecodedRecords",
                "ReadingColumns",
                "absorb_all",
                "decode_readings",
                "decode_records",
            )
        },
    )
