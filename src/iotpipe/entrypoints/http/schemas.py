"""The pydantic models of request and response bodies: the API's data contract.

The OpenAPI document's schemas are generated from these models, and with
``AnalyticsApi(check_responses=True)`` (as the tests run it) every response is validated
against its route's model before it leaves. The aggregate models are built from
:data:`~iotpipe.domain.METRICS`, like :mod:`iotpipe.application.views` that renders them, so a
new metric appears in both at once.

This module imports pydantic and is loaded only when the document is generated or responses are
checked: serving a query never pays for it on a cold start.
"""

from __future__ import annotations

import copy
from datetime import date
from enum import Enum
from typing import Any, Literal, cast

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, create_model

from iotpipe import domain
from iotpipe.domain import METRICS, Reason
from iotpipe.domain.reading import DEVICE_ID_PATTERN
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


def _stats_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {
        "count": (int, Field(ge=0, description="Distinct readings counted.")),
        "first": (AwareDatetime | None, Field(description="Earliest event time.")),
        "last": (AwareDatetime | None, Field(description="Latest event time.")),
        "location": (LatLon | None, Field(description="Location of the latest located reading.")),
    }
    for metric in METRICS:
        fields[metric.name] = (MetricSummary, Field(description=f"{metric.description}"))
    return fields


FleetStats = create_model(
    "FleetStats",
    __base__=_Body,
    __doc__="Aggregate statistics (the `iotpipe process` representation).",
    **_stats_fields(),
)
HourlyAggregate = create_model(
    "HourlyAggregate",
    __base__=_Body,
    __doc__="One device's aggregate of one UTC hour, as `iotpipe process` writes it.",
    device_id=(str, DeviceId),
    hour=(AwareDatetime, Field(description="Start of the UTC hour.")),
    **_stats_fields(),
)
DailyAggregate = create_model(
    "DailyAggregate",
    __base__=_Body,
    __doc__="One device's aggregate of one UTC day, merged exactly from its hours.",
    device_id=(str, DeviceId),
    day=(date, Field(description="The UTC day.")),
    **_stats_fields(),
)


def _reading_fields() -> dict[str, Any]:
    # Metrics and location are omitted when absent, never null: optional, not nullable.
    fields: dict[str, Any] = {
        "device_id": (str, DeviceId),
        "timestamp": (AwareDatetime, Field(description="Event time, UTC.")),
    }
    for metric in METRICS:
        fields[metric.name] = (
            float,
            Field(default=None, description=metric.description, json_schema_extra=_no_default),
        )
    fields["location"] = (LatLon, Field(default=None, json_schema_extra=_no_default))
    return fields


LatestReading = create_model(
    "LatestReading",
    __base__=_Body,
    __doc__="A reading in the canonical payload format (metrics it lacks are omitted).",
    **_reading_fields(),
)


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


class HourlyPage(_Body):
    """One page of a device's hourly aggregates in ``[from, to)``, in hour order."""

    device_id: str = DeviceId
    from_: AwareDatetime = Field(alias="from", description="The range's start (UTC).")
    to: AwareDatetime = Field(description="The range's end, exclusive (UTC).")
    items: list[HourlyAggregate]
    next_cursor: str | None = Cursor


class DailyRollups(_Body):
    """A device's daily rollups of the UTC days overlapping ``[from, to)``."""

    device_id: str = DeviceId
    from_: AwareDatetime = Field(alias="from", description="The range's start (UTC).")
    to: AwareDatetime = Field(description="The range's end, exclusive (UTC).")
    items: list[DailyAggregate]


class FleetHourPage(_Body):
    """One page of every device's aggregate for an hour, and the fleet-wide merge."""

    hour: AwareDatetime
    items: list[HourlyAggregate]
    next_cursor: str | None = Cursor
    fleet: FleetStats = Field(
        description="Every device's aggregate of the hour merged (all pages, not just this one)."
    )


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


#: Models by the name routes use for them.
MODELS: dict[str, type[BaseModel]] = {
    model.__name__: model
    for model in (
        DevicePage,
        HourlyPage,
        DailyRollups,
        FleetHourPage,
        cast(type[BaseModel], LatestReading),
        IngestAccepted,
        Health,
        Problem,
    )
}


def reading_payload_schema() -> tuple[str, dict[str, Any]]:
    """The request body's reading: the domain's pydantic declaration, and its bounds.

    The domain validates bounds, the device id pattern and "at least one metric" in its own
    validators, which pydantic cannot see; they are added from the same constants.
    """
    model: type[BaseModel] = domain.ReadingPayload
    schema = copy.deepcopy(model.model_json_schema())
    props = schema["properties"]
    props["device_id"].update(pattern=f"^{DEVICE_ID_PATTERN}$", minLength=1, maxLength=128)
    props["device_id"]["examples"] = ["iot-sensor-001"]
    for metric in METRICS:
        for branch in props[metric.name]["anyOf"]:
            if branch.get("type") == "number":
                branch.update(minimum=metric.minimum, maximum=metric.maximum)
    location = props["location"]["properties"]
    location["lat"].update(minimum=-90, maximum=90)
    location["lon"].update(minimum=-180, maximum=180)
    # Present and a number: a metric that is null does not count (the domain's no_metrics).
    schema["anyOf"] = [
        {"required": [m.name], "properties": {m.name: {"type": "number"}}} for m in METRICS
    ]
    schema["description"] = (
        "One reading. Unknown members are kept in the raw archive and ignored by aggregation; "
        "at least one metric must be present and not null."
    )
    return model.__name__, schema
