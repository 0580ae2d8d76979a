"""A single validated measurement from one device, and the validation that produces it.

Validation is declared with pydantic (:class:`~iotpipe.domain.schema.ReadingPayload`); every
failure is translated to
an :class:`~iotpipe.domain.errors.InvalidReading` with a stable :class:`Reason` code and a
human message. The validated value is the small, immutable :class:`Reading`, whose metric values
are held in exact fixed point (see :mod:`iotpipe.domain.metrics`).
"""

from __future__ import annotations

import re
import sys
from array import array
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import chain, repeat
from operator import itemgetter, mod
from typing import Any, NamedTuple

from iotpipe.domain.errors import InvalidReading, Reason
from iotpipe.domain.metrics import METRIC_NAMES, METRICS, SCALE, from_fixed
from iotpipe.domain.time import MAX_MS, MIN_MS, MS_PER_HOUR, format_instant

DEVICE_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}"
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?P<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})?"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_ABSENT = -7  # stands for a missing value or location in fingerprints


class Location(NamedTuple):
    """Where a device was, in decimal degrees (WGS 84)."""

    lat: float
    lon: float


class Reading(NamedTuple):
    """One validated measurement: who, when (UTC epoch ms), what (fixed-point values), where.

    ``values`` is aligned with :data:`~iotpipe.domain.metrics.METRICS`; ``None`` means the
    reading does not carry that metric. A reading's identity is ``(device_id, timestamp_ms)``.
    """

    device_id: str
    timestamp_ms: int
    values: tuple[int | None, ...]
    location: Location | None = None

    @property
    def identity(self) -> tuple[str, int]:
        """What makes two readings the same reading (a resend), whatever their values."""
        return (self.device_id, self.timestamp_ms)

    @property
    def hour_ms(self) -> int:
        """Start of the reading's hourly window (UTC, epoch ms)."""
        return self.timestamp_ms - self.timestamp_ms % MS_PER_HOUR

    def value(self, metric: str) -> float | None:
        """The reading's value of a metric, at the fixed-point resolution."""
        fixed = self.values[METRIC_NAMES.index(metric)]
        return None if fixed is None else from_fixed(fixed)

    def fingerprint(self) -> int:
        """A 16-bit digest of what the reading says; tells a resend from a conflicting duplicate.

        CPython's hash of a tuple of ints and floats: not salted per process (only str and bytes
        hashes are), identical on every 64-bit platform and unchanged since Python 3.8. A golden
        test pins known values, so a change would fail loudly. A fingerprint only classifies a
        repeated identity as resend or conflict; it never decides whether a reading counts.
        :func:`fingerprints` computes the same for many readings at once.
        """
        return fingerprints((self,))[0]

    def to_json(self) -> dict[str, Any]:
        """The reading as a JSON-ready payload in the canonical input format."""
        body: dict[str, Any] = {
            "device_id": self.device_id,
            "timestamp": format_instant(self.timestamp_ms),
        }
        for metric, fixed in zip(METRICS, self.values, strict=True):
            if fixed is not None:
                body[metric.name] = from_fixed(fixed)
        if self.location is not None:
            body["location"] = {"lat": self.location.lat, "lon": self.location.lon}
        return body


def fingerprints(readings: Iterable[Reading]) -> list[int]:
    """:meth:`Reading.fingerprint` of each reading, in bulk (absorbing a window needs them all)."""
    return fingerprints_of(reading_digests(readings))


def reading_digests(readings: Iterable[Reading]) -> array[int]:
    """The 64-bit digest of what each reading says, ``hash((values, location))`` (absent parts
    hashed as constants), that its fingerprint folds."""
    said = list(map(_WHAT_IT_SAYS, readings))
    try:
        # The common case, at C speed: every reading carries a location and every metric
        # (``len(None)`` and ``None + 1`` raise, so this checks without comparing anything).
        sum(map(len, map(_LOCATION_SAID, said)))
        sum(chain.from_iterable(map(_VALUES_SAID, said)))
        return array("q", map(hash, said))
    except TypeError:
        return array("q", [_digest(s) for s in said])


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
        said = zip(zip(*values), map(location_or_none, lats, lons))  # noqa: B905
        return array("q", [_digest(s) for s in said])


def fingerprints_of(digests: array[int]) -> list[int]:
    """The fingerprints the digests fold to (see :meth:`Reading.fingerprint`)."""
    return _words(_fingerprint_words(digests), len(digests)).tolist()


