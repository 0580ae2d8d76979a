"""Exact, mergeable aggregates: the algebra behind delivery-independent results.

:class:`Moments` (one metric's values) and :class:`Stats` (a set of readings) are written as
Apache Beam's ``CombineFn`` is: ``create`` the empty aggregate, ``add`` one input, ``merge``
two aggregates, ``extract`` the result. ``create()`` is the identity of ``merge``, and
``merge`` is exactly associative and commutative, because every sum is an integer in fixed
point (0.001 units, see :mod:`iotpipe.domain.metrics`) and every extreme or "latest" is chosen
by a total order. Any grouping and any order of the same readings therefore gives bit-identical
results.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from functools import reduce
from typing import NamedTuple

from iotpipe.domain.metrics import METRICS, SCALE
from iotpipe.domain.reading import Location, Reading


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

    def extract(self) -> MetricSummary:
        """Mean, min, max and population standard deviation, correctly rounded from exact sums."""
        n = self.count
        if not n:
            return MetricSummary(0, None, None, None, None)
        spread = n * self.squares - self.total * self.total  # n^2 * variance, exact and >= 0
        return MetricSummary(
            count=n,
            mean=self.total / (n * SCALE),
            min=self.minimum / SCALE,  # type: ignore[operator]
            max=self.maximum / SCALE,  # type: ignore[operator]
            stddev=math.sqrt(spread) / (n * SCALE),
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

    ``metrics`` is aligned with :data:`~iotpipe.domain.metrics.METRICS`.
    """

    count: int = 0  # type: ignore[assignment]  # shadows tuple.count: the domain's word wins
    metrics: tuple[Moments, ...] = tuple(_NO_VALUES for _ in METRICS)
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
        return Stats(
            self.count + 1,
            tuple(
                m if v is None else m.add(v)
                for m, v in zip(self.metrics, reading.values, strict=True)
            ),
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

    def extract(self) -> dict[str, MetricSummary]:
        """Each declared metric's summary, by name."""
        return {m.name: moments.extract() for m, moments in zip(METRICS, self.metrics, strict=True)}

    def metric(self, name: str) -> Moments:
        """The moments of one declared metric."""
        for metric, moments in zip(METRICS, self.metrics, strict=True):
            if metric.name == name:
                return moments
        raise KeyError(name)

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
