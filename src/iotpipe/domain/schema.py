"""The pydantic declaration of a reading payload: the authoritative validation rules.

A payload is validated against a :class:`~iotpipe.domain.telemetry.TelemetrySchema`: the values
at the schema's paths (``meta.id``, ``sensors.co2``, ...) are gathered into a flat object whose
pydantic model (one per schema, built on first use) checks them. Every failure becomes an
:class:`~iotpipe.domain.errors.InvalidReading` with a stable reason code and a message naming
the declared field path, the first problem in field order (device id, timestamp, metrics,
location). :func:`~iotpipe.domain.parse_reading` takes a fast path for well-formed payloads
(:func:`~iotpipe.domain.kernels.fast_reading`) and comes here for everything else; a property
test holds the two together. This module is imported lazily, so pydantic costs nothing at
start-up.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from iotpipe.domain.errors import InvalidReading, Reason
from iotpipe.domain.metrics import Metric
from iotpipe.domain.reading import DEVICE_ID_PATTERN, Location, Reading
from iotpipe.domain.telemetry import DEFAULT_SCHEMA, TelemetrySchema, steps
from iotpipe.domain.time import MAX_MS, MIN_MS, MS_PER_SECOND, parse_instant

_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?P<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})?"
)
#: The flat object's members: its roles (each metric goes by its name, between the two).
DEVICE, TIME, LOCATION = "device_id", "timestamp", "location"


def validate(payload: dict[str, Any], schema: TelemetrySchema = DEFAULT_SCHEMA) -> Reading:
    """Validate a decoded JSON object as a reading of ``schema``, or raise
    :class:`InvalidReading`."""
    declared = declaration(schema)
    flat = declared.gather(payload)
    try:
        model = declared.model.model_validate(flat)
    except ValidationError as exc:
        raise declared.translate(exc, flat) from None
    return declared.to_reading(model)


@functools.cache
def declaration(schema: TelemetrySchema) -> Declaration:
    """The validation rules of a schema (built once per schema)."""
    return Declaration(schema)


def payload_model(schema: TelemetrySchema = DEFAULT_SCHEMA) -> type[BaseModel]:
    """The pydantic model of a schema's flat payload: one member per role (``device_id``,
    ``timestamp``, each metric by name, ``location``)."""
    return declaration(schema).model


@dataclass(frozen=True, slots=True)
class _Unreachable:
    """What a path holds when an object on its way is something else: ``up`` is that object's
    path (``"sensors"`` for ``sensors.co2`` when ``sensors`` is a number)."""

    up: str


@dataclass(frozen=True, slots=True)
class _Pair:
    """Coordinates carried as two fields of their own (no object of their own)."""

    lat: object
    lon: object


_MISSING = object()


def dig(payload: object, path: str) -> object:
    """The value at a dotted path: :data:`_MISSING` if absent (or under a null), an
    :class:`_Unreachable` if an object on the way is something else."""
    value = payload
    walked: list[str] = []
    for step in steps(path):
        if value is None:
            return _MISSING
        if not isinstance(value, dict):
            return _Unreachable(".".join(walked))
        value = value.get(step, _MISSING)
        if value is _MISSING:
            return _MISSING
        walked.append(step)
    return value


class Declaration:
    """A schema's validation rules: gathering a payload's values, the pydantic model that
    checks them, and the translation of its errors (see the module docstring)."""

    def __init__(self, schema: TelemetrySchema) -> None:
        self.schema = schema
        self.metrics = schema.accepted
        self.metric_paths = tuple(m.path for m in self.metrics)
        self.no_metrics = f"a reading carries at least one of {', '.join(self.metric_paths)}"
        self.order = (DEVICE, TIME, *(m.name for m in self.metrics), LOCATION)
        self.paths = {DEVICE: schema.device_id, TIME: schema.timestamp}
        self.paths.update({m.name: m.path for m in self.metrics})
        self.model = _build_model(self)
        self._positions = tuple(
            None if m.retired else self.metrics.index(m) for m in schema.metrics
        )

    def gather(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The flat object of the payload's values at the schema's paths (absent ones left
        out)."""
        flat: dict[str, Any] = {}
        for role, path in self.paths.items():
            value = payload.get(path, _MISSING) if "." not in path else dig(payload, path)
            if value is not _MISSING:
                flat[role] = value
        location = self._location(payload)
        if location is not _MISSING:
            flat[LOCATION] = location
        return flat

    def _location(self, payload: dict[str, Any]) -> object:
        place = self.schema.location
        if place is None:
            return _MISSING
        whole = self.schema.location_object
        if whole is not None:
            return dig(payload, whole)
        lat, lon = dig(payload, place.lat), dig(payload, place.lon)
        if lat in (_MISSING, None) and lon in (_MISSING, None):
            return _MISSING
        return _Pair(lat, lon)

    def translate(self, exc: ValidationError, flat: dict[str, Any]) -> InvalidReading:
        """The first error in field order, as a reason code and a message."""
        errors = exc.errors(include_url=False)
        order = self.order

        def rank(error: Any) -> int:
            field = error["loc"][0] if error["loc"] else ""
            return order.index(field) if field in order else len(order)

        first = min(errors, key=rank)
        field = str(first["loc"][0]) if first["loc"] else ""
        no_values = all(flat.get(m.name) is None for m in self.metrics)
        if field == LOCATION and no_values:
            return InvalidReading(Reason.NO_METRICS, self.no_metrics)
        if first["type"] == "missing" and field in (DEVICE, TIME):
            reason = Reason.MISSING_DEVICE_ID if field == DEVICE else Reason.MISSING_TIMESTAMP
            return InvalidReading(reason, f"{self.paths[field]} is required")
        try:
            reason = Reason(first["type"])
        except ValueError:
            names = {m.name for m in self.metrics}
            reason = Reason.INVALID_METRIC if field in names else Reason.NOT_AN_OBJECT
        return InvalidReading(reason, str(first["msg"]))

    def to_reading(self, model: BaseModel) -> Reading:
        """The reading a validated model holds (retired metrics are never carried)."""
        got = [getattr(model, m.name) for m in self.metrics]
        values = tuple(
            None if i is None or got[i] is None else self.metrics[i].to_fixed(got[i])
            for i in self._positions
        )
        return Reading(
            device_id=model.device_id,  # type: ignore[attr-defined]
            timestamp_ms=model.timestamp,  # type: ignore[attr-defined]
            values=values,
            location=getattr(model, LOCATION, None),
        )