def identity_keys(times: Sequence[int], digests: array[int]) -> array[int]:
    """Each reading's identity in its hourly window as an identity set packs it:
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


def location_or_none(lat: float | None, lon: float | None) -> Location | None:
    """The location at these coordinates; ``None`` where there are none."""
    return None if lat is None or lon is None else _new(Location, (lat, lon))


def _digest(said: tuple[tuple[int | None, ...], Location | None]) -> int:
    values, location = said
    if location is not None and None not in values:
        return hash(said)
    return _absent_digest(said)


def _absent_digest(said: tuple[tuple[int | None, ...], Location | None]) -> int:
    # hash(None) varies per process before Python 3.12: absent parts hash as a constant.
    values, location = said
    return hash(
        (
            tuple([_ABSENT if v is None else v for v in values]),
            _ABSENT if location is None else location,
        )
    )


#: ``reading[2:]``, i.e. ``(values, location)``: what a reading says, apart from who and when.
_WHAT_IT_SAYS = itemgetter(slice(2, None))
_VALUES_SAID = itemgetter(0)
_LOCATION_SAID = itemgetter(1)


def parse_reading(payload: object) -> Reading:
    """Validate one decoded JSON value as a reading.

    Raises :class:`InvalidReading` with the reason of the first problem found, in field order.
    """
    fast = _fast_path(payload)
    if fast is not None:
        return fast
    if not isinstance(payload, dict):
        raise InvalidReading(Reason.NOT_AN_OBJECT, "a reading must be a JSON object")
    # The declared path: imported on first use, so pydantic stays out of cold starts
    # (a Lambda that only ever sees well-formed readings never loads it).
    from iotpipe.domain.schema import validate

    return validate(payload)


def _fast_path(payload: object) -> Reading | None:  # noqa: PLR0911
    """The common, well-formed reading, validated without building a pydantic model.

    Accepts a strict subset of what :class:`ReadingPayload` accepts and returns the identical
    :class:`Reading` (a property test holds the two paths together); anything unusual, valid or
    not, returns ``None`` and takes the declared path, which also words the errors.
    """
    if type(payload) is not dict:
        return None
    device_id = payload.get("device_id")
    stamp = payload.get("timestamp")
    if type(device_id) is not str or type(stamp) is not str:
        return None
    timestamp_ms = _identity_instant(device_id, stamp)
    if timestamp_ms is None:
        return None
    values: list[int | None] = []
    present = False
    for name, low, high in _BOUNDS:
        value = payload.get(name)
        if value is None:
            values.append(None)
        elif (type(value) is float or type(value) is int) and low <= value <= high:
            values.append(round(value * SCALE))
            present = True
        else:
            return None
    if not present:
        return None
    location = payload.get("location")
    if location is not None:
        if type(location) is not dict:
            return None
        lat, lon = location.get("lat"), location.get("lon")
        if not (type(lat) is float or type(lat) is int) or not -90.0 <= lat <= 90.0:
            return None
        if not (type(lon) is float or type(lon) is int) or not -180.0 <= lon <= 180.0:
            return None
        location = _new(Location, (float(lat), float(lon)))
    return _new(Reading, (device_id, timestamp_ms, tuple(values), location))


_HOUR_TEXT = itemgetter(slice(None, 13))
_MINUTE_SECOND_TEXT = itemgetter(slice(13, 19))
_ENDING_TEXT = itemgetter(slice(19, None))


# The fast path's memory of what it has validated already. A stream repeats device ids, the
# date and hour of its timestamps, their minutes and seconds and their fraction-and-offset
# endings over and over; each piece is checked once, then found in a set or dict. The caches
# hold only pieces that passed their check, so what they hold never changes a verdict, and
# they are emptied when full: memory stays bounded whatever the input.
_CACHE_LIMIT = 100_000
#: Valid device ids, each mapped to itself (the instance every reading of the device shares).
_KNOWN_DEVICES: dict[str, str] = {}
#: ``"2025-08-31T10"`` -> epoch ms of that hour, read as UTC.
_HOURS: dict[str, int] = {}
#: ``":30:15"`` -> 1,815,000 (every minute and second of an hour, learnt on first sight).
_MINUTES_SECONDS: dict[str, int] = {}
#: ``".276Z"``, ``"Z"``, ``"+02:00"`` -> fraction in ms minus the UTC offset in ms.
_ENDINGS: dict[str, int] = {}
_HOUR_PIECE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3])")
_MINUTE_SECOND_PIECE = re.compile(r":[0-5][0-9]:[0-5][0-9]")
_ENDING_PIECE = re.compile(r"(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})")
_Y2K_MS = 946_684_800_000  # 2000-01-01T00:00:00Z, the anchor endings are measured against


def _learn_device(device_id: str) -> str | None:
    """The device id, now known, or ``None`` if it is not a valid one."""
    if _DEVICE_ID.fullmatch(device_id) is None:
        return None
    if len(_KNOWN_DEVICES) >= _CACHE_LIMIT:
        _KNOWN_DEVICES.clear()
    _KNOWN_DEVICES[device_id] = device_id
    return device_id


def _identity_instant(device_id: str, stamp: str) -> int | None:
    """The event time of a reading whose identity is well-formed, or ``None``: a valid device
    id, a timestamp in the fast path's subset, within the supported range."""
    if device_id not in _KNOWN_DEVICES and _learn_device(device_id) is None:
        return None
    timestamp_ms = _instant(stamp)
    if timestamp_ms is None or not MIN_MS <= timestamp_ms < MAX_MS:
        return None
    return timestamp_ms


