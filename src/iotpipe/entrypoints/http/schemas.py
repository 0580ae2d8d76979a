"""The pydantic models of request and response bodies: the API's data contract.

The OpenAPI document's schemas are generated from these models, and with
``AnalyticsApi(check_responses=True)`` (as the tests run it) every response is validated
against its route's model before it leaves. The aggregate and reading models are built per
telemetry schema (:func:`models`: each declared metric by name, with its unit), like
:mod:`iotpipe.application.views` that renders them, so a metric appears in both at once.

This module imports pydantic and is loaded only when the document is generated or responses are
checked: serving a query never pays for it on a cold start.
"""

from __future__ import annotations

import copy
import functools
from datetime import date
from enum import Enum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, create_model

from iotpipe.domain import DEFAULT_SCHEMA, Metric, Reason, TelemetrySchema
from iotpipe.domain.reading import DEVICE_ID_PATTERN
from iotpipe.domain.schema import payload_model
from iotpipe.entrypoints.http.params import MAX_CURSOR_LENGTH
from iotpipe.entrypoints.http.problems import CATALOGUE


def _no_default(schema: dict[str, Any]) -> None:
    # An optional member that is omitted, never null: the document shows no null default.
    schema.pop("default", None)


class _Body(BaseModel):
    # Responses carry exactly the declared members: the document says additionalProperties
    # false, so a member added to a view without its model fails the conformance tests.
    model_config = ConfigDict(extra="forbid")


DeviceId = Field(pattern=f"^{DEVICE_ID_PATTERN}$", max_length=128, examples=["iot-sensor-001"])
Cursor = Field(
    description="Cursor of the next page; `null` on the last page.",
    max_length=MAX_CURSOR_LENGTH,
)


class MetricSummary(_Body):
    """A metric over a window: how many readings carried it, and their statistics."""

    count: int = Field(ge=0)
    mean: float | None
    min: float | None
    max: float | None
    stddev: float | None = Field(description="Population standard deviation.")


class LatLon(_Body):
    """A position in decimal degrees (WGS 84)."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


def _metric_text(metric: Metric) -> str:
    retired = (
        " Retired: no longer declared; its stored aggregates are kept." if metric.retired else ""
    )
    return (
        f"{metric.description} Unit: `{metric.unit}`; kept exactly at {metric.resolution}.{retired}"
    ).strip()


def _stats_fields(schema: TelemetrySchema) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "count": (int, Field(ge=0, description="Distinct readings counted.")),
        "first": (AwareDatetime | None, Field(description="Earliest event time.")),
        "last": (AwareDatetime | None, Field(description="Latest event time.")),
        "location": (LatLon | None, Field(description="Location of the latest located reading.")),
    }
    for metric in schema.metrics:
        fields[metric.name] = (
            MetricSummary,
            Field(description=_metric_text(metric), json_schema_extra={"x-unit": metric.unit}),
        )
    return fields


def _reading_fields(schema: TelemetrySchema) -> dict[str, Any]:
    # Metrics and location are omitted when absent, never null: optional, not nullable.
    fields: dict[str, Any] = {
        "device_id": (str, DeviceId),
        "timestamp": (AwareDatetime, Field(description="Event time, UTC.")),
    }
    for metric in schema.metrics:
        fields[metric.name] = (
            float,
            Field(
                default=None,
                description=_metric_text(metric),
                json_schema_extra=_unit_no_default(metric.unit),
            ),
        )
    fields["location"] = (LatLon, Field(default=None, json_schema_extra=_no_default))
    return fields


def _unit_no_default(unit: str) -> Any:
    def extra(schema: dict[str, Any]) -> None:
        _no_default(schema)
        schema["x-unit"] = unit

    return extra


class Device(_Body):
    """A device the store has seen."""

    device_id: str = DeviceId
    last_seen: AwareDatetime | None = Field(
        description="Event time of its latest reading (`null` while its first is being stored)."
    )


class DevicePage(_Body):
    """One page of devices, in id order."""

    items: list[Device]
    next_cursor: str | None = Cursor


class ItemRejection(_Body):
    """Why the reading at ``index`` of the request was not accepted."""

    index: int = Field(ge=0)
    reason: Reason
    message: str


class IngestAccepted(_Body):
    """Readings accepted onto the stream; rejected and unpublished ones, by index."""

    accepted: int = Field(ge=1, description="Valid readings now on the stream.")
    rejected: list[ItemRejection]
    unpublished: list[int] = Field(
        description="Indexes of valid readings the stream refused after its retries: resend them."
    )


class StreamStatus(_Body):
    """The local runtime's durable log: what waits to be processed, and since when."""

    backlog_records: int = Field(ge=0, description="Records appended and not yet applied.")
    backlog_bytes: int = Field(ge=0, description="Their size in bytes.")
    oldest_unprocessed_age_ms: int | None = Field(
        ge=0, description="How long the oldest of them has waited (`null`: none waits)."
    )
    max_backlog_records: int = Field(ge=1, description="The bound: beyond it ingest answers 503.")
    max_backlog_bytes: int = Field(ge=1, description="The bound in bytes.")
    log_bytes: int = Field(ge=0, description="The log's files on disk.")
    appended: int = Field(ge=0, description="The last log position appended.")
    applied: int = Field(ge=0, description="The checkpoint: every position up to it is applied.")