# --- the rules ----------------------------------------------------------------------------------


def _unreachable(value: object, path: str, reason: Reason) -> None:
    if isinstance(value, _Unreachable):
        raise PydanticCustomError(
            reason.value, f"{value.up} must be a JSON object (it holds {path})"
        )


def _device_rule(path: str) -> Callable[[object], str]:
    def check(value: object) -> str:
        _unreachable(value, path, Reason.INVALID_DEVICE_ID)
        if not isinstance(value, str) or not _DEVICE_ID.fullmatch(value):
            raise PydanticCustomError(
                Reason.INVALID_DEVICE_ID.value,
                f"{path} must be a string of 1-128 characters from [A-Za-z0-9._:-], "
                "starting with a letter or digit",
            )
        return value

    return check


def _rfc3339_rule(path: str) -> Callable[[object], int]:
    def check(value: object) -> int:
        _unreachable(value, path, Reason.INVALID_TIMESTAMP)
        if not isinstance(value, str):
            raise PydanticCustomError(
                Reason.INVALID_TIMESTAMP.value, f"{path} must be an RFC 3339 string"
            )
        match = _RFC3339.fullmatch(value)
        if match is None:
            raise PydanticCustomError(
                Reason.INVALID_TIMESTAMP.value,
                f"{path} must be RFC 3339, e.g. 2025-08-31T10:00:00Z",
            )
        if match.group("offset") is None:
            raise PydanticCustomError(
                Reason.NAIVE_TIMESTAMP.value,
                f"{path} has no UTC offset; add Z or +hh:mm",
            )
        try:
            instant = parse_instant(value)
        except (ValueError, OverflowError):
            raise PydanticCustomError(
                Reason.INVALID_TIMESTAMP.value, f"{path} is not a real date and time"
            ) from None
        return _in_range(instant, path)

    return check


def _epoch_rule(path: str, unit_ms: int) -> Callable[[object], int]:
    unit = "seconds" if unit_ms == MS_PER_SECOND else "milliseconds"

    def check(value: object) -> int:
        _unreachable(value, path, Reason.INVALID_TIMESTAMP)
        whole = (
            not isinstance(value, bool)
            and isinstance(value, int | float)
            and math.isfinite(value)
            and value == int(value)
        )
        if not whole:
            raise PydanticCustomError(
                Reason.INVALID_TIMESTAMP.value,
                f"{path} must be a whole number of {unit} since 1970-01-01T00:00:00Z",
            )
        return _in_range(int(value) * unit_ms, path)  # type: ignore[call-overload]

    return check


def _in_range(instant: int, path: str) -> int:
    if not MIN_MS <= instant < MAX_MS:
        raise PydanticCustomError(
            Reason.INVALID_TIMESTAMP.value,
            f"{path} must lie between 1970-01-01T00:00:00Z and 9999-12-31T00:00:00Z",
        )
    return instant


def _number(value: object, what: str, low: float, high: float, reason: Reason) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError(reason.value, f"{what} must be a JSON number")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or not low <= number <= high:
        code = Reason.METRIC_OUT_OF_RANGE if reason is Reason.INVALID_METRIC else reason
        raise PydanticCustomError(code.value, f"{what} must be within [{low:g}, {high:g}]")
    return number


