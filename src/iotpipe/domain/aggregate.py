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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import mul
from typing import NamedTuple

from iotpipe.domain.columns import ReadingColumns
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
    """Count, sum, sum of squares, min and max of one metric, all in exact fixed point.

    An immutable named tuple rather than a frozen dataclass: it is built several times per
    window update, and tuple construction is about twice as fast.
    """

    count: int = 0  # type: ignore[assignment]  # shadows tuple.count: the domain's word wins
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

    def grown(self, column: Sequence[int | None]) -> Moments:
        """These moments merged with the moments of a column of values (``None``: absent),
        in one step (the processing hot path)."""
        try:
            # sorted() raises on None among numbers, sum() on a lone None: no value compared
            values: Sequence[int] = sorted(column)  # type: ignore[arg-type]
            added = sum(values)
        except TypeError:  # some readings lack this metric
            values = sorted([v for v in column if v is not None])
            added = sum(values)
        if not values:
            return self
        count, total, squares, low, high = self
        least, most = values[0], values[-1]
        return _new(
            Moments,
            (
                count + len(values),
                total + added,
                squares + sum(map(mul, values, values)),
                least if low is None or least < low else low,
                most if high is None or most > high else high,
            ),
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


_NONE = Moments()
_NO_MOMENTS: tuple[Moments, ...] = tuple(_NONE for _ in METRICS)


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

    An immutable named tuple (rebuilt on every window update, on the hot path).
    """

    count: int = 0  # type: ignore[assignment]  # shadows tuple.count: the domain's word wins
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
        return _EMPTY.add(readings if isinstance(readings, Sequence) else list(readings))

    def add(self, readings: Sequence[Reading]) -> Stats:
        """``self.merge(Stats.of(readings))``, computed in one step."""
        if not readings:
            return self
        columns = readings if type(readings) is ReadingColumns else ReadingColumns.of(readings)
        times = columns.times
        return self.extend(columns, min(times), max(times))

    def extend(self, columns: ReadingColumns, first: int, last: int) -> Stats:
        """:meth:`add` for readings held as columns, whose least and greatest event times
        (``first``, ``last``) the caller has at hand already (a window absorbing them the
        general way; :func:`~iotpipe.domain.window.absorb_all` grows the common window inline
        with the same steps)."""
        located = self.located
        candidate = last_located(columns, last)
        if candidate is not None and (located is None or candidate > located):
            located = candidate
        if self.first_ms is not None and self.first_ms < first:
            first = self.first_ms
        if self.last_ms is not None and self.last_ms > last:
            last = self.last_ms
        return _new(
            Stats,
            (
                self.count + len(columns),
                tuple(map(Moments.grown, self.metrics, columns.values)),
                first,
                last,
                located,
            ),
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

    def metric(self, name: str) -> Moments:
        """The moments of one declared metric."""
        for metric, moments in zip(METRICS, self.metrics, strict=True):
            if metric.name == name:
                return moments
        raise KeyError(name)


_EMPTY = Stats()
_new = tuple.__new__  # builds the named tuples above without their Python-level __new__


def last_located(columns: ReadingColumns, last: int) -> Located | None:
    """The greatest ``(time, lat, lon)`` among the readings that carry a location (``last`` is
    their greatest event time)."""
    times, lats, lons = columns.times, columns.lats, columns.lons
    newest = times.index(last)
    lat = lats[newest]
    if lat is not None and times.count(last) == 1:
        # The common case, found at C speed: the newest reading is located and alone at its time.
        return _new(Located, (last, lat, lons[newest]))
    places = [place for place in zip(times, lats, lons, strict=True) if place[1] is not None]
    return _new(Located, max(places)) if places else None


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
    # Tuple order (time, then coordinates) is total: the merge stays commutative on ties.
    return max(a, b)
