"""Exact, mergeable aggregates: the algebra behind delivery-independent results.

:class:`Moments` (one metric's values) and :class:`Stats` (a set of readings) are written as
Apache Beam's ``CombineFn`` is: ``create`` the empty aggregate, ``add`` one input, ``merge``
two aggregates, ``extract`` the result. ``create()`` is the identity of ``merge``, and
``merge`` is exactly associative and commutative, because every sum is an integer in fixed
point (units of each metric's resolution, see :mod:`iotpipe.domain.metrics`) and every extreme
or "latest" is chosen by a total order. Any grouping and any order of the same readings
therefore gives bit-identical results.

A :class:`Stats` holds one :class:`Moments` per metric of the schema its readings were read
with (:mod:`iotpipe.domain.telemetry`), in the schema's order. An empty aggregate (count 0)
holds no values, whatever number of empty moments it was made with: it is the identity for
every schema.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from functools import reduce
from itertools import repeat
from typing import NamedTuple

from iotpipe.domain.metrics import DEFAULT_EXPONENT
from iotpipe.domain.reading import Location, Reading
from iotpipe.domain.telemetry import DEFAULT_SCHEMA, TelemetrySchema


@dataclass(frozen=True, slots=True)
class MetricSummary:
    """What a reader wants to know about one metric in a window (floats, for presentation)."""

    count: int
    mean: float | None
    min: float | None
    max: float | None
    stddev: float | None


class Moments(NamedTuple):
    """Count, sum, sum of squares, min and max of one metric's values, in exact fixed point."""

    count: int = 0  # type: ignore[assignment]  # shadows tuple.count: the domain's word wins
    total: int = 0
    squares: int = 0
    minimum: int | None = None
    maximum: int | None = None

    @staticmethod
    def create() -> Moments:
        """The moments of no values: the identity of :meth:`merge`."""
        return _NO_VALUES

    def add(self, value: int) -> Moments:
        """These moments with one more value (fixed point)."""
        low, high = self.minimum, self.maximum
        return Moments(
            self.count + 1,
            self.total + value,
            self.squares + value * value,
            value if low is None or value < low else low,
            value if high is None or value > high else high,
        )

    def merge(self, other: Moments) -> Moments:
        """The moments of both sets of values (exact, associative, commutative)."""
        if not other.count:
            return self
        if not self.count:
            return other
        return Moments(
            self.count + other.count,
            self.total + other.total,
            self.squares + other.squares,
            min(self.minimum, other.minimum),  # type: ignore[type-var]
            max(self.maximum, other.maximum),  # type: ignore[type-var]
        )

    def extract(self, exponent: int = DEFAULT_EXPONENT) -> MetricSummary:
        """Mean, min, max and population standard deviation, correctly rounded from exact sums
        in units of ``10 ** exponent`` (the metric's resolution; 0.001 by default)."""
        n = self.count
        if not n:
            return MetricSummary(0, None, None, None, None)
        spread = n * self.squares - self.total * self.total  # n^2 * variance, exact and >= 0
        if exponent > 0:  # a coarse resolution: scale up, exactly, before dividing
            unit: int = 10**exponent
            return MetricSummary(
                count=n,
                mean=self.total * unit / n,
                min=float(self.minimum * unit),  # type: ignore[operator]
                max=float(self.maximum * unit),  # type: ignore[operator]
                stddev=math.sqrt(spread) * unit / n,
            )
        scale: int = 10**-exponent
        return MetricSummary(
            count=n,
            mean=self.total / (n * scale),
            min=self.minimum / scale,  # type: ignore[operator]
            max=self.maximum / scale,  # type: ignore[operator]
            stddev=math.sqrt(spread) / (n * scale),
        )

    def summary(self) -> MetricSummary:
        """Deprecated name of :meth:`extract`."""
        _renamed("Moments.summary()", "Moments.extract()")
        return self.extract()


_NO_VALUES = Moments()


class Located(NamedTuple):
    """The location a device reported at an instant; the greatest (time, lat, lon) wins a merge."""

    timestamp_ms: int
    lat: float
    lon: float

    @property
    def location(self) -> Location:
        """The bare coordinates."""
        return Location(self.lat, self.lon)


