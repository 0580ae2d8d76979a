"""A single validated measurement from one device, and the validation that produces it.

Validation is declared with pydantic (:class:`~iotpipe.domain.schema.ReadingPayload`); every
failure is translated to
an :class:`~iotpipe.domain.errors.InvalidReading` with a stable :class:`Reason` code and a
human message. The validated value is the small, immutable :class:`Reading`, whose metric values
are held in exact fixed point (see :mod:`iotpipe.domain.metrics`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
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
# The fast path's stricter subset: upper-case T and Z, at most microsecond fractions.
_FAST_STAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})"
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
        """
        values = self.values
        if None in values:  # hash(None) varies per process before Python 3.12
            values = tuple([_ABSENT if v is None else v for v in values])
        location = self.location
        digest = hash((values, _ABSENT if location is None else location))
        return (digest ^ digest >> 16 ^ digest >> 32 ^ digest >> 48) & 0xFFFF

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


def _fast_path(payload: object) -> Reading | None:  # noqa: PLR0911, PLR0912
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
    if _DEVICE_ID.fullmatch(device_id) is None or _FAST_STAMP.fullmatch(stamp) is None:
        return None
    try:
        timestamp_ms = (datetime.fromisoformat(stamp) - _EPOCH) // _ONE_MS
    except (ValueError, OverflowError):
        return None
    if not MIN_MS <= timestamp_ms < MAX_MS:
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


_BOUNDS = tuple((m.name, m.minimum, m.maximum) for m in METRICS)
_NO_METRICS_MESSAGE = f"a reading carries at least one of {', '.join(METRIC_NAMES)}"
# Named tuples built without their generated __new__ (a Python-level lambda): the fast path
# makes two per reading, and every field is already checked.
_new = tuple.__new__


__all__ = ["Location", "Reading", "parse_reading"]