class Health(_Body):
    """The process is up and serving."""

    status: Literal["ok"]
    version: str
    stream: StreamStatus = Field(  # type: ignore[assignment]  # omitted, never null
        default=None,
        description="The local runtime's log (absent on the cloud runtimes).",
        json_schema_extra=_no_default,
    )


ProblemCode = Enum(  # type: ignore[misc]
    "ProblemCode", {p.code: p.code for p in CATALOGUE}, type=str, module=__name__
)


class ParameterError(_Body):
    """One parameter and what is wrong with it."""

    parameter: str
    message: str


class Problem(_Body):
    """An RFC 9457 problem document; branch on ``code``."""

    type: str = Field(description="`https://iotpipe.dev/problems/<code>`.")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    code: ProblemCode
    errors: list[ParameterError] = Field(default_factory=list, json_schema_extra=_no_default)
    rejected: list[ItemRejection] = Field(default_factory=list, json_schema_extra=_no_default)
    unpublished: list[int] = Field(default_factory=list, json_schema_extra=_no_default)


@functools.cache
def models(schema: TelemetrySchema = DEFAULT_SCHEMA) -> dict[str, type[BaseModel]]:
    """The response models of an API serving readings of ``schema`` (and the aggregates they
    hold), by the name routes use for them (built once per schema)."""
    stats = _stats_fields(schema)
    fleet = create_model(
        "FleetStats",
        __base__=_Body,
        __doc__="Aggregate statistics (the `iotpipe process` representation).",
        **stats,
    )
    hourly = create_model(
        "HourlyAggregate",
        __base__=_Body,
        __doc__="One device's aggregate of one UTC hour, as `iotpipe process` writes it.",
        device_id=(str, DeviceId),
        hour=(AwareDatetime, Field(description="Start of the UTC hour.")),
        **stats,
    )
    daily = create_model(
        "DailyAggregate",
        __base__=_Body,
        __doc__="One device's aggregate of one UTC day, merged exactly from its hours.",
        device_id=(str, DeviceId),
        day=(date, Field(description="The UTC day.")),
        **stats,
    )
    latest = create_model(
        "LatestReading",
        __base__=_Body,
        __doc__="A reading in the canonical payload format (metrics it lacks are omitted).",
        **_reading_fields(schema),
    )
    ranged: dict[str, Any] = {
        "device_id": (str, DeviceId),
        "from_": (AwareDatetime, Field(alias="from", description="The range's start (UTC).")),
        "to": (AwareDatetime, Field(description="The range's end, exclusive (UTC).")),
    }
    pages = (
        create_model(
            "HourlyPage",
            __base__=_Body,
            __doc__="One page of a device's hourly aggregates in ``[from, to)``, in hour order.",
            **ranged,
            items=(list[hourly], ...),
            next_cursor=(str | None, Cursor),
        ),
        create_model(
            "DailyRollups",
            __base__=_Body,
            __doc__="A device's daily rollups of the UTC days overlapping ``[from, to)``.",
            **ranged,
            items=(list[daily], ...),
        ),
        create_model(
            "FleetHourPage",
            __base__=_Body,
            __doc__="One page of every device's aggregate for an hour, and the fleet-wide merge.",
            hour=(AwareDatetime, ...),
            items=(list[hourly], ...),
            next_cursor=(str | None, Cursor),
            fleet=(
                fleet,
                Field(
                    description="Every device's aggregate of the hour merged (all pages, not "
                    "just this one)."
                ),
            ),
            devices=(
                int,
                Field(ge=0, description="How many devices' aggregates `fleet` merges (all pages)."),
            ),
        ),
    )
    every: tuple[type[BaseModel], ...] = (
        hourly,
        daily,
        fleet,
        DevicePage,
        *pages,
        latest,
        IngestAccepted,
        Health,
        Problem,
        TelemetrySchemaDocument,
    )
    return {model.__name__: model for model in every}


