"""The pydantic declaration of the reading payload: the authoritative validation rules.

:func:`~iotpipe.domain.parse_reading` takes a fast path for well-formed readings
(:func:`~iotpipe.domain.kernels.fast_reading`) and comes here for everything else, which also
words the errors: each failure becomes an :class:`~iotpipe.domain.errors.InvalidReading` with a
stable reason code. A property test holds the two paths together. This module is imported
lazily, so pydantic costs nothing at start-up.
"""

from __future__ import annotations

import math
import re
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
from iotpipe.domain.metrics import METRIC_NAMES, METRICS, Metric, to_fixed
from iotpipe.domain.reading import DEVICE_ID_PATTERN, Location, Reading
from iotpipe.domain.time import MAX_MS, MIN_MS, parse_instant

_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?P<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})?"
)
_NO_METRICS_MESSAGE = f"a reading carries at least one of {', '.join(METRIC_NAMES)}"


def validate(payload: dict[str, Any]) -> Reading:
    """Validate a decoded JSON object as a reading, or raise :class:`InvalidReading`."""
    try:
        model = ReadingPayload.model_validate(payload)
    except ValidationError as exc:
        raise _translate(exc, payload) from None
    return _to_reading(model)


def _device_id(value: object) -> str:
    if not isinstance(value, str) or not _DEVICE_ID.fullmatch(value):
        raise PydanticCustomError(
            Reason.INVALID_DEVICE_ID.value,
            "device_id must be a string of 1-128 characters from [A-Za-z0-9._:-], "
            "starting with a letter or digit",
        )
    return value


def _timestamp(value: object) -> int:
    if not isinstance(value, str):
        raise PydanticCustomError(
            Reason.INVALID_TIMESTAMP.value, "timestamp must be an RFC 3339 string"
        )
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise PydanticCustomError(
            Reason.INVALID_TIMESTAMP.value,
            "timestamp must be RFC 3339, e.g. 2025-08-31T10:00:00Z",
        )
    if match.group("offset") is None:
        raise PydanticCustomError(
            Reason.NAIVE_TIMESTAMP.value,
            "timestamp has no UTC offset; add Z or +hh:mm",
        )
    try:
        instant = parse_instant(value)
    except (ValueError, OverflowError):
        raise PydanticCustomError(
            Reason.INVALID_TIMESTAMP.value, "timestamp is not a real date and time"
        ) from None
    if not MIN_MS <= instant < MAX_MS:
        raise PydanticCustomError(
            Reason.INVALID_TIMESTAMP.value,
            "timestamp must lie between 1970-01-01T00:00:00Z and 9999-12-31T00:00:00Z",
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


def _metric_validator(metric: Metric) -> Any:
    def check(value: object) -> float | None:
        if value is None:
            return None
        return _number(value, metric.name, metric.minimum, metric.maximum, Reason.INVALID_METRIC)

    return check


def _location(value: object) -> Location | None:
    if value is None:
        return None
    if not isinstance(value, dict) or "lat" not in value or "lon" not in value:
        raise PydanticCustomError(
            Reason.INVALID_LOCATION.value, 'location must be an object {"lat": .., "lon": ..}'
        )
    lat = _number(value["lat"], "location.lat", -90.0, 90.0, Reason.INVALID_LOCATION)
    lon = _number(value["lon"], "location.lon", -180.0, 180.0, Reason.INVALID_LOCATION)
    return Location(lat, lon)


class _ReadingBase(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, arbitrary_types_allowed=True)

    @model_validator(mode="after")
    def _carries_a_metric(self) -> _ReadingBase:
        if all(getattr(self, name) is None for name in METRIC_NAMES):
            raise PydanticCustomError(Reason.NO_METRICS.value, _NO_METRICS_MESSAGE)
        return self


def _build_payload_model() -> type[_ReadingBase]:
    fields: dict[str, Any] = {
        "device_id": (
            Annotated[str, BeforeValidator(_device_id)],
            Field(description="Stable device identifier; becomes part of storage keys."),
        ),
        "timestamp": (
            Annotated[
                int,
                BeforeValidator(_timestamp),
                WithJsonSchema({"type": "string", "format": "date-time"}),
            ],
            Field(description="Event time, RFC 3339 with a UTC offset; kept to the millisecond."),
        ),
    }
    for metric in METRICS:
        fields[metric.name] = (
            Annotated[float | None, BeforeValidator(_metric_validator(metric))],
            Field(default=None, description=f"{metric.description} [{metric.unit}]"),
        )
    fields["location"] = (
        Annotated[
            Location | None,
            BeforeValidator(_location),
            WithJsonSchema(
                {
                    "type": ["object", "null"],
                    "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                    "required": ["lat", "lon"],
                }
            ),
        ],
        Field(
            default=None, description="Where the device was: lat in [-90, 90], lon in [-180, 180]."
        ),
    )
    return create_model("ReadingPayload", __base__=_ReadingBase, **fields)


#: The pydantic declaration of the reading payload (one field per declared metric).
ReadingPayload = _build_payload_model()

_FIELD_ORDER = ("device_id", "timestamp", *METRIC_NAMES, "location")
_MISSING = {"device_id": Reason.MISSING_DEVICE_ID, "timestamp": Reason.MISSING_TIMESTAMP}


def _translate(exc: ValidationError, payload: dict[str, Any]) -> InvalidReading:
    errors = exc.errors(include_url=False)

    def rank(error: Any) -> int:
        field = error["loc"][0] if error["loc"] else ""
        return _FIELD_ORDER.index(field) if field in _FIELD_ORDER else len(_FIELD_ORDER)

    first = min(errors, key=rank)
    field = str(first["loc"][0]) if first["loc"] else ""
    if field == "location" and all(payload.get(name) is None for name in METRIC_NAMES):
        return InvalidReading(Reason.NO_METRICS, _NO_METRICS_MESSAGE)
    if first["type"] == "missing" and field in _MISSING:
        return InvalidReading(_MISSING[field], f"{field} is required")
    try:
        reason = Reason(first["type"])
    except ValueError:
        reason = Reason.INVALID_METRIC if field in METRIC_NAMES else Reason.NOT_AN_OBJECT
    return InvalidReading(reason, str(first["msg"]))


def _to_reading(model: _ReadingBase) -> Reading:
    values = tuple(
        None if (v := getattr(model, name)) is None else to_fixed(v) for name in METRIC_NAMES
    )
    return Reading(
        device_id=model.device_id,  # type: ignore[attr-defined]
        timestamp_ms=model.timestamp,  # type: ignore[attr-defined]
        values=values,
        location=model.location,  # type: ignore[attr-defined]
    )


__all__ = ["ReadingPayload", "validate"]