def _metric_rule(metric: Metric) -> Callable[[object], float | None]:
    def check(value: object) -> float | None:
        _unreachable(value, metric.path, Reason.INVALID_METRIC)
        if value is None:
            return None
        return _number(value, metric.path, metric.minimum, metric.maximum, Reason.INVALID_METRIC)

    return check


def _location_rule(schema: TelemetrySchema) -> Callable[[object], Location | None]:
    place = schema.location
    assert place is not None  # only built for schemas with a location
    whole = schema.location_object
    lat_key, lon_key = steps(place.lat)[-1], steps(place.lon)[-1]

    def check(value: object) -> Location | None:
        if value is None:
            return None
        _unreachable(value, place.lat, Reason.INVALID_LOCATION)
        if isinstance(value, _Pair):
            for part, path in ((value.lat, place.lat), (value.lon, place.lon)):
                _unreachable(part, path, Reason.INVALID_LOCATION)
            if _MISSING in (value.lat, value.lon) or None in (value.lat, value.lon):
                raise PydanticCustomError(
                    Reason.INVALID_LOCATION.value,
                    f"{place.lat} and {place.lon} must be given together",
                )
            lat, lon = value.lat, value.lon
        elif not isinstance(value, dict) or lat_key not in value or lon_key not in value:
            raise PydanticCustomError(
                Reason.INVALID_LOCATION.value,
                f'{whole} must be an object {{"{lat_key}": .., "{lon_key}": ..}}',
            )
        else:
            lat, lon = value[lat_key], value[lon_key]
        lat = _number(lat, place.lat, -90.0, 90.0, Reason.INVALID_LOCATION)
        lon = _number(lon, place.lon, -180.0, 180.0, Reason.INVALID_LOCATION)
        return Location(lat, lon)

    return check


class _ReadingBase(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, arbitrary_types_allowed=True)


def _build_model(declared: Declaration) -> type[BaseModel]:
    schema = declared.schema
    fields: dict[str, Any] = {
        DEVICE: (
            Annotated[str, BeforeValidator(_device_rule(schema.device_id))],
            Field(description="Stable device identifier; becomes part of storage keys."),
        ),
        TIME: _time_field(schema),
    }
    for metric in declared.metrics:
        fields[metric.name] = (
            Annotated[float | None, BeforeValidator(_metric_rule(metric))],
            Field(default=None, description=f"{metric.description} [{metric.unit}]"),
        )
    if schema.location is not None:
        fields[LOCATION] = (
            Annotated[
                Location | None,
                BeforeValidator(_location_rule(schema)),
                WithJsonSchema(
                    {
                        "type": ["object", "null"],
                        "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                        "required": ["lat", "lon"],
                    }
                ),
            ],
            Field(
                default=None,
                description="Where the device was: lat in [-90, 90], lon in [-180, 180].",
            ),
        )
    no_metrics = declared.no_metrics
    names = tuple(m.name for m in declared.metrics)

    def carries_a_metric(self: BaseModel) -> BaseModel:
        if all(getattr(self, name) is None for name in names):
            raise PydanticCustomError(Reason.NO_METRICS.value, no_metrics)
        return self

    validators: dict[str, Any] = {
        "carries_a_metric": model_validator(mode="after")(carries_a_metric)
    }
    return create_model(
        "ReadingPayload", __base__=_ReadingBase, __validators__=validators, **fields
    )


def _time_field(schema: TelemetrySchema) -> tuple[Any, Any]:
    path = schema.timestamp
    if schema.timestamp_format == "rfc3339":
        return (
            Annotated[
                int,
                BeforeValidator(_rfc3339_rule(path)),
                WithJsonSchema({"type": "string", "format": "date-time"}),
            ],
            Field(description="Event time, RFC 3339 with a UTC offset; kept to the millisecond."),
        )
    unit_ms = MS_PER_SECOND if schema.timestamp_format == "epoch_s" else 1
    unit = "seconds" if unit_ms == MS_PER_SECOND else "milliseconds"
    return (
        Annotated[
            int,
            BeforeValidator(_epoch_rule(path, unit_ms)),
            WithJsonSchema({"type": "integer", "minimum": 0, "maximum": (MAX_MS - 1) // unit_ms}),
        ],
        Field(description=f"Event time in whole {unit} since 1970-01-01T00:00:00Z (UTC)."),
    )


#: The pydantic declaration of the default schema's payload (one field per declared metric).
ReadingPayload = payload_model(DEFAULT_SCHEMA)
_to_reading = declaration(DEFAULT_SCHEMA).to_reading  # its former private name (tests use it)

__all__ = ["ReadingPayload", "declaration", "payload_model", "validate"]