class TelemetrySchemaDocument(_Body):
    """The telemetry schema the API serves readings of, in the shape of its TOML file
    (retired metrics, kept by the store but no longer declared, are marked ``retired``)."""

    model_config = ConfigDict(extra="allow")  # the file's own JSON Schema details it

    title: str
    device_id: dict[str, str]
    timestamp: dict[str, str]
    metrics: list[dict[str, Any]] = Field(min_length=1)


#: The default payload's models (see :func:`models`).
MODELS: dict[str, type[BaseModel]] = models(DEFAULT_SCHEMA)


def reading_payload_schema(
    schema: TelemetrySchema = DEFAULT_SCHEMA,
) -> tuple[str, dict[str, Any]]:
    """The request body's reading of ``schema``: the domain's pydantic declaration, and its
    bounds, reshaped to the payload's own (dotted) paths.

    The domain validates bounds, the device id pattern and "at least one metric" in its own
    validators, which pydantic cannot see; they are added from the same constants.
    """
    if not schema.is_default:
        return "ReadingPayload", _declared_payload_schema(schema)
    model: type[BaseModel] = payload_model(schema)
    document = copy.deepcopy(model.model_json_schema())
    props = document["properties"]
    props["device_id"].update(pattern=f"^{DEVICE_ID_PATTERN}$", minLength=1, maxLength=128)
    props["device_id"]["examples"] = ["iot-sensor-001"]
    for metric in schema.metrics:
        props[metric.name]["x-unit"] = metric.unit
        for branch in props[metric.name]["anyOf"]:
            if branch.get("type") == "number":
                branch.update(minimum=metric.minimum, maximum=metric.maximum)
    location = props["location"]["properties"]
    location["lat"].update(minimum=-90, maximum=90)
    location["lon"].update(minimum=-180, maximum=180)
    # Present and a number: a metric that is null does not count (the domain's no_metrics).
    document["anyOf"] = [
        {"required": [m.name], "properties": {m.name: {"type": "number"}}} for m in schema.metrics
    ]
    document["description"] = (
        "One reading. Unknown members are kept in the raw archive and ignored by aggregation; "
        "at least one metric must be present and not null."
    )
    return model.__name__, document


def _declared_payload_schema(schema: TelemetrySchema) -> dict[str, Any]:
    """The JSON Schema of a declared payload: nested objects for dotted paths, each value with
    its type and bounds (the domain's validation is the authority; this documents it)."""
    document: dict[str, Any] = {"type": "object", "properties": {}}
    _place(document, schema.device_id, _DEVICE_SCHEMA, required=True)
    _place(document, schema.timestamp, _TIME_SCHEMAS[schema.timestamp_format], required=True)
    for metric in schema.accepted:
        value = {
            "type": ["number", "null"],
            "minimum": metric.minimum,
            "maximum": metric.maximum,
            "description": _metric_text(metric),
            "x-unit": metric.unit,
        }
        _place(document, metric.path, value, required=False)
    if schema.location is not None:
        _place(document, schema.location.lat, {"type": "number", "minimum": -90, "maximum": 90})
        _place(document, schema.location.lon, {"type": "number", "minimum": -180, "maximum": 180})
    document["title"] = "ReadingPayload"
    document["description"] = (
        f"One reading of the {schema.title or 'declared'} telemetry schema (see `GET "
        "/v1/schema`). Unknown members are kept in the raw archive and ignored by aggregation; "
        f"at least one of {', '.join(m.path for m in schema.accepted)} must be present and not "
        "null."
    )
    return document


def _place(
    document: dict[str, Any], path: str, value: dict[str, Any], *, required: bool = False
) -> None:
    *outer, last = path.split(".")
    node = document
    for step in outer:
        if required:
            node.setdefault("required", [])
            if step not in node["required"]:
                node["required"].append(step)
        node = node["properties"].setdefault(step, {"type": "object", "properties": {}})
    node["properties"][last] = value
    if required:
        node.setdefault("required", []).append(last)


_DEVICE_SCHEMA = {
    "type": "string",
    "pattern": f"^{DEVICE_ID_PATTERN}$",
    "minLength": 1,
    "maxLength": 128,
    "examples": ["iot-sensor-001"],
}
_TIME_SCHEMAS: dict[str, dict[str, Any]] = {
    "rfc3339": {"type": "string", "format": "date-time", "description": "RFC 3339, with offset."},
    "epoch_s": {"type": "integer", "description": "Whole seconds since 1970-01-01T00:00:00Z."},
    "epoch_ms": {"type": "integer", "description": "Milliseconds since 1970-01-01T00:00:00Z."},
}
