"""Digests, fingerprints and identity keys of a whole batch at once.

:meth:`Reading.fingerprint <iotpipe.domain.Reading.fingerprint>` and
:func:`~iotpipe.domain.identity.identity_key` say what one reading's are; here they are computed
for tens of thousands together: the digests hashed at C speed, then folded and packed on one
integer made of all the digests' 64-bit words instead of a few operations per reading.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable, Sequence
from itertools import chain, repeat
from operator import itemgetter, mod

from iotpipe.domain.reading import Location, Reading, digest
from iotpipe.domain.time import MS_PER_HOUR


def reading_digests(readings: Iterable[Reading]) -> array[int]:
    """Each reading's :func:`~iotpipe.domain.reading.digest`."""
    said = list(map(_WHAT_IT_SAYS, readings))
    try:
        # The common case, at C speed: every reading carries a location and every metric
        # (``len(None)`` and ``None + 1`` raise, so this checks without comparing anything).
        sum(map(len, map(_LOCATION_SAID, said)))
        sum(chain.from_iterable(map(_VALUES_SAID, said)))
        return array("q", map(hash, said))
    except TypeError:
        return array("q", [digest(values, location) for values, location in said])


def column_digests(
    values: Sequence[Sequence[int | None]],
    lats: Sequence[float | None],
    lons: Sequence[float | None],
) -> array[int]:
    """:func:`reading_digests` of readings held as columns: one column of values per metric,
    and the coordinates (``None`` in both where a reading has no location)."""
    try:
        sum(lats)  # type: ignore[arg-type]  # raises on None, as below
        for column in values:
            sum(column)  # type: ignore[arg-type]
        # (values, (lat, lon)) hashes as (values, Location(lat, lon)) does: a named tuple's
        # hash is its tuple's. zip reuses its result tuples, so nothing is kept per reading.
        return array("q", map(hash, zip(zip(*values), zip(lats, lons))))  # noqa: B905
    except TypeError:  # some readings lack a metric or a location
        places = map(location_or_none, lats, lons)
        return array("q", map(digest, zip(*values), places))  # noqa: B905


def location_or_none(lat: float | None, lon: float | None) -> Location | None:
    """The location at these coordinates; ``None`` where there are none."""
    return None if lat is None or lon is None else _new(Location, (lat, lon))


def fingerprints_of(digests: array[int]) -> list[int]:
    """The fingerprint each digest folds to (:func:`~iotpipe.domain.reading.fold`)."""
    return _words(_fingerprint_words(digests), len(digests)).tolist()


def identity_keys(times: Sequence[int], digests: array[int]) -> array[int]:
    """Each reading's :func:`~iotpipe.domain.identity.identity_key` in its hourly window:
    ``offset_in_hour << 16 | fingerprint`` (``times`` and ``digests`` one per reading)."""
    offsets = array("Q", map(mod, times, repeat(MS_PER_HOUR)))
    # An offset is below 2**22: shifted by 16 it stays inside its 64-bit word.
    packed = int.from_bytes(offsets.tobytes(), sys.byteorder) << 16
    return _words(packed | _fingerprint_words(digests), len(times))


def _fingerprint_words(digests: array[int]) -> int:
    """Every digest folded to 16 bits at once: ``(d ^ d >> 16 ^ d >> 32 ^ d >> 48) & 0xFFFF``,
    the XOR of its four 16-bit lanes, computed on one integer made of all the digests' 64-bit
    words (shifting it moves each word's lanes within the word: the low 16 bits of each word
    come out right, the rest is masked off). Word ``i`` of the result is fingerprint ``i``."""
    words = int.from_bytes(digests.tobytes(), sys.byteorder)
    folded = words ^ words >> 16 ^ words >> 32 ^ words >> 48
    return folded & int.from_bytes(_LOW_LANE * len(digests), sys.byteorder)


def _words(value: int, n: int) -> array[int]:
    """The ``n`` 64-bit words of an integer made by :func:`_fingerprint_words`."""
    words = array("Q")
    words.frombytes(value.to_bytes(8 * n, sys.byteorder))
    return words


_LOW_LANE = (0xFFFF).to_bytes(8, sys.byteorder)
#: ``reading[2:]``, i.e. ``(values, location)``: what a reading says, apart from who and when.
_WHAT_IT_SAYS = itemgetter(slice(2, None))
_VALUES_SAID = itemgetter(0)
_LOCATION_SAID = itemgetter(1)
# Named tuples built without their generated __new__ (a Python-level lambda).
_new = tuple.__new__
