"""Per-device hourly windows that absorb readings exactly once.

A window remembers the identities it has counted in an :class:`IdentitySet`, so absorbing a
reading it already holds changes nothing: resends, retried batches and replays are harmless.
That is what makes stored aggregates independent of delivery.
"""

from __future__ import annotations

import sys
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from iotpipe.domain.aggregate import Located, Moments, Stats, last_located
from iotpipe.domain.columns import ReadingColumns
from iotpipe.domain.errors import IotPipeError
from iotpipe.domain.reading import Location, Reading
from iotpipe.domain.time import MS_PER_HOUR

#: Identities one window may hold: 20 readings per second for a whole hour. Beyond that a device
#: is misbehaving; its extra readings are refused (reason ``window_full``), never silently lost.
MAX_READINGS_PER_WINDOW = 72_000

_FORMAT_V1 = b"\x01"


class CorruptIdentitySet(IotPipeError):
    """Stored identity bytes could not be decoded."""


@dataclass(frozen=True, slots=True, eq=False)
class IdentitySet:
    """The readings a window has counted: millisecond offset in the hour + 16-bit fingerprint.

    Each identity is packed into one integer ``offset << 16 | fingerprint`` and kept sorted.
    Serialised (:meth:`to_bytes`) it is zlib-compressed little-endian 64-bit integers: about
    3-4 bytes per reading, so an hour at one reading per second is ~13 KB and at the supported
    maximum of 20 per second stays well under DynamoDB's 400 KB item limit.
    """

    _keys: array[int] = field(default_factory=lambda: array("Q"))

    def __len__(self) -> int:
        return len(self._keys)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdentitySet) and self._keys == other._keys

    def __hash__(self) -> int:
        return hash(self._keys.tobytes())

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for key in self._keys:
            yield key >> 16, key & 0xFFFF

    def fingerprint_at(self, offset_ms: int) -> int | None:
        """The fingerprint recorded for the reading at this offset, or ``None`` if unseen."""
        keys = self._keys
        i = bisect_left(keys, offset_ms << 16)
        if i < len(keys) and keys[i] >> 16 == offset_ms:
            return keys[i] & 0xFFFF
        return None

    def last_offset(self) -> int:
        """The greatest offset held (-1 when empty)."""
        return self._keys[-1] >> 16 if self._keys else -1

    def with_added(self, entries: Iterable[tuple[int, int]]) -> IdentitySet:
        """A new set that also holds these ``(offset_ms, fingerprint)`` entries (all unseen)."""
        return self.with_keys([offset << 16 | fp for offset, fp in entries])

    def with_keys(self, added: list[int]) -> IdentitySet:
        """:meth:`with_added` for entries packed already (``offset << 16 | fingerprint``);
        sorts ``added`` in place."""
        if not added:
            return self
        added.sort()
        keys = array("Q", self._keys)
        if keys and added[0] < keys[-1]:  # not a pure append (late or out-of-order readings)
            keys.extend(added)
            return _identity_set(array("Q", sorted(keys)))
        keys.extend(added)
        return _identity_set(keys)

    def to_bytes(self) -> bytes:
        """The compact, portable serialisation (see the class docstring)."""
        keys = self._keys
        if sys.byteorder != "little":
            keys = array("Q", keys)
            keys.byteswap()
        return _FORMAT_V1 + zlib.compress(keys.tobytes(), 6)

    @staticmethod
    def from_bytes(data: bytes) -> IdentitySet:
        """Decode :meth:`to_bytes` output; raises :class:`CorruptIdentitySet` on bad input."""
        if not data:
            return IdentitySet()
        if data[:1] != _FORMAT_V1:
            raise CorruptIdentitySet(f"unknown identity set format {data[:1]!r}")
        try:
            raw = zlib.decompress(data[1:])
        except zlib.error as exc:
            raise CorruptIdentitySet(str(exc)) from exc
        if len(raw) % 8:
            raise CorruptIdentitySet("identity set length is not a multiple of 8")
        keys = array("Q")
        keys.frombytes(raw)
        if sys.byteorder != "little":
            keys.byteswap()
        return _identity_set(keys)


def _identity_set(keys: array[int]) -> IdentitySet:
    """An :class:`IdentitySet` over sorted keys, built without the dataclass's ``__init__``."""
    built = object.__new__(IdentitySet)
    _set_keys(built, keys)
    return built


_set_keys = IdentitySet._keys.__set__  # type: ignore[attr-defined,misc]  # the slot, at C speed


class Absorption(NamedTuple):
    """How the readings offered to a window were taken."""

    new: Sequence[Reading] = ()
    duplicates: Sequence[Reading] = ()
    conflicts: Sequence[Reading] = ()
    overflow: Sequence[Reading] = ()


_NO_IDENTITIES = IdentitySet()


