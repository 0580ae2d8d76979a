"""Readings held column by column: the form in which the process hot path carries a batch.

A stream batch is tens of thousands of readings. Held as :class:`Reading` objects, each costs
a handful of allocations and every later step reads its fields back one reading at a time.
:class:`ReadingColumns` keeps one list per field instead (and each reading's identity key),
so decoding, grouping into windows and absorbing run over whole columns at C speed, and a
:class:`Reading` is built only where one is asked for. It is a ``Sequence[Reading]``: anything
that takes readings takes it.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import repeat
from operator import and_, itemgetter
from typing import Any, overload

from iotpipe.domain.kernels.packing import (
    column_digests,
    fingerprints_of,
    identity_keys,
    location_or_none,
    reading_digests,
)
from iotpipe.domain.reading import Location, Reading
from iotpipe.domain.telemetry import DEFAULT_SCHEMA

_new = tuple.__new__  # builds the named tuples without their Python-level __new__


class ReadingColumns(Sequence[Reading]):
    """Readings as parallel columns: position ``i`` of every column is reading ``i``.

    - ``devices``, ``times``: each reading's device id and event time (UTC epoch ms);
    - ``values``: one column per metric of the readings' schema, in fixed point, ``None``
      where a reading does not carry the metric;
    - ``lats``, ``lons``: the location, ``None`` in both where a reading has none;
    - ``fingerprints`` and ``identity_keys``: each reading's :meth:`Reading.fingerprint` and
      its identity as a window's :class:`~iotpipe.domain.identity.IdentitySet` packs it,
      computed for the whole batch on first use.

    Treat the columns as immutable. The :class:`Reading` objects are built on first access and
    kept, so position ``i`` is always the same object (callers map objects back to positions).
    """

    __slots__ = ("_keys", "_prints", "_rows", "devices", "lats", "lons", "times", "values")

    devices: list[str]
    times: list[int]
    values: tuple[list[int | None], ...]
    lats: list[float | None]
    lons: list[float | None]
    _prints: list[int] | None
    _keys: array[int] | None
    _rows: list[Reading] | None

    def __init__(
        self,
        devices: list[str],
        times: list[int],
        values: tuple[list[int | None], ...],
        lats: list[float | None],
        lons: list[float | None],
    ) -> None:
        n = len(times)
        if len(devices) != n or len(lats) != n or len(lons) != n:
            raise ValueError("columns of different lengths")
        if not values or any(len(column) != n for column in values):
            raise ValueError(f"one column of {n} values per metric is needed")
        self.devices, self.times, self.values = devices, times, values
        self.lats, self.lons = lats, lons
        self._prints = None
        self._keys = None
        self._rows = None

    @staticmethod
    def of(readings: Iterable[Reading]) -> ReadingColumns:
        """The columns of these readings (in order)."""
        rows = list(readings)
        places = [r.location for r in rows]
        columns = ReadingColumns(
            list(map(_DEVICE, rows)),
            list(map(_TIME, rows)),
            tuple(list(column) for column in zip(*map(_VALUES, rows), strict=True))
            if rows
            else tuple([] for _ in DEFAULT_SCHEMA.metrics),
            [None if p is None else p.lat for p in places],
            [None if p is None else p.lon for p in places],
        )
        columns._rows = rows
        return columns

    @property
    def fingerprints(self) -> list[int]:
        """Each reading's :meth:`Reading.fingerprint` (computed once, on first use)."""
        prints = self._prints
        if prints is None:
            keys = self._keys
            if keys is not None:  # a key is offset << 16 | fingerprint
                prints = list(map(and_, keys, repeat(0xFFFF)))
            else:
                prints = fingerprints_of(self._digests())
            self._prints = prints
        return prints

    @property
    def identity_keys(self) -> array[int]:
        """Each reading's identity within its hourly window, packed as an
        :class:`~iotpipe.domain.identity.IdentitySet` holds it: ``offset_in_hour << 16 |
        fingerprint`` (computed once, on first use)."""
        keys = self._keys
        if keys is None:
            keys = self._keys = identity_keys(self.times, self._digests())
        return keys

    def _digests(self) -> array[int]:
        rows = self._rows
        if rows is not None:
            return reading_digests(rows)
        return column_digests(self.values, self.lats, self.lons)

    def __len__(self) -> int:
        return len(self.times)

    @overload
    def __getitem__(self, index: int) -> Reading: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Reading]: ...

    def __getitem__(self, index: int | slice) -> Reading | Sequence[Reading]:
        return self.rows()[index]

    def __iter__(self) -> Iterator[Reading]:
        return iter(self.rows())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ReadingColumns):
            return self.rows() == other.rows()
        if isinstance(other, list | tuple):
            return self.rows() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # columns are lists: not hashable

    def __repr__(self) -> str:
        return f"ReadingColumns({self.rows()!r})"

    def rows(self) -> list[Reading]:
        """The readings as :class:`Reading` objects (built once, then kept)."""
        rows = self._rows
        if rows is None:
            lats, lons = self.lats, self.lons
            located = (
                map(location_or_none, lats, lons)
                if None in lats
                else map(_new, repeat(Location), zip(lats, lons))  # noqa: B905
            )
            said = zip(self.devices, self.times, zip(*self.values), located)  # noqa: B905
            rows = self._rows = list(map(_new, repeat(Reading), said))
        return rows

    def row(self, index: int) -> Reading:
        """The reading at one position, without building the others."""
        rows = self._rows
        if rows is not None:
            return rows[index]
        values = tuple([column[index] for column in self.values])
        location = location_or_none(self.lats[index], self.lons[index])
        return _new(Reading, (self.devices[index], self.times[index], values, location))

    def take(self, positions: list[int]) -> ReadingColumns:
        """The readings at these positions, in this order (the same objects, if built)."""
        built = object.__new__(ReadingColumns)
        for setter, column in self._slots():
            taken = None if column is None else list(map(column.__getitem__, positions))
            setter(built, taken)
        _set_prints(built, None)
        _set_keys(built, array("Q", map(self.identity_keys.__getitem__, positions)))
        _set_values(built, tuple([list(map(c.__getitem__, positions)) for c in self.values]))
        return built

    def split(self, bounds: list[int]) -> list[ReadingColumns]:
        """The readings cut into consecutive parts: from ``bounds[i]`` to ``bounds[i + 1]``
        (excluded) for each ``i`` (the same objects, if built).

        The process path cuts a batch regrouped by window into one part per window: thousands
        of parts, so they are cut and built column by column, at C speed.
        """
        cuts = list(map(slice, bounds, bounds[1:]))
        parts = list(map(object.__new__, repeat(ReadingColumns, len(cuts))))
        for setter, column in self._slots():
            pieces = repeat(None) if column is None else map(column.__getitem__, cuts)
            _drain(map(setter, parts, pieces))
        _drain(map(_set_prints, parts, repeat(None)))
        _drain(map(_set_keys, parts, map(self.identity_keys.__getitem__, cuts)))
        pieces_by_metric = [map(column.__getitem__, cuts) for column in self.values]
        _drain(map(_set_values, parts, zip(*pieces_by_metric)))  # noqa: B905
        return parts

    def _slots(self) -> tuple[tuple[Any, list[Any] | None], ...]:
        """(setter, column) for the columns a part takes as they are: all but ``values`` and
        the identity keys (the fingerprints follow from the keys)."""
        return (
            (_set_devices, self.devices),
            (_set_times, self.times),
            (_set_lats, self.lats),
            (_set_lons, self.lons),
            (_set_rows, self._rows),
        )


# The slots' setters, at C speed.
_SLOTS = ReadingColumns.__dict__
_set_devices = _SLOTS["devices"].__set__
_set_times = _SLOTS["times"].__set__
_set_values = _SLOTS["values"].__set__
_set_lats = _SLOTS["lats"].__set__
_set_lons = _SLOTS["lons"].__set__
_set_prints = _SLOTS["_prints"].__set__
_set_keys = _SLOTS["_keys"].__set__
_set_rows = _SLOTS["_rows"].__set__
_DRAIN: deque[object] = deque(maxlen=0)
_drain: Callable[[Iterable[object]], None] = _DRAIN.extend  # runs an iterator, at C speed
_DEVICE = itemgetter(0)
_TIME = itemgetter(1)
_VALUES = itemgetter(2)
