"""The metrics a reading may carry, and the exact fixed point each is kept in.

A :class:`Metric` is declared by a telemetry schema (:mod:`iotpipe.domain.telemetry`): its name
(used in stored aggregates, the API and the CLI output), where the payload carries it, its unit,
its valid range and its resolution, a power of ten. Values are kept as integers in units of the
resolution, which makes every sum exact and every merge order-independent. :data:`METRICS` are
the default schema's: temperature and humidity at 0.001.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import NamedTuple

from iotpipe.domain.errors import IotPipeError

#: Values are kept in fixed point at this many units per unit of measure (0.001 resolution):
#: the default schema's resolution.
SCALE = 1000
#: The default resolution as a power of ten: 10**-3.
DEFAULT_EXPONENT = -3
#: Resolutions from 10**-9 to 10**6 may be declared.
EXPONENTS = range(-9, 7)
#: A metric's range, counted in units of its resolution, stays within this: so that a window's
#: sum of squares (at most 72,000 values) fits the signed 64-bit integers the stores keep.
MAX_FIXED = 10_000_000
#: What a metric's name may be: it becomes a key of stored aggregates and JSON documents.
NAME_PATTERN = r"[A-Za-z][A-Za-z0-9_]{0,63}"
#: Names the aggregate representation uses itself (a metric sits beside them).
RESERVED_NAMES = frozenset({"count", "first", "last", "location", "device_id", "hour", "day"})

_NAME = re.compile(NAME_PATTERN)


class InvalidSchema(IotPipeError):
    """A telemetry schema (or one of its metrics) that cannot be used, and why."""


class Simulation(NamedTuple):
    """How the simulator makes plausible values of a metric: each device's level is drawn from
    ``typical``; values swing by ``daily`` over the day (negative: against the sun) and carry
    Gaussian ``noise`` (a standard deviation)."""

    typical: tuple[float, float]
    daily: float
    noise: float


@dataclass(frozen=True, slots=True)
class Metric:
    """A numeric measurement carried by readings and aggregated per window.

    ``path`` is where payloads carry it (a dotted path into the JSON object; the name by
    default). Values are kept exactly in units of ``10 ** exponent`` (the resolution). A
    ``retired`` metric is no longer read from payloads; its stored aggregates stay readable.
    """

    name: str
    unit: str
    minimum: float
    maximum: float
    description: str = ""
    path: str = ""
    exponent: int = DEFAULT_EXPONENT
    retired: bool = False
    simulation: Simulation | None = None

    def __post_init__(self) -> None:
        if not self.path:
            object.__setattr__(self, "path", self.name)
        _check_metric(self)

    @property
    def resolution(self) -> str:
        """The resolution as exact decimal text (``"0.001"``, ``"10"``)."""
        return resolution_text(self.exponent)

    def to_fixed(self, value: float) -> int:
        """Quantise a value to the metric's resolution (round half to even)."""
        return to_fixed_at(value, self.exponent)

    def from_fixed(self, fixed: int) -> float:
        """The float nearest to a fixed-point value of this metric (correctly rounded)."""
        return from_fixed_at(fixed, self.exponent)


def to_fixed_at(value: float, exponent: int) -> int:
    """A value in units of ``10 ** exponent``, rounded half to even."""
    scale: int = 10 ** abs(exponent)
    return round(value * scale) if exponent <= 0 else round(value / scale)


def from_fixed_at(fixed: int, exponent: int) -> float:
    """The float nearest to ``fixed * 10 ** exponent`` (correctly rounded)."""
    scale: int = 10 ** abs(exponent)
    return fixed / scale if exponent <= 0 else float(fixed * scale)


def resolution_text(exponent: int) -> str:
    """``10 ** exponent`` as exact decimal text."""
    return f"0.{'0' * (-exponent - 1)}1" if exponent < 0 else str(10**exponent)


def exponent_of(resolution: float | str) -> int:
    """The exponent of a resolution that is a power of ten (``0.1`` -> ``-1``), or raise
    :class:`InvalidSchema`."""
    try:
        number = float(resolution)
    except (TypeError, ValueError):
        number = math.nan
    if number > 0 and math.isfinite(number):
        exponent = round(math.log10(number))
        if exponent in EXPONENTS and float(resolution_text(exponent)) == number:
            return exponent
    raise InvalidSchema(
        f"resolution {resolution!r} is not a power of ten from 1e-9 to 1e6 (e.g. 0.1, 0.001, 1)"
    )


def _check_metric(metric: Metric) -> None:
    where = f"metric {metric.name!r}"
    if not isinstance(metric.name, str) or not _NAME.fullmatch(metric.name):
        raise InvalidSchema(
            f"metric name {metric.name!r} must be 1-64 characters from [A-Za-z0-9_], "
            "starting with a letter"
        )
    if metric.name in RESERVED_NAMES:
        reserved = ", ".join(sorted(RESERVED_NAMES))
        raise InvalidSchema(f"{where}: the name is reserved by the aggregates ({reserved})")
    if metric.exponent not in EXPONENTS:
        raise InvalidSchema(f"{where}: resolution must be a power of ten from 1e-9 to 1e6")
    low, high = metric.minimum, metric.maximum
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise InvalidSchema(f"{where}: minimum and maximum must be finite, minimum < maximum")
    largest = max(abs(to_fixed_at(low, metric.exponent)), abs(to_fixed_at(high, metric.exponent)))
    if largest > MAX_FIXED:
        raise InvalidSchema(
            f"{where}: [{low:g}, {high:g}] at resolution {resolution_text(metric.exponent)} is "
            f"{largest:,} units; at most {MAX_FIXED:,} keep a window's exact sums within 64 "
            "bits: choose a coarser resolution"
        )


METRICS: tuple[Metric, ...] = (
    Metric(
        "temperature",
        "degC",
        -273.15,
        1000.0,
        "Air temperature in degrees Celsius.",
        simulation=Simulation((15.0, 28.0), 4.0, 0.3),
    ),
    Metric(
        "humidity",
        "%RH",
        0.0,
        100.0,
        "Relative humidity in percent.",
        simulation=Simulation((35.0, 70.0), -8.0, 1.0),
    ),
)

METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in METRICS)


def to_fixed(value: float) -> int:
    """Quantise a measured value to the default resolution, 0.001 (round half to even)."""
    return round(value * SCALE)


def from_fixed(value: int) -> float:
    """The float nearest to a fixed-point value at the default resolution (correctly rounded)."""
    return value / SCALE