class HourlyWindow(NamedTuple):
    """The aggregate of one device's readings in one UTC hour, with the identities it counted.

    ``latest`` is the window's reading with the greatest event time (the device's latest
    reading, when this is its newest window). An immutable named tuple: windows are rebuilt on
    every update, on the hot path.
    """

    device_id: str
    hour_ms: int
    stats: Stats = Stats()
    seen: IdentitySet = _NO_IDENTITIES
    latest: Reading | None = None

    @property
    def key(self) -> tuple[str, int]:
        """``(device_id, hour_ms)``: the window's identity and storage key."""
        return (self.device_id, self.hour_ms)

    def absorb(self, readings: Iterable[Reading]) -> tuple[HourlyWindow, Absorption]:
        """Count each reading whose identity is new; classify the rest.

        A repeated identity with the same fingerprint is a duplicate (a resend); with another
        fingerprint it is a conflict: the first version counted stays, the other is reported.
        All readings must belong to this window. Readings given as :class:`ReadingColumns` (as
        the process path gives them) are absorbed column by column, with no per-reading object;
        the readings in the :class:`Absorption` are then the columns' own.
        """
        return absorb_all((self,), (readings,))[0]

    def _absorb(self, columns: ReadingColumns) -> tuple[HourlyWindow, Absorption]:
        """:meth:`absorb` the general way, reading by reading (some identities repeat, or the
        window is full), once the readings are known to belong to this window."""
        hour, times = self.hour_ms, columns.times
        if (
            min(times) < hour
            or max(times) >= hour + MS_PER_HOUR
            or columns.devices.count(self.device_id) != len(times)
        ):
            raise ValueError(f"readings outside window {self.key} were offered to it")
        return self._sift(columns)

    def _sift(self, columns: ReadingColumns) -> tuple[HourlyWindow, Absorption]:
        """:meth:`absorb` reading by reading: some identities repeat, or the window is full."""
        hour = self.hour_ms
        seen = self.seen
        lookup = seen.fingerprint_at if len(seen) else None
        fresh: dict[int, tuple[int, int]] = {}  # offset -> (position, fingerprint)
        duplicates: list[int] = []
        conflicts: list[int] = []
        overflow: list[int] = []
        room = MAX_READINGS_PER_WINDOW - len(seen)
        said = zip(columns.times, columns.fingerprints, strict=True)
        for position, (ts, fingerprint) in enumerate(said):
            offset = ts - hour
            prior = fresh.get(offset)
            if prior is not None:
                known: int | None = prior[1]
            else:
                known = lookup(offset) if lookup is not None else None
            if known is None:
                if len(fresh) < room:
                    fresh[offset] = (position, fingerprint)
                else:
                    overflow.append(position)
            elif known == fingerprint:
                duplicates.append(position)
            else:
                conflicts.append(position)
        new = columns.take([position for position, _ in fresh.values()])
        rows = columns.rows() if duplicates or conflicts or overflow else []
        absorbed = Absorption(
            new,
            tuple([rows[i] for i in duplicates]),
            tuple([rows[i] for i in conflicts]),
            tuple([rows[i] for i in overflow]),
        )
        if not fresh:
            return self, absorbed
        return self._grow(new, min(new.times), max(new.times)), absorbed

    def _grow(self, new: ReadingColumns, first: int, last: int) -> HourlyWindow:
        """The window with these readings added: all new, at distinct event times from
        ``first`` to ``last``."""
        hour = self.hour_ms
        keys = new.identity_keys.tolist()  # (with_keys sorts it)
        latest = self.latest
        return _new(
            HourlyWindow,
            (
                self.device_id,
                hour,
                self.stats.extend(new, first, last),
                self.seen.with_keys(keys),
                latest
                if latest is not None and latest.timestamp_ms >= last
                else new.row(new.times.index(last)),
            ),
        )


def absorb_all(
    windows: Sequence[HourlyWindow], offered: Sequence[Iterable[Reading]]
) -> list[tuple[HourlyWindow, Absorption]]:
    """``[w.absorb(r) for w, r in zip(windows, offered)]``: a batch's readings into its windows.

    The store applies a batch through this. A batch touches thousands of windows with a few
    readings each, so the common window is grown here inline, without the general way's
    checks and calls: its readings are columns, all new (distinct and later than every
    identity the window holds), and the newest carries a location. Any other window takes the
    general way. Both give identical results (a property test holds them together).
    """
    results: list[tuple[HourlyWindow, Absorption]] = []
    append = results.append
    for window, readings in zip(windows, offered, strict=True):
        columns = readings if type(readings) is ReadingColumns else ReadingColumns.of(readings)
        times = columns.times
        n = len(times)
        device, hour, stats, seen, latest = window
        held = seen._keys
        if not n:
            append((window, Absorption()))
            continue
        ordered = sorted(times)
        first, last = ordered[0], ordered[-1]
        if (
            first < hour
            or last >= hour + MS_PER_HOUR
            or (held and first - hour <= held[-1] >> 16)
            or len(held) + n > MAX_READINGS_PER_WINDOW
            or len(set(times)) != n
            or columns.devices.count(device) != n
        ):
            append(window._absorb(columns))
            continue
        # Every reading is new: grow the window as _grow does, inline.
        newest = times.index(last)
        lat, lon = columns.lats[newest], columns.lons[newest]
        where = None if lat is None else _new(Location, (lat, lon))
        candidate = last_located(columns, last) if where is None else _new(Located, (last, *where))
        located = stats.located
        if candidate is not None and (located is None or candidate > located):
            located = candidate
        low, high = stats.first_ms, stats.last_ms
        grown = _new(
            Stats,
            (
                stats.count + n,
                tuple(map(Moments.grown, stats.metrics, columns.values)),
                first if low is None or first < low else low,
                last if high is None or last > high else high,
                located,
            ),
        )
        # The new identities all follow the held ones: appended in order, the keys stay sorted
        # (readings in time order have their keys in order).
        keys = columns.identity_keys
        identities = object.__new__(IdentitySet)
        _set_keys(identities, held + (keys if ordered == times else array("Q", sorted(keys))))
        if latest is None or latest.timestamp_ms < last:
            values = tuple([column[newest] for column in columns.values])
            latest = _new(Reading, (columns.devices[newest], last, values, where))
        updated = _new(HourlyWindow, (device, hour, grown, identities, latest))
        append((updated, _new(Absorption, (columns, (), (), ()))))
    return results


_new = tuple.__new__  # builds the named tuples above without their Python-level __new__
