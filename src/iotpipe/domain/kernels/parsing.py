"""The common, well-formed reading payload, validated without building a pydantic model.

:func:`fast_reading` accepts a strict subset of what the declared rules
(:mod:`iotpipe.domain.schema`) accept for a schema and returns the identical
:class:`~iotpipe.domain.reading.Reading` (a property test holds the two together); anything
unusual, valid or not, returns ``None`` and takes the declared path, which also words the errors.
What to read where is worked out once per schema (:class:`_Plan`), not per payload.
"""

from __future__ import annotations

from typing import Any

from iotpipe.domain.kernels.stamps import STAMPS
from iotpipe.domain.reading import Location, Reading
from iotpipe.domain.telemetry import DEFAULT_SCHEMA, TelemetrySchema, steps
from iotpipe.domain.time import MAX_MS, MIN_MS

# Named tuples built without their generated __new__ (a Python-level lambda): the fast path
# makes two per reading, and every field is already checked.
_new = tuple.__new__

#: A path as the plan reads it: the key itself at the top level, else the tuple of its keys.
_Path = str | tuple[str, ...]


def fast_reading(payload: object, schema: TelemetrySchema = DEFAULT_SCHEMA) -> Reading | None:
    """The reading a plain, valid payload of ``schema`` holds; ``None`` for any other payload."""
    if type(payload) is not dict:
        return None
    plan = _PLANS.get(schema) or _plan(schema)
    device_id, stamp = _get(payload, plan.device), _get(payload, plan.time)
    if type(device_id) is not str:
        return None
    timestamp_ms = plan.instant(stamp)
    device = STAMPS.device(device_id)
    values = _values(payload, plan)
    location = _location(payload, plan)
    if timestamp_ms is None or device is None or values is None or location is _NOT_PLAIN:
        return None
    return _new(Reading, (device_id, timestamp_ms, values, location))


class _Plan:
    """What :func:`fast_reading` reads where, for one schema."""

    def __init__(self, schema: TelemetrySchema) -> None:
        self.device = _path(schema.device_id)
        self.time = _path(schema.timestamp)
        self.instant = _INSTANTS[schema.timestamp_format]
        # Per metric: its path (None: retired, never read), bounds and scale (a multiplier,
        # or a divisor for resolutions coarser than 1).
        self.metrics = tuple(
            (
                None if m.retired else _path(m.path),
                m.minimum,
                m.maximum,
                10 ** abs(m.exponent),
                m.exponent > 0,
            )
            for m in schema.metrics
        )
        self.accepted = len(schema.accepted)
        place = schema.location
        whole = schema.location_object
        self.place: _Path | None = None if whole is None else _path(whole)
        self.lat = (
            None if place is None else _path(place.lat if whole is None else steps(place.lat)[-1])
        )
        self.lon = (
            None if place is None else _path(place.lon if whole is None else steps(place.lon)[-1])
        )


def _plan(schema: TelemetrySchema) -> _Plan:
    plan = _PLANS[schema] = _Plan(schema)
    return plan


def _path(path: str) -> _Path:
    keys = steps(path)
    return keys[0] if len(keys) == 1 else keys


def _get(payload: dict[str, Any], path: _Path) -> object:
    """The value at a path; ``None`` if absent, :data:`_NOT_PLAIN` if an object on the way is
    something else."""
    if type(path) is str:
        return payload.get(path)
    value: object = payload
    for key in path:
        if value is None:
            return None
        if type(value) is not dict:
            return _NOT_PLAIN
        value = value.get(key)
    return value


def _values(payload: dict[str, Any], plan: _Plan) -> tuple[int | None, ...] | None:
    """The fixed-point values, if each is absent or a number in range and one is present."""
    values: list[int | None] = []
    for path, low, high, scale, coarse in plan.metrics:
        value = None if path is None else _get(payload, path)
        if value is None:
            values.append(None)
        elif (type(value) is float or type(value) is int) and low <= value <= high:
            values.append(round(value / scale) if coarse else round(value * scale))
        else:
            return None
    return None if values.count(None) == len(values) else tuple(values)


def _location(payload: dict[str, Any], plan: _Plan) -> Location | object | None:
    """The location (``None``: none given), or :data:`_NOT_PLAIN`."""
    given = _coordinates(payload, plan)
    if given is None or given is _NOT_PLAIN:
        return given
    lat, lon = given
    if not (type(lat) is float or type(lat) is int) or not -90.0 <= lat <= 90.0:
        return _NOT_PLAIN
    if not (type(lon) is float or type(lon) is int) or not -180.0 <= lon <= 180.0:
        return _NOT_PLAIN
    return _new(Location, (float(lat), float(lon)))


def _coordinates(payload: dict[str, Any], plan: _Plan) -> Any:
    """The two coordinates as given (``None``: no location), or :data:`_NOT_PLAIN`."""
    if plan.lat is None or plan.lon is None:
        return None
    if plan.place is not None:  # an object of its own: {lat, lon} or nothing
        place = _get(payload, plan.place)
        if place is None or type(place) is not dict:
            return None if place is None else _NOT_PLAIN
        return place.get(plan.lat), place.get(plan.lon)
    lat, lon = _get(payload, plan.lat), _get(payload, plan.lon)  # two fields of their own
    return None if lat is None and lon is None else (lat, lon)


def _epoch(unit_ms: int) -> Any:
    def instant(stamp: object) -> int | None:
        if type(stamp) is not int:
            return None
        ms = stamp * unit_ms
        return ms if MIN_MS <= ms < MAX_MS else None

    return instant


def _rfc3339(stamp: object) -> int | None:
    return STAMPS.instant(stamp) if type(stamp) is str else None


_INSTANTS = {"rfc3339": _rfc3339, "epoch_s": _epoch(1000), "epoch_ms": _epoch(1)}
_NOT_PLAIN = object()
#: Each schema's plan, made on first use (a deployment has one schema; tests a few).
_PLANS: dict[TelemetrySchema, _Plan] = {}
