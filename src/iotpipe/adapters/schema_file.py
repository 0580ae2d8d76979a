"""Telemetry schema files: TOML in, a validated :class:`~iotpipe.domain.TelemetrySchema` out.

The domain reads no files; this adapter reads one with the standard library's ``tomllib``.
A file declares where a fleet's payload carries each value (see ``docs/usage.md``, "Your own
payload", and :data:`FILE_JSON_SCHEMA`, published as
``docs/schema/telemetry-schema.schema.json``)::

    title = "greenhouses"        # optional: shown by the API documents and the dashboard

    [device_id]
    field = "meta.id"            # dotted path into the JSON object; default "device_id"

    [timestamp]
    field = "ts"                 # default "timestamp"
    format = "epoch_ms"          # "rfc3339" (default), "epoch_s" or "epoch_ms"

    [location]                   # optional: omit it for fleets without positions
    lat = "pos.lat"
    lon = "pos.lon"

    [[metrics]]                  # one table per metric, in the order aggregates list them
    name = "co2"                 # the name in stored aggregates, the API and the CLI output
    field = "sensors.co2"        # default: the name
    unit = "ppm"
    minimum = 0
    maximum = 40000
    resolution = 0.1             # a power of ten; default 0.001
    description = "CO2 concentration"

    [metrics.simulate]           # optional: what `iotpipe simulate` makes of the metric
    typical = [420, 1200]        # each device's level is drawn from this range
    daily = 150                  # swing over the day (negative: against the sun)
    noise = 20                   # standard deviation of the noise

Every key is checked: an unknown key (a typo) is an error, as is a wrong type, a path that
collides with another or a resolution that is not a power of ten. Errors name the file and the
key: :class:`SchemaFileError`.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from iotpipe.domain import InvalidSchema, LocationPaths, Metric, TelemetrySchema
from iotpipe.domain.metrics import DEFAULT_EXPONENT, Simulation, exponent_of
from iotpipe.domain.telemetry import TIME_FORMATS


class SchemaFileError(InvalidSchema):
    """A schema file that cannot be read or used; the message names the file and the key."""


def load_schema(path: str | Path) -> TelemetrySchema:
    """The schema a TOML file declares, or :class:`SchemaFileError` saying what is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaFileError(f"{path}: cannot read the schema file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SchemaFileError(f"{path}: the schema file is not UTF-8 text") from None
    return parse_schema(text, str(path))


def parse_schema(text: str, source: str = "<schema>") -> TelemetrySchema:
    """The schema a TOML document declares (``source`` names it in errors)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SchemaFileError(f"{source}: not valid TOML: {exc}") from None
    try:
        return schema_from_data(data)
    except InvalidSchema as exc:
        raise SchemaFileError(f"{source}: {exc}") from None


def schema_from_data(data: Mapping[str, Any]) -> TelemetrySchema:
    """The schema of a decoded schema file (TOML, or the same structure as JSON)."""
    _known(data, _TOP, "the file")
    device = _table(data, "device_id")
    _known(device, {"field"}, "[device_id]")
    time = _table(data, "timestamp")
    _known(time, {"field", "format"}, "[timestamp]")
    fmt = _text(time, "format", "[timestamp]", "rfc3339")
    if fmt not in TIME_FORMATS:
        raise InvalidSchema(f"[timestamp] format {fmt!r} is not one of {', '.join(TIME_FORMATS)}")
    metrics = data.get("metrics")
    if not isinstance(metrics, list) or not metrics:
        raise InvalidSchema("declare at least one metric: a [[metrics]] table with name and unit")
    return TelemetrySchema(
        tuple(_metric(m, i) for i, m in enumerate(metrics, start=1)),
        device_id=_text(device, "field", "[device_id]", "device_id"),
        timestamp=_text(time, "field", "[timestamp]", "timestamp"),
        timestamp_format=fmt,  # checked above
        location=_location(data),
        title=_text(data, "title", "the file", ""),
    )


def _location(data: Mapping[str, Any]) -> LocationPaths | None:
    if "location" not in data:
        return None
    place = _table(data, "location")
    _known(place, {"lat", "lon"}, "[location]")
    for key in ("lat", "lon"):
        if key not in place:
            raise InvalidSchema("[location] needs both lat and lon (the paths of each)")
    return LocationPaths(
        _text(place, "lat", "[location]", ""), _text(place, "lon", "[location]", "")
    )


def _metric(data: object, number: int) -> Metric:
    where = f"[[metrics]] #{number}"
    if not isinstance(data, dict):
        raise InvalidSchema(f"{where} must be a table")
    if isinstance(data.get("name"), str):
        where += f" ({data['name']})"
    _known(data, _METRIC, where)
    for key in ("name", "unit", "minimum", "maximum"):
        if key not in data:
            raise InvalidSchema(f"{where} needs {key}")
    resolution = data.get("resolution")
    exponent = DEFAULT_EXPONENT
    if resolution is not None:
        if not _is_number(resolution):
            raise InvalidSchema(f"{where}: resolution must be a number (a power of ten)")
        exponent = exponent_of(resolution)
    return Metric(
        name=_text(data, "name", where, ""),
        unit=_text(data, "unit", where, ""),
        minimum=_number(data, "minimum", where),
        maximum=_number(data, "maximum", where),
        description=_text(data, "description", where, ""),
        path=_text(data, "field", where, ""),
        exponent=exponent,
        simulation=_simulation(data.get("simulate"), where),
    )


def _simulation(data: object, where: str) -> Simulation | None:
    if data is None:
        return None
    where += " simulate"
    if not isinstance(data, dict):
        raise InvalidSchema(f"{where} must be a table")
    _known(data, {"typical", "daily", "noise"}, where)
    typical = data.get("typical")
    if (
        not isinstance(typical, list)
        or len(typical) != 2
        or not all(map(_is_number, typical))
        or not typical[0] <= typical[1]
    ):
        raise InvalidSchema(f"{where}: typical must be [low, high], two numbers, low <= high")
    return Simulation(
        (float(typical[0]), float(typical[1])),
        _number(data, "daily", where, 0.0),
        _number(data, "noise", where, 0.0),
    )


def _known(data: Mapping[str, Any], keys: set[str], where: str) -> None:
    unknown = sorted(set(data) - keys)
    if unknown:
        raise InvalidSchema(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(keys))})"
        )


def _table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise InvalidSchema(f"[{key}] must be a table")
    return value


def _text(data: Mapping[str, Any], key: str, where: str, default: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise InvalidSchema(f"{where}: {key} must be a string")
    return value


def _number(data: Mapping[str, Any], key: str, where: str, default: float | None = None) -> float:
    value = data.get(key, default)
    if not _is_number(value):
        raise InvalidSchema(f"{where}: {key} must be a finite number")
    return float(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


_TOP = {"title", "device_id", "timestamp", "location", "metrics"}
_METRIC = {"name", "field", "unit", "minimum", "maximum", "resolution", "description", "simulate"}


# --- writing --------------------------------------------------------------------------------------


def dump_schema(schema: TelemetrySchema) -> str:
    """The schema as a TOML file :func:`parse_schema` reads back to an equal schema (retired
    metrics are not written: a store remembers them)."""
    lines = [f"title = {_toml(schema.title)}", ""] if schema.title else []
    lines += ["[device_id]", f"field = {_toml(schema.device_id)}", ""]
    lines += [
        "[timestamp]",
        f"field = {_toml(schema.timestamp)}",
        f"format = {_toml(schema.timestamp_format)}",
        "",
    ]
    if schema.location is not None:
        lat, lon = schema.location
        lines += ["[location]", f"lat = {_toml(lat)}", f"lon = {_toml(lon)}", ""]
    for metric in schema.accepted:
        lines += _metric_lines(metric)
    return "\n".join(lines)


def _metric_lines(metric: Metric) -> list[str]:
    lines = [
        "[[metrics]]",
        f"name = {_toml(metric.name)}",
        f"field = {_toml(metric.path)}",
        f"unit = {_toml(metric.unit)}",
        f"minimum = {_toml(metric.minimum)}",
        f"maximum = {_toml(metric.maximum)}",
        f"resolution = {metric.resolution}",
        f"description = {_toml(metric.description)}",
    ]
    if metric.simulation is not None:
        (low, high), daily, noise = metric.simulation
        lines += [
            "",
            "[metrics.simulate]",
            f"typical = [{_toml(low)}, {_toml(high)}]",
            f"daily = {_toml(daily)}",
            f"noise = {_toml(noise)}",
        ]
    return [*lines, ""]


def _toml(value: str | float) -> str:
    if isinstance(value, str):
        import json

        return json.dumps(value, ensure_ascii=False)  # a TOML basic string is a JSON string
    return repr(float(value))


# --- the file's own JSON Schema -------------------------------------------------------------------

_PATH = {
    "type": "string",
    "pattern": r"^[^.\s]+(\.[^.\s]+)*$",
    "description": "A dotted path into the payload's JSON object, e.g. `sensors.co2`.",
}

#: The JSON Schema of a schema file (TOML read as JSON), published as
#: ``docs/schema/telemetry-schema.schema.json``.
FILE_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "iotpipe telemetry schema file",
    "description": "Where a fleet's JSON payload carries its device id, event time, position "
    "and metrics, and how each metric is kept (TOML; see docs/usage.md, 'Your own payload').",
    "type": "object",
    "additionalProperties": False,
    "required": ["metrics"],
    "properties": {
        "title": {"type": "string", "description": "A name for the fleet's payload."},
        "device_id": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"field": {**_PATH, "default": "device_id"}},
        },
        "timestamp": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "field": {**_PATH, "default": "timestamp"},
                "format": {
                    "enum": list(TIME_FORMATS),
                    "default": "rfc3339",
                    "description": "RFC 3339 with an offset, or whole seconds or milliseconds "
                    "since 1970-01-01T00:00:00Z.",
                },
            },
        },
        "location": {
            "type": "object",
            "additionalProperties": False,
            "required": ["lat", "lon"],
            "description": "Omit it for fleets without positions.",
            "properties": {"lat": _PATH, "lon": _PATH},
        },
        "metrics": {
            "type": "array",
            "minItems": 1,
            "maxItems": 64,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "unit", "minimum", "maximum"],
                "properties": {
                    "name": {
                        "type": "string",
                        "pattern": r"^[A-Za-z][A-Za-z0-9_]{0,63}$",
                        "not": {
                            "enum": [
                                "count",
                                "first",
                                "last",
                                "location",
                                "device_id",
                                "hour",
                                "day",
                            ]
                        },
                        "description": "The name in stored aggregates, the API and the CLI output.",
                    },
                    "field": {
                        **_PATH,
                        "description": "Where payloads carry it (default: the name).",
                    },
                    "unit": {"type": "string"},
                    "minimum": {"type": "number"},
                    "maximum": {"type": "number"},
                    "resolution": {
                        "type": "number",
                        "enum": [float(f"1e{e}") for e in range(-9, 7)],
                        "default": 0.001,
                        "description": "A power of ten: values are kept exactly at it.",
                    },
                    "description": {"type": "string"},
                    "simulate": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["typical"],
                        "properties": {
                            "typical": {
                                "type": "array",
                                "items": {"type": "number"},
                                "minItems": 2,
                                "maxItems": 2,
                            },
                            "daily": {"type": "number", "default": 0},
                            "noise": {"type": "number", "default": 0},
                        },
                    },
                },
            },
        },
    },
}

__all__ = [
    "FILE_JSON_SCHEMA",
    "SchemaFileError",
    "dump_schema",
    "load_schema",
    "parse_schema",
    "schema_from_data",
]
