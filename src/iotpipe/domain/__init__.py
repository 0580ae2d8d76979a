"""The pure core of iotpipe: readings, hourly windows and exact, mergeable aggregates.

No I/O, no clock, no environment, no cloud SDK: everything here is a value or a function of
values, which is what lets the same core run unchanged on every runtime.
"""

from iotpipe.domain.aggregate import Located, MetricSummary, Moments, Stats, merge_all
from iotpipe.domain.columns import ReadingColumns
from iotpipe.domain.decoding import DecodedRecords, decode_readings, decode_records
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
from iotpipe.domain.lateness import LatenessPolicy
from iotpipe.domain.metrics import METRIC_NAMES, METRICS, SCALE, Metric
from iotpipe.domain.reading import Location, Reading, parse_reading
from iotpipe.domain.rollup import DailyRollup, daily, fleet
from iotpipe.domain.window import (
    MAX_READINGS_PER_WINDOW,
    Absorption,
    HourlyWindow,
    IdentitySet,
    absorb_all,
)


def __getattr__(name: str) -> object:
    # ReadingPayload pulls in pydantic: load it only when someone asks for it.
    if name == "ReadingPayload":
        from iotpipe.domain.schema import ReadingPayload

        return ReadingPayload
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MAX_READINGS_PER_WINDOW",
    "METRICS",
    "METRIC_NAMES",
    "SCALE",
    "Absorption",
    "ArchiveUnavailable",
    "DailyRollup",
    "DecodedRecords",
    "HourlyWindow",
    "IdentitySet",
    "InvalidReading",
    "IotPipeError",
    "LatenessPolicy",
    "Located",
    "Location",
    "Metric",
    "MetricSummary",
    "Moments",
    "Reading",
    "ReadingColumns",
    "ReadingPayload",
    "Reason",
    "Stats",
    "StoreUnavailable",
    "StreamFull",
    "StreamUnavailable",
    "WindowConflict",
    "absorb_all",
    "daily",
    "decode_readings",
    "decode_records",
    "fleet",
    "merge_all",
    "parse_reading",
]
