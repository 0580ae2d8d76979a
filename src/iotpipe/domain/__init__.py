"""The pure core of iotpipe: readings, hourly windows and exact, mergeable aggregates.

No I/O, no clock, no environment, no cloud SDK: everything here is a value or a function of
values, which is what lets the same core run unchanged on every runtime. Read it in this order:
:mod:`~iotpipe.domain.reading`, :mod:`~iotpipe.domain.aggregate`,
:mod:`~iotpipe.domain.identity`, :mod:`~iotpipe.domain.window`. The fast path that computes the
same for whole batches is :mod:`iotpipe.domain.kernels`.
"""

import warnings

from iotpipe.domain.aggregate import Located, MetricSummary, Moments, Stats, merge_all
from iotpipe.domain.errors import (
    ArchiveUnavailable,
    InvalidReading,
    IotPipeError,
    Reason,
    StoreUnavailable,
    StreamUnavailable,
    WindowConflict,
)
from iotpipe.domain.identity import IdentitySet
from iotpipe.domain.lateness import LatenessPolicy
from iotpipe.domain.metrics import METRIC_NAMES, METRICS, SCALE, Metric
from iotpipe.domain.parsing import parse_reading
from iotpipe.domain.reading import Location, Reading
from iotpipe.domain.rollup import DailyRollup, daily, fleet
from iotpipe.domain.window import MAX_READINGS_PER_WINDOW, Absorption, HourlyWindow

#: Names that moved to the fast path, :mod:`iotpipe.domain.kernels`.
_IN_KERNELS = (
    "DecodedRecords",
    "ReadingColumns",
    "absorb_all",
    "decode_readings",
    "decode_records",
)


def __getattr__(name: str) -> object:
    # ReadingPayload pulls in pydantic: load it only when someone asks for it.
    if name == "ReadingPayload":
        from iotpipe.domain.schema import ReadingPayload

        return ReadingPayload
    if name in _IN_KERNELS:
        from iotpipe.domain import kernels

        message = f"iotpipe.domain.{name} is deprecated: import it from iotpipe.domain.kernels"
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        return getattr(kernels, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MAX_READINGS_PER_WINDOW",
    "METRICS",
    "METRIC_NAMES",
    "SCALE",
    "Absorption",
    "ArchiveUnavailable",
    "DailyRollup",
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
    "ReadingPayload",
    "Reason",
    "Stats",
    "StoreUnavailable",
    "StreamUnavailable",
    "WindowConflict",
    "daily",
    "fleet",
    "merge_all",
    "parse_reading",
]
