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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from iotpipe.domain.aggregate import Stats
from iotpipe.domain.errors import IotPipeError
from iotpipe.domain.reading import Reading
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

    def with_added(self, entries: Iterable[tuple[int, int]]) -> IdentitySet:
        """A new set that also holds these ``(offset_ms, fingerprint)`` entries (all unseen)."""
        added = [offset << 16 | fp for offset, fp in entries]
        if not added:
            return self
        return IdentitySet(array("Q", sorted([*self._keys, *added])))

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
        return IdentitySet(keys)


@dataclass(frozen=True, slots=True)
class Absorption:
    """How the readings offered to a window were taken."""

    new: tuple[Reading, ...] = ()
    duplicates: tuple[Reading, ...] = ()
    conflicts: tuple[Reading, ...] = ()
    overflow: tuple[Reading, ...] = ()


@dataclass(frozen=True, slots=True)
class HourlyWindow:
    """The aggregate of one device's readings in one UTC hour, with the identities it counted."""

    device_id: str
    hour_ms: int
    stats: Stats = field(default_factory=Stats.empty)
    seen: IdentitySet = field(default_factory=IdentitySet)
    latest: Reading | None = None
    """The window's reading with the greatest event time (the device's latest, if newest)."""

    @property
    def key(self) -> tuple[str, int]:
        """``(device_id, hour_ms)``: the window's identity and storage key."""
        return (self.device_id, self.hour_ms)

    def absorb(self, readings: Iterable[Reading]) -> tuple[HourlyWindow, Absorption]:
        """Count each reading whose identity is new; classify the rest.

        A repeated identity with the same fingerprint is a duplicate (a resend); with another
        fingerprint it is a conflict: the first version counted stays, the other is reported.
        All readings must belong to this window.
        """
        seen = self.seen
        fresh: dict[int, tuple[Reading, int]] = {}
        duplicates: list[Reading] = []
        conflicts: list[Reading] = []
        overflow: list[Reading] = []
        room = MAX_READINGS_PER_WINDOW - len(seen)
        for reading in readings:
            offset = reading.timestamp_ms - self.hour_ms
            if reading.device_id != self.device_id or not 0 <= offset < MS_PER_HOUR:
                raise ValueError(f"reading {reading.identity} is not in window {self.key}")
            fingerprint = reading.fingerprint()
            prior = fresh.get(offset)
            known = prior[1] if prior is not None else seen.fingerprint_at(offset)
            if known is None:
                if len(fresh) < room:
                    fresh[offset] = (reading, fingerprint)
                else:
                    overflow.append(reading)
            elif known == fingerprint:
                duplicates.append(reading)
            else:
                conflicts.append(reading)
        absorbed = Absorption(
            tuple(r for r, _ in fresh.values()),
            tuple(duplicates),
            tuple(conflicts),
            tuple(overflow),
        )
        if not fresh:
            return self, absorbed
        newest = max(absorbed.new, key=lambda r: r.timestamp_ms)
        window = HourlyWindow(
            self.device_id,
            self.hour_ms,
            self.stats.merge(Stats.of(absorbed.new)),
            seen.with_added((offset, fp) for offset, (_, fp) in fresh.items()),
            newest
            if self.latest is None or newest.timestamp_ms > self.latest.timestamp_ms
            else self.latest,
        )
        return window, absorbed
