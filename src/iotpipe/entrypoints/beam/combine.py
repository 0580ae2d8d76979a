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
object), so that the store can classify each exactly as the single-process replay would, and
report the ones it refuses with their origin.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import itemgetter

from iotpipe.domain import Reading

Origin = tuple[str, int]
"""Where a copy came from: the archive object's name (``raw/dt=../hour=../<batch>.jsonl.gz``)
and the copy's position among that batch's readings for this window (stream order)."""

Copy = tuple[Origin, Reading]

_ORIGIN = itemgetter(0)


class WindowReadings:
    """The accumulator: per identity (event time; the device is the key's) the copy with the
    least origin, and every other copy seen."""

    __slots__ = ("kept", "repeats")

    def __init__(self) -> None:
        self.kept: dict[int, Copy] = {}
        self.repeats: list[Copy] = []

    def add(self, name: str, readings: Iterable[Reading]) -> WindowReadings:
        """Take one batch's readings for this window (distinct identities, in stream order)."""
        for position, reading in enumerate(readings):
            self._take(((name, position), reading))
        return self

    def _take(self, copy: Copy) -> None:
        timestamp = copy[1].timestamp_ms
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
        identity first, the repeats after it. Each copy is its own object (the store reports
        refused readings by object)."""
        copies = sorted([*self.kept.values(), *self.repeats], key=_ORIGIN)
        return [(origin, tuple.__new__(Reading, reading)) for origin, reading in copies]


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
    """``later``, holding ``first``'s reading object if both say the same (a resend or a
    duplicate object): a repeat then costs a reference, not a reading."""
    if later[1] == first[1]:
        return (later[0], first[1])
    return later


def readings_of(copies: Sequence[Copy]) -> list[Reading]:
    """The readings of copies, in their order."""
    return [reading for _, reading in copies]
