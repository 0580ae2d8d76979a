"""The identities a window has counted, so that counting a reading again changes nothing."""

from __future__ import annotations

import sys
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from iotpipe.domain.errors import IotPipeError

_FORMAT_V1 = b"\x01"


class CorruptIdentitySet(IotPipeError):
    """Stored identity bytes could not be decoded."""


def identity_key(offset_ms: int, fingerprint: int) -> int:
    """One identity as an :class:`IdentitySet` keeps it: ``offset_ms << 16 | fingerprint``."""
    return offset_ms << 16 | fingerprint


@dataclass(frozen=True, slots=True, eq=False)
class IdentitySet:
    """The readings a window has counted: millisecond offset in the hour -> 16-bit fingerprint.

    ``keys`` holds each identity as one integer (:func:`identity_key`), sorted: 8 bytes per
    reading in memory. Serialised (:meth:`to_bytes`) they are zlib-compressed little-endian
    64-bit integers, about 3-4 bytes per reading, so an hour at one reading per second is
    ~13 KB and at the supported maximum of 20 per second stays under DynamoDB's 400 KB item limit.
    """

    keys: array[int] = field(default_factory=lambda: array("Q"))

    def __len__(self) -> int:
        return len(self.keys)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdentitySet) and self.keys == other.keys

    def __hash__(self) -> int:
        return hash(self.keys.tobytes())

    def __iter__(self) -> Iterator[tuple[int, int]]:
        """Each ``(offset_ms, fingerprint)``, in offset order."""
        for key in self.keys:
            yield key >> 16, key & 0xFFFF

    def fingerprint_at(self, offset_ms: int) -> int | None:
        """The fingerprint recorded for the reading at this offset, or ``None`` if unseen."""
        keys = self.keys
        i = bisect_left(keys, offset_ms << 16)
        if i < len(keys) and keys[i] >> 16 == offset_ms:
            return keys[i] & 0xFFFF
        return None

    def with_added(self, entries: Iterable[tuple[int, int]]) -> IdentitySet:
        """A new set that also holds these ``(offset_ms, fingerprint)`` entries (all unseen)."""
        added = [identity_key(offset, fingerprint) for offset, fingerprint in entries]
        if not added:
            return self
        return IdentitySet(array("Q", sorted([*self.keys, *added])))

    def to_bytes(self) -> bytes:
        """The compact, portable serialisation (see the class docstring)."""
        keys = self.keys
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
