"""A declared telemetry schema: where a fleet's payload carries what iotpipe aggregates.

A :class:`TelemetrySchema` says where a JSON payload keeps its device id and event time (and in
which format), optionally its position, and each :class:`~iotpipe.domain.metrics.Metric`
(dotted paths such as ``"meta.id"`` or ``"sensors.co2"``). It is a frozen, validated value: the
plain definition (validation, aggregation, presentation) takes it as data, and the fast path's
decoders are generated from it. :data:`DEFAULT_SCHEMA` is the original payload (temperature,
humidity, location, RFC 3339 timestamps), whose stored output is unchanged.

A store remembers each metric's unit and resolution (:mod:`iotpipe.domain.evolution`), because
its stored sums are exact only at the resolution they were made at: a schema may add metrics
(old windows simply lack them) or drop some (they stay readable as retired metrics), never
change a stored metric's unit or resolution.

The domain reads no files: :mod:`iotpipe.adapters.schema_file` builds schemas from TOML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NamedTuple

from iotpipe.domain.errors import IotPipeError
from iotpipe.domain.metrics import METRICS, InvalidSchema, Metric

TimeFormat = Literal["rfc3339", "epoch_s", "epoch_ms"]
#: The event time formats a schema may declare.
TIME_FORMATS: tuple[TimeFormat, ...] = ("rfc3339", "epoch_s", "epoch_ms")
#: At most this many metrics (each adds a little to every stored window).
MAX_METRICS = 64
#: One step of a dotted path: any characters but dots, whitespace and control characters.
_STEP = re.compile(r"[^.\s\x00-\x1f\x7f]{1,128}")


class SchemaConflict(IotPipeError):
    """A schema that would break a store's exact sums (a stored metric's unit or resolution
    changed): refused at start-up, with what to do instead."""


class SchemaRecordChanged(IotPipeError):
    """Another process changed the store's schema record between our read and our write."""


def steps(path: str) -> tuple[str, ...]:
    """The keys of a dotted path, outermost first (``"pos.lat"`` -> ``("pos", "lat")``)."""
    return tuple(path.split("."))


class LocationPaths(NamedTuple):
    """Where a payload carries its position: the paths of latitude and longitude."""

    lat: str = "location.lat"
    lon: str = "location.lon"

    @property
    def parent(self) -> str | None:
        """The object holding both coordinates, when they share one (``"location"``)."""
        lat, lon = steps(self.lat), steps(self.lon)
        if len(lat) > 1 and lat[:-1] == lon[:-1]:
            return ".".join(lat[:-1])
        return None


_DEFAULT_LOCATION = LocationPaths()


@dataclass(frozen=True, slots=True)
class TelemetrySchema:
    """What a fleet's payload carries and where (see the module docstring).

    ``metrics`` are in declaration order, which is the order of a reading's values and of an
    aggregate's moments. Retired metrics (kept for their stored aggregates) come last.
    """

    metrics: tuple[Metric, ...]
    device_id: str = "device_id"
    timestamp: str = "timestamp"
    timestamp_format: TimeFormat = "rfc3339"
    location: LocationPaths | None = _DEFAULT_LOCATION
    title: str = ""
    names: tuple[str, ...] = field(init=False, compare=False, repr=False)
    _hash: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", tuple(self.metrics))
        object.__setattr__(self, "names", tuple(m.name for m in self.metrics))
        _check_schema(self)
        object.__setattr__(self, "_hash", hash(self._fields()))

    def __hash__(self) -> int:
        # Computed once: the fast paths find their decoders by schema, once per call.
        return self._hash

    def __reduce__(self) -> tuple[Any, tuple[object, ...]]:
        # Rebuilt (and its hash computed afresh) where it is unpickled: a string's hash differs
        # from process to process (Beam's workers receive schemas pickled).
        return (TelemetrySchema, self._fields())

    def _fields(self) -> tuple[object, ...]:
        return (
            self.metrics,
            self.device_id,
            self.timestamp,
            self.timestamp_format,
            self.location,
            self.title,
        )

    @property
    def accepted(self) -> tuple[Metric, ...]:
        """The metrics payloads may carry (all but the retired ones)."""
        return tuple(m for m in self.metrics if not m.retired)

    @property
    def location_object(self) -> str | None:
        """The object that holds the coordinates and nothing else the schema reads
        (``"location"`` by default), if there is one: a payload gives it whole ``{lat, lon}``
        or not at all. Otherwise each coordinate is a field of its own, and the two come
        together or not at all."""
        parent = None if self.location is None else self.location.parent
        if parent is None:
            return None
        inside = [path for _, path in _paths(self) if path.startswith(parent + ".")]
        return parent if len(inside) == 2 else None

    @property
    def is_default(self) -> bool:
        """Whether this is :data:`DEFAULT_SCHEMA` (the original payload)."""
        return self == DEFAULT_SCHEMA

    def metric(self, name: str) -> Metric:
        """The metric of this name (``KeyError`` if none)."""
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise KeyError(name)

    def canonical(self) -> TelemetrySchema:
        """The schema of the canonical reading format, which iotpipe writes (a stored window's
        latest reading, the API's latest reading): ``device_id``, an RFC 3339 ``timestamp``,
        each metric by name (retired ones included) and ``location`` ``{lat, lon}``."""
        canonical = _CANONICAL.get(self)
        if canonical is None:
            metrics = tuple(replace(m, path=m.name, retired=False) for m in self.metrics)
            location = None if self.location is None else LocationPaths()
            canonical = TelemetrySchema(metrics, location=location, title=self.title)
            _CANONICAL[self] = canonical
        return canonical

    def to_json(self) -> dict[str, Any]:
        """The declaration as JSON-ready data, in the shape of the TOML file (``GET
        /v1/schema``, the dashboard); retired metrics are marked ``"retired": true``."""
        body: dict[str, Any] = {
            "title": self.title,
            "device_id": {"field": self.device_id},
            "timestamp": {"field": self.timestamp, "format": self.timestamp_format},
        }
        if self.location is not None:
            body["location"] = {"lat": self.location.lat, "lon": self.location.lon}
        body["metrics"] = [_metric_json(m) for m in self.metrics]
        return body


