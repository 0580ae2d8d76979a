"""The common, well-formed reading payload, validated without building a pydantic model.

:func:`fast_reading` accepts a strict subset of what
:class:`~iotpipe.domain.schema.ReadingPayload` accepts and returns the identical
:class:`~iotpipe.domain.reading.Reading` (a property test holds the two together); anything
unusual, valid or not, returns ``None`` and takes the declared path, which also words the errors.
"""

from __future__ import annotations

from typing import Any

from iotpipe.domain.kernels.stamps import STAMPS
from iotpipe.domain.metrics import METRICS, SCALE
from iotpipe.domain.reading import Location, Reading

_BOUNDS = tuple((m.name, m.minimum, m.maximum) for m in METRICS)
# Named tuples built without their generated __new__ (a Python-level lambda): the fast path
# makes two per reading, and every field is already checked.
_new = tuple.__new__


def fast_reading(payload: object) -> Reading | None:
    """The reading a plain, valid payload holds; ``None`` for any other payload."""
    if type(payload) is not dict:
        return None
    device_id, stamp = payload.get("device_id"), payload.get("timestamp")
    if type(device_id) is not str or type(stamp) is not str:
        return None
    timestamp_ms = STAMPS.instant(stamp)
    device = STAMPS.device(device_id)
    values = _values(payload)
    location = _location(payload.get("location"))
    if timestamp_ms is None or device is None or values is None or location is _NOT_PLAIN:
        return None
    return _new(Reading, (device_id, timestamp_ms, values, location))


def _values(payload: dict[str, Any]) -> tuple[int | None, ...] | None:
    """The fixed-point values, if each is absent or a number in range and one is present."""
    values: list[int | None] = []
    for name, low, high in _BOUNDS:
        value = payload.get(name)
        if value is None:
            values.append(None)
        elif (type(value) is float or type(value) is int) and low <= value <= high:
            values.append(round(value * SCALE))
        else:
            return None
    return None if values.count(None) == len(values) else tuple(values)


def _location(place: object) -> Location | object | None:
    """The location (``None``: none given), or :data:`_NOT_PLAIN`."""
    if place is None:
        return None
    if type(place) is not dict:
        return _NOT_PLAIN
    lat, lon = place.get("lat"), place.get("lon")
    if not (type(lat) is float or type(lat) is int) or not -90.0 <= lat <= 90.0:
        return _NOT_PLAIN
    if not (type(lon) is float or type(lon) is int) or not -180.0 <= lon <= 180.0:
        return _NOT_PLAIN
    return _new(Location, (float(lat), float(lon)))


_NOT_PLAIN = object()