class Stats(NamedTuple):
    """The aggregate of a set of readings: count, per-metric moments, time span, last location.

    ``metrics`` is aligned with the metrics of the readings' schema (the default schema's when
    made empty with ``Stats()``; see the module docstring).
    """

    count: int = 0  # type: ignore[assignment]  # shadows tuple.count: the domain's word wins
    metrics: tuple[Moments, ...] = tuple(_NO_VALUES for _ in DEFAULT_SCHEMA.metrics)
    first_ms: int | None = None
    last_ms: int | None = None
    located: Located | None = None

    @staticmethod
    def create() -> Stats:
        """The aggregate of no readings: the identity of :meth:`merge`."""
        return _NO_READINGS

    @staticmethod
    def of(readings: Iterable[Reading]) -> Stats:
        """The aggregate of readings, each counted once per occurrence (no deduplication)."""
        return reduce(Stats.add, readings, _NO_READINGS)

    def add(self, reading: Reading) -> Stats:
        """This aggregate with one more reading."""
        if not isinstance(reading, Reading):  # the former add(readings)
            _renamed("Stats.add(readings)", "Stats.of(readings) and merge, or add(reading)")
            return self.merge(Stats.of(reading))
        at, where = reading.timestamp_ms, reading.location
        # An empty aggregate holds no values: it takes the reading's width (its schema's).
        held = self.metrics if self.count else repeat(_NO_VALUES, len(reading.values))
        return Stats(
            self.count + 1,
            tuple(m if v is None else m.add(v) for m, v in zip(held, reading.values, strict=True)),
            at if self.first_ms is None else min(self.first_ms, at),
            at if self.last_ms is None else max(self.last_ms, at),
            self.located if where is None else _later(self.located, Located(at, *where)),
        )

    def merge(self, other: Stats) -> Stats:
        """The aggregate of both sets of readings (exact, associative, commutative)."""
        if not other.count:
            return self
        if not self.count:
            return other
        return Stats(
            count=self.count + other.count,
            metrics=tuple(a.merge(b) for a, b in zip(self.metrics, other.metrics, strict=True)),
            first_ms=min(self.first_ms, other.first_ms),  # type: ignore[type-var]
            last_ms=max(self.last_ms, other.last_ms),  # type: ignore[type-var]
            located=_later(self.located, other.located),
        )

    def moments(self, schema: TelemetrySchema = DEFAULT_SCHEMA) -> tuple[Moments, ...]:
        """One :class:`Moments` per metric of the schema, in its order (an empty aggregate's
        are empty, whatever width it was made with)."""
        if not self.count:
            return tuple(_NO_VALUES for _ in schema.metrics)
        if len(self.metrics) != len(schema.metrics):
            raise ValueError(f"an aggregate of {len(self.metrics)} metrics, not the schema's")
        return self.metrics

    def extract(self, schema: TelemetrySchema = DEFAULT_SCHEMA) -> dict[str, MetricSummary]:
        """Each metric's summary, by name, at its resolution."""
        return {
            metric.name: moments.extract(metric.exponent)
            for metric, moments in zip(schema.metrics, self.moments(schema), strict=True)
        }

    def metric(self, name: str, schema: TelemetrySchema = DEFAULT_SCHEMA) -> Moments:
        """The moments of one metric of the schema (``KeyError`` if it declares none so named)."""
        if name not in schema.names:
            raise KeyError(name)
        return self.moments(schema)[schema.names.index(name)]

    @staticmethod
    def empty() -> Stats:
        """Deprecated name of :meth:`create`."""
        _renamed("Stats.empty()", "Stats.create()")
        return _NO_READINGS


_NO_READINGS = Stats()


def merge_all(parts: Iterable[Stats]) -> Stats:
    """Merge any number of aggregates (the empty aggregate for none)."""
    return reduce(Stats.merge, parts, _NO_READINGS)


def _later(a: Located | None, b: Located | None) -> Located | None:
    if a is None:
        return b
    if b is None:
        return a
    # Tuple order (time, then coordinates) is total: the merge stays commutative on ties.
    return max(a, b)


def _renamed(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated: use {new}", DeprecationWarning, stacklevel=3)