def _metric_json(metric: Metric) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": metric.name,
        "field": metric.path,
        "unit": metric.unit,
        "minimum": metric.minimum,
        "maximum": metric.maximum,
        "resolution": float(metric.resolution),
        "description": metric.description,
    }
    if metric.retired:
        body["retired"] = True
    return body


def _check_schema(schema: TelemetrySchema) -> None:
    if schema.timestamp_format not in TIME_FORMATS:
        raise InvalidSchema(
            f"timestamp format {schema.timestamp_format!r} is not one of {', '.join(TIME_FORMATS)}"
        )
    if not schema.metrics:
        raise InvalidSchema("a schema declares at least one metric")
    if len(schema.metrics) > MAX_METRICS:
        raise InvalidSchema(f"a schema declares at most {MAX_METRICS} metrics")
    if not schema.accepted:
        raise InvalidSchema("a schema declares at least one metric that is not retired")
    seen: set[str] = set()
    for name in schema.names:
        if name in seen:
            raise InvalidSchema(f"metric {name!r} is declared twice")
        seen.add(name)
    _check_paths(_paths(schema))


def _paths(schema: TelemetrySchema) -> list[tuple[str, str]]:
    """(what, path) of every value the schema reads from a payload."""
    paths = [("device_id", schema.device_id), ("timestamp", schema.timestamp)]
    if schema.location is not None:
        paths += [("location lat", schema.location.lat), ("location lon", schema.location.lon)]
    paths += [(f"metric {m.name!r}", m.path) for m in schema.accepted]
    return paths


def _check_paths(paths: list[tuple[str, str]]) -> None:
    for what, path in paths:
        if not isinstance(path, str) or not all(map(_STEP.fullmatch, path.split("."))):
            raise InvalidSchema(
                f"{what}: field {path!r} must be a dotted path of non-empty keys without "
                "whitespace (e.g. 'sensors.co2')"
            )
    for i, (what, path) in enumerate(paths):
        for other_what, other in paths[i + 1 :]:
            if path == other:
                raise InvalidSchema(f"{what} and {other_what} both read field {path!r}")
            inner, outer = (path, other) if len(path) > len(other) else (other, path)
            if inner.startswith(outer + "."):
                raise InvalidSchema(
                    f"field {outer!r} cannot hold a value and also the object of {inner!r}"
                )


_CANONICAL: dict[TelemetrySchema, TelemetrySchema] = {}  # made once per schema

#: The original payload: ``device_id``, an RFC 3339 ``timestamp``, temperature and humidity at
#: 0.001, and ``location`` ``{lat, lon}``. Its stored output is what iotpipe always stored.
DEFAULT_SCHEMA = TelemetrySchema(METRICS, title="iotpipe default")

__all__ = [
    "DEFAULT_SCHEMA",
    "TIME_FORMATS",
    "InvalidSchema",
    "LocationPaths",
    "SchemaConflict",
    "SchemaRecordChanged",
    "TelemetrySchema",
    "steps",
]
