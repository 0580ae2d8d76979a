"""Exact, mergeable aggregates: the algebra behind delivery-independent results.

:class:`Moments` (one metric) and :class:`Stats` (a window's readings) form commutative monoids:
``empty()`` is the identity and ``merge`` is exactly associative and commutative, because every
sum is an integer in fixed point (0.001 units, see :mod:`iotpipe.domain.metrics`) and every
extreme or "latest" is chosen by a total order. Any grouping and any order of the same readings
therefore gives bit-identical results. In Apache Beam's terms: ``empty`` is
``create_accumulator``, ``Stats.of`` is ``add_input``, ``merge`` is ``merge_accumulators`` and
``summary`` is ``extract_output``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Moments:
    """Count, sum, sum of squares, min and max of one metric, all in exact fixed point."""

    count: int = 0
    total: int = 0
    squares: int = 0
    minimum: int | None = None
    maximum: int | None = None

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

    def summary(self) -> MetricSummary:
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


_NO_MOMENTS: tuple[Moments, ...] = tuple(Moments() for _ in METRICS)


@dataclass(frozen=True, slots=True)
class Located:
    """The location a device reported at an instant (the latest one wins a merge)."""

    timestamp_ms: int
    lat: float
    lon: float

    @property
    def location(self) -> Location:
        """The bare coordinates."""
        return Location(self.lat, self.lon)


@dataclass(frozen=True, slots=True)
class Stats:
    """The aggregate of a set of readings: count, per-metric moments, time span, last location."""

    count: int = 0
    metrics: tuple[Moments, ...] = _NO_MOMENTS
    first_ms: int | None = None
    last_ms: int | None = None
    located: Located | None = None

    @staticmethod
    def empty() -> Stats:
        """The identity of :meth:`merge`."""
        return _EMPTY

    @staticmethod
    def of(readings: Iterable[Reading]) -> Stats:
        """The aggregate of readings, each counted once per occurrence (no deduplication)."""
        fold = _Fold()
        for reading in readings:
            fold.add(reading)
        return fold.result()

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

    def metric(self, name: str) -> Moments:
        """The moments of one declared metric."""
        for metric, moments in zip(METRICS, self.metrics, strict=True):
            if metric.name == name:
                return moments
        raise KeyError(name)


_EMPTY = Stats()


def merge_all(parts: Iterable[Stats]) -> Stats:
    """Merge any number of aggregates (the empty aggregate for none)."""
    total = _EMPTY
    for part in parts:
        total = total.merge(part)
    return total


def _later(a: Located | None, b: Located | None) -> Located | None:
    if a is None:
        return b
    if b is None:
        return a
    # A total order (time, then coordinates) keeps the merge commutative even on ties.
    return max(a, b, key=lambda x: (x.timestamp_ms, x.lat, x.lon))


class _Fold:
    """A mutable accumulator for folding many readings quickly; frozen by :meth:`result`."""

    __slots__ = (
        "count",
        "counts",
        "first",
        "last",
        "located",
        "maxima",
        "minima",
        "squares",
        "totals",
    )

    def __init__(self) -> None:
        width = len(METRICS)
        self.count = 0
        self.counts = [0] * width
        self.totals = [0] * width
        self.squares = [0] * width
        self.minima: list[int | None] = [None] * width
        self.maxima: list[int | None] = [None] * width
        self.first: int | None = None
        self.last: int | None = None
        self.located: Located | None = None

    def add(self, reading: Reading) -> None:
        self.count += 1
        ts = reading.timestamp_ms
        if self.first is None or ts < self.first:
            self.first = ts
        if self.last is None or ts > self.last:
            self.last = ts
        for i, value in enumerate(reading.values):
            if value is None:
                continue
            self.counts[i] += 1
            self.totals[i] += value
            self.squares[i] += value * value
            low, high = self.minima[i], self.maxima[i]
            if low is None or value < low:
                self.minima[i] = value
            if high is None or value > high:
                self.maxima[i] = value
        loc = reading.location
        if loc is not None:
            self.located = _later(self.located, Located(ts, loc.lat, loc.lon))

    def result(self) -> Stats:
        if not self.count:
            return _EMPTY
        metrics = tuple(
            Moments(c, t, s, lo, hi) if c else Moments()
            for c, t, s, lo, hi in zip(
                self.counts, self.totals, self.squares, self.minima, self.maxima, strict=True
            )
        )
        return Stats(self.count, metrics, self.first, self.last, self.located)