def _instant(stamp: str) -> int | None:
    """Epoch ms of an RFC 3339 timestamp in the fast path's subset, or ``None``.

    The subset: ``YYYY-MM-DDTHH:MM:SS``, an optional fraction of 1-6 digits, then ``Z`` or
    ``+hh:mm``/``-hh:mm``. Its three pieces (up to the hour, minutes and seconds, the ending)
    are independent, so each is validated on its own and the instant is the sum of their values.
    """
    hour = _HOURS.get(stamp[:13])
    minute_second = _MINUTES_SECONDS.get(stamp[13:19])
    ending = _ENDINGS.get(stamp[19:])
    if hour is None or minute_second is None or ending is None:
        return _learn_instant(stamp)
    return hour + minute_second + ending


def _learn_instant(stamp: str) -> int | None:
    """Check the pieces not cached yet, remember the good ones; ``None`` if one is bad."""
    total = 0
    for piece_kind in _PIECES:
        piece = piece_kind.cut(stamp)
        value = piece_kind.cache.get(piece)
        if value is None:
            value = _learn_piece(piece_kind, piece)
            if value is None:
                return None
        total += value
    return total


class _PieceKind(NamedTuple):
    """One piece of a timestamp: its cache, how it is cut out, checked and valued."""

    cache: dict[str, int]
    cut: Any  # str -> str, at C speed
    pattern: re.Pattern[str]
    template: str  # a whole timestamp around the piece
    anchor: int  # what the piece's value is measured from


def _learn_piece(kind: _PieceKind, piece: str) -> int | None:
    """Check one piece of a timestamp and remember its value; ``None`` if it is not valid."""
    if kind.pattern.fullmatch(piece) is None:
        return None
    try:
        instant = datetime.fromisoformat(kind.template.format(piece))
    except (ValueError, OverflowError):
        return None
    value: int = (instant - _EPOCH) // _ONE_MS - kind.anchor
    if len(kind.cache) >= _CACHE_LIMIT:
        kind.cache.clear()
    kind.cache[piece] = value
    return value


_PIECES = (
    _PieceKind(_HOURS, _HOUR_TEXT, _HOUR_PIECE, "{}:00:00+00:00", 0),
    _PieceKind(
        _MINUTES_SECONDS, _MINUTE_SECOND_TEXT, _MINUTE_SECOND_PIECE, "2000-01-01T00{}Z", _Y2K_MS
    ),
    _PieceKind(_ENDINGS, _ENDING_TEXT, _ENDING_PIECE, "2000-01-01T00:00:00{}", _Y2K_MS),
)


_BOUNDS = tuple((m.name, m.minimum, m.maximum) for m in METRICS)
_NO_METRICS_MESSAGE = f"a reading carries at least one of {', '.join(METRIC_NAMES)}"
# Named tuples built without their generated __new__ (a Python-level lambda): the fast path
# makes two per reading, and every field is already checked.
_new = tuple.__new__


__all__ = [
    "Location",
    "Reading",
    "column_digests",
    "fingerprints",
    "fingerprints_of",
    "identity_keys",
    "location_or_none",
    "parse_reading",
    "reading_digests",
]
