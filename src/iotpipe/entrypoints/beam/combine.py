"""One window's readings gathered from many archive objects, each identity kept once.

This is the algebra of the replay's combine, in plain Python (Beam's ``CombineFn`` in
:mod:`.pipeline` only delegates to it), so that it is tested without Beam:
``WindowReadings()`` is ``create_accumulator``, :meth:`WindowReadings.add` is ``add_input``,
:func:`merge` is ``merge_accumulators`` and :meth:`WindowReadings.offered` is
``extract_output``.

A single-process replay reads the archive in name order (partition hour, then object name)
and the first version of a reading it counts wins; a later copy is a duplicate (same values)
or a conflict (other values). Beam gives no order, so every copy carries where it came from, an
:data:`Origin` that sorts the way the single-process replay reads: for each identity the copy
with the least origin is kept as *the* reading, whatever the order of inputs and merges. The
other copies are kept beside it only as evidence (an identical copy shares the kept copy's
row), so that the store can classify each exactly as the single-process replay would, and
report the ones it refuses with their origin.

Readings travel and accumulate as plain tuples of numbers (:data:`Row`, :data:`Packed`):
Beam's coders write those natively, where a :class:`Reading` (a named tuple) is pickled object
by object, at several times the cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import count, repeat
from operator import itemgetter

from iotpipe.domain import Reading
from iotpipe.domain.kernels import ReadingColumns

Origin = tuple[str, int]
"""Where a copy came from: the archive object's name (``raw/dt=../hour=../<batch>.jsonl.gz``)
and the copy's position among that batch's readings for this window (stream order)."""

Row = tuple[int, tuple[int | None, ...], float | None, float | None]
"""A reading of a known device: event time, values (fixed point), latitude, longitude."""

Copy = tuple[Origin, Row]

Packed = tuple[str, list[int], tuple[list[int | None], ...], list[float | None], list[float | None]]
"""One device's readings as columns: device, times, values per metric, lats, lons."""

_ORIGIN = itemgetter(0)


def pack(readings: Sequence[Reading]) -> Packed:
    """One device's readings (in order) as :data:`Packed` columns."""
    columns = readings if type(readings) is ReadingColumns else ReadingColumns.of(readings)
    device = columns.devices[0] if columns.devices else ""
    return (device, columns.times, columns.values, columns.lats, columns.lons)


class WindowReadings:
    """The accumulator: per identity (event time; the device is the key's) the copy with the
    least origin, and every other copy seen."""

    __slots__ = ("kept", "repeats")

    def __init__(self) -> None:
        self.kept: dict[int, Copy] = {}
        self.repeats: list[Copy] = []

    def add(self, name: str, packed: Packed) -> WindowReadings:
        """Take one batch's readings for this window, in stream order (repeats included)."""
        _, times, values, lats, lons = packed
        rows = zip(times, zip(*values), lats, lons)  # noqa: B905 - columns of one length
        copies = zip(zip(repeat(name), count()), rows)  # noqa: B905
        kept = self.kept
        if len(set(times)) == len(times) and kept.keys().isdisjoint(times):
            # The common batch: every identity new. Taken at C speed.
            kept.update(zip(times, copies, strict=True))
            return self
        for copy in copies:
            self._take(copy)
        return self

    def _take(self, copy: Copy) -> None:
        timestamp = copy[1][0]
        held = self.kept.get(timestamp)
        if held is None:
            self.kept[timestamp] = copy
            return
        first, later = (copy, held) if copy[0] < held[0] else (held, copy)
        self.kept[timestamp] = first
        self.repeats.append(_sharing(later, first))

    def __len__(self) -> int:
        """How many distinct readings (identities) the window has been offered."""
        return len(self.kept)

    def offered(self) -> list[Copy]:
        """Every copy in the order the single-process replay meets them: the kept copy of each
        identity first, the repeats after it."""
        return sorted([*self.kept.values(), *self.repeats], key=_ORIGIN)


def merge(accumulators: Iterable[WindowReadings]) -> WindowReadings:
    """The accumulator of all the readings the given ones hold (exact: any grouping and any
    order give the same kept copies and the same repeats)."""
    merged: WindowReadings | None = None
    for accumulator in accumulators:
        if merged is None:
            merged = accumulator
            continue
        merged.repeats.extend(accumulator.repeats)
        for copy in accumulator.kept.values():
            merged._take(copy)
    return merged if merged is not None else WindowReadings()


def _sharing(later: Copy, first: Copy) -> Copy:
    """``later``, holding ``first``'s row if both say the same (a resend or a duplicate
    object): a repeat then costs a reference, not a reading."""
    if later[1] == first[1]:
        return (later[0], first[1])
    return later


def as_readings(device: str, copies: Sequence[Copy]) -> ReadingColumns:
    """The copies as readings of ``device``, in their order, as columns (what the store
    absorbs fastest): the store reports each reading it refuses by its position among them."""
    if not copies:
        return ReadingColumns.of(())
    times, values, lats, lons = zip(*[row for _, row in copies], strict=True)
    by_metric = tuple(list(column) for column in zip(*values, strict=True))
    return ReadingColumns([device] * len(times), list(times), by_metric, list(lats), list(lons))
