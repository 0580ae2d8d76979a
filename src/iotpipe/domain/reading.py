"""A single validated measurement from one device, and the validation that produces it.

Validation is declared with pydantic (:class:`ReadingPayload`); every failure is translated to
an :class:`~iotpipe.domain.errors.InvalidReading` with a stable :class:`Reason` code and a
human message. The validated value is the small, immutable :class:`Reading`, whose metric values
are held in exact fixed point (see :mod:`iotpipe.domain.metrics`).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NamedTuple

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
from iotpipe.domain.metrics import METRIC_NAMES, METRICS, SCALE, Metric, from_fixed, to_fixed
from iotpipe.domain.time import MAX_MS, MIN_MS, MS_PER_HOUR, format_instant, parse_instant

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
    try:
        model = ReadingPayload.model_validate(payload)
    except ValidationError as exc:
        raise _translate(exc, payload) from None
    return _to_reading(model)


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


# --- the pydantic declaration ----------------------------------------------------------------


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


__all__ = ["Location", "Reading", "ReadingPayload", "parse_reading"]
