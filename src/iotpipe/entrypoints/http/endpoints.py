"""The handlers and their route declarations: analytics queries, ingest, and the service routes.

Handlers are short: parameters arrive parsed (see :mod:`~iotpipe.entrypoints.http.params`),
errors are raised as :class:`ApiProblem`, and aggregates are rendered by
:mod:`iotpipe.application.views`, exactly as ``iotpipe process`` writes them.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Protocol, TypeVar

import orjson

from iotpipe.application import IngestResult, QueryService
from iotpipe.application.payloads import MAX_DEPTH
from iotpipe.application.views import (
    daily_json,
    device_json,
    reading_json,
    stats_json,
    window_json,
)
from iotpipe.domain import DEFAULT_SCHEMA, TelemetrySchema
from iotpipe.domain.time import MS_PER_DAY, MS_PER_HOUR, format_instant
from iotpipe.entrypoints.http import params as p
from iotpipe.entrypoints.http.cursors import decode_cursor, encode_cursor
from iotpipe.entrypoints.http.dashboard import dashboard_response
from iotpipe.entrypoints.http.messages import HTML, JSON, HttpResponse, bytes_response
from iotpipe.entrypoints.http.problems import (
    INGEST_UNAVAILABLE,
    INVALID_CURSOR,
    INVALID_RANGE,
    INVALID_READINGS,
    MALFORMED_JSON,
    NO_READINGS,
    PAYLOAD_TOO_LARGE,
    RANGE_TOO_LARGE,
    STORE_UNAVAILABLE,
    TOO_MANY_ITEMS,
    UNKNOWN_DEVICE,
    UNSUPPORTED_MEDIA_TYPE,
    ApiProblem,
)
from iotpipe.entrypoints.http.routes import Call, Reply, Route, Success

T = TypeVar("T")

DEVICES_PAGE = (100, 1000)  # (default, maximum) page sizes
HOURLY_PAGE = (168, 744)  # a week by default; the longest range (31 days) fits one page
FLEET_PAGE = (100, 1000)


class Ingestor(Protocol):
    """What ingest needs: :class:`~iotpipe.application.IngestService` or a ``Pipeline``."""

    def ingest(self, items: list[object]) -> IngestResult:
        """Validate the items and publish the valid ones; report each item."""
        ...


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on requests: body bytes, readings per request, and query ranges in days."""

    max_body: int = 1 << 20
    max_items: int = 500
    max_range_days: int = 31
    max_daily_range_days: int = 366

    def __post_init__(self) -> None:
        if min(self.max_body, self.max_items, self.max_range_days, self.max_daily_range_days) < 1:
            raise ValueError("every limit must be at least 1")


# --- analytics ---------------------------------------------------------------------------------


class QueryEndpoints:
    """Devices, hourly aggregates, daily rollups, latest readings and fleet hours."""

    def __init__(
        self, query: QueryService, limits: Limits, schema: TelemetrySchema = DEFAULT_SCHEMA
    ) -> None:
        self._schema = schema
        self._query = query
        self._limits = limits

    def routes(self) -> tuple[Route, ...]:
        """The analytics routes."""
        device = p.device_id()
        read = (STORE_UNAVAILABLE,)
        days, daily_days = self._limits.max_range_days, self._limits.max_daily_range_days
        return (
            Route(
                "GET",
                "/v1/devices",
                "listDevices",
                "List devices",
                "Every device with stored readings, in id order, with the event time of its "
                "latest reading. Paginated.",
                self.devices,
                Success(200, "One page of devices.", "DevicePage"),
                (p.limit(*DEVICES_PAGE), p.cursor()),
                (*read, INVALID_CURSOR),
            ),
            Route(
                "GET",
                "/v1/devices/{device_id}/hourly",
                "getHourly",
                "A device's hourly aggregates",
                f"The device's hourly aggregates with `from <= hour < to`, in hour order. "
                f"The range spans at most {days} days. Paginated.",
                self.hourly,
                Success(200, "One page of hourly aggregates.", "HourlyPage"),
                (*_ranged(device, "hour"), p.limit(*HOURLY_PAGE), p.cursor()),
                (*read, INVALID_CURSOR, INVALID_RANGE, RANGE_TOO_LARGE, UNKNOWN_DEVICE),
            ),
            Route(
                "GET",
                "/v1/devices/{device_id}/daily",
                "getDaily",
                "A device's daily rollups",
                f"Daily rollups (merged exactly from the hours) of the UTC days overlapping "
                f"`[from, to)`; the range spans at most {daily_days} days.",
                self.daily,
                Success(200, "The daily rollups, in day order.", "DailyRollups"),
                _ranged(device, "day"),
                (*read, INVALID_RANGE, RANGE_TOO_LARGE, UNKNOWN_DEVICE),
            ),
            Route(
                "GET",
                "/v1/devices/{device_id}/latest",
                "getLatest",
                "A device's latest reading",
                "The device's reading with the greatest event time.",
                self.latest,
                Success(200, "The latest reading.", "LatestReading"),
                (device,),
                (*read, UNKNOWN_DEVICE),
            ),
            Route(
                "GET",
                "/v1/fleet/hourly",
                "getFleetHour",
                "Every device's aggregate of one hour",
                "Every device's aggregate of the hour (paginated, in device order), `fleet`, "
                "the fleet-wide merge of all of them, and `devices`, how many that is. The merge "
                "is kept as readings are stored: a page costs what it returns, whatever the "
                "fleet's size.",
                self.fleet,
                Success(200, "One page of the hour's aggregates, and the fleet.", "FleetHourPage"),
                (_hour_param(), p.limit(*FLEET_PAGE), p.cursor()),
                (*read, INVALID_CURSOR),
            ),
        )

    def devices(self, call: Call) -> Reply:
        """``GET /v1/devices``."""
        scope = ("devices",)
        cursor = decode_cursor(scope, call.optional_text("cursor"))
        limit = call.integer("limit")
        page = _paged(lambda: self._query.devices(limit=limit, cursor=cursor), cursor)
        items = [device_json(d) for d in page.items]
        return Reply(200, {"items": items, "next_cursor": encode_cursor(scope, page.cursor)})

    def hourly(self, call: Call) -> Reply:
        """``GET /v1/devices/{device_id}/hourly``."""
        device, start, end = self._ranged(call, self._limits.max_range_days)
        scope = ("hourly", device, start, end)
        cursor = decode_cursor(scope, call.optional_text("cursor"))
        self._known(device)
        limit = call.integer("limit")
        page = _paged(
            lambda: self._query.hourly(device, start, end, limit=limit, cursor=cursor), cursor
        )
        items = [window_json(w, self._schema) for w in page.items]
        body = _range_body(device, start, end, items)
        return Reply(200, {**body, "next_cursor": encode_cursor(scope, page.cursor)})

    def daily(self, call: Call) -> Reply:
        """``GET /v1/devices/{device_id}/daily``."""
        device, start, end = self._ranged(call, self._limits.max_daily_range_days)
        self._known(device)
        rollups = self._query.daily(device, start, end)
        items = [daily_json(r, self._schema) for r in rollups]
        return Reply(200, _range_body(device, start, end, items))

    def latest(self, call: Call) -> Reply:
        """``GET /v1/devices/{device_id}/latest``."""
        device = call.text("device_id")
        reading = self._query.latest(device)
        if reading is None:
            raise _unknown(device)
        return Reply(200, reading_json(reading, self._schema))

    def fleet(self, call: Call) -> Reply:
        """``GET /v1/fleet/hourly``."""
        hour = call.integer("hour")
        scope = ("fleet", hour)
        cursor = decode_cursor(scope, call.optional_text("cursor"))
        limit = call.integer("limit")
        result = _paged(lambda: self._query.fleet_hour(hour, limit=limit, cursor=cursor), cursor)
        return Reply(
            200,
            {
                "hour": format_instant(hour),
                "items": [window_json(w, self._schema) for w in result.page.items],
                "next_cursor": encode_cursor(scope, result.page.cursor),
                "fleet": stats_json(result.fleet, self._schema),
                "devices": result.devices,
            },
        )

    def _ranged(self, call: Call, max_days: int) -> tuple[str, int, int]:
        start, end = call.integer("from"), call.integer("to")
        if start >= end:
            raise ApiProblem(INVALID_RANGE, "from must be before to")
        if end - start > max_days * MS_PER_DAY:
            raise ApiProblem(RANGE_TOO_LARGE, f"the range may span at most {max_days} days")
        return call.text("device_id"), start, end

    def _known(self, device: str) -> None:
        if self._query.latest(device) is None:
            raise _unknown(device)


def _ranged(device: p.Param, unit: str) -> tuple[p.Param, ...]:
    return (
        device,
        p.instant(
            "from", f"Start of the range (inclusive, by {unit}).", example="2025-08-31T00:00:00Z"
        ),
        p.instant("to", "End of the range (exclusive).", example="2025-09-01T00:00:00Z"),
    )


def _hour_param() -> p.Param:
    base = p.instant("hour", "Start of a UTC hour.", example="2025-08-31T10:00:00Z")

    def parse(text: str) -> int:
        ms = p.parse_instant_param(text)
        if ms % MS_PER_HOUR:
            start = format_instant(ms - ms % MS_PER_HOUR)
            raise p.ParamError(f"must be the start of a UTC hour (this one starts at {start})")
        return ms

    return p.Param(
        base.name, base.description, base.schema, parse, required=True, example=base.example
    )


def _range_body(device: str, start: int, end: int, items: list[Any]) -> dict[str, Any]:
    return {
        "device_id": device,
        "from": format_instant(start),
        "to": format_instant(end),
        "items": items,
    }


def _unknown(device: str) -> ApiProblem:
    return ApiProblem(UNKNOWN_DEVICE, f"no reading of device {device!r} has been stored")


def _paged(fetch: Callable[[], T], cursor: str | None) -> T:
    # A cursor's binding is a check, not a secret, so a client can forge one around any store
    # cursor; a store that cannot read it fails with a ValueError-like error, the client's
    # mistake. Without a cursor such an error is ours and stays a 500; store outages are
    # IotPipeErrors and become 503s either way.
    if cursor is None:
        return fetch()
    try:
        return fetch()
    except (ValueError, TypeError, KeyError, IndexError):
        raise ApiProblem(INVALID_CURSOR, "the cursor is not one this API issued") from None


# --- ingest ------------------------------------------------------------------------------------


class IngestEndpoints:
    """``POST /v1/readings``: validate at the edge, publish the valid readings to the stream."""

    def __init__(self, ingest: Ingestor, limits: Limits) -> None:
        self._ingest = ingest
        self._limits = limits

    def routes(self) -> tuple[Route, ...]:
        """The ingest route."""
        limits = self._limits
        return (
            Route(
                "POST",
                "/v1/readings",
                "postReadings",
                "Send readings",
                f"One reading, or an array of up to {limits.max_items}, in at most "
                f"{limits.max_body} bytes. Each reading is validated on its own: valid readings "
                "of a mixed batch are accepted, the others listed with a reason. Readings are "
                "identified by `device_id` + `timestamp`, so resending is always safe: each "
                "counts once. Query parameters are ignored (a device may add any to its URL, "
                "e.g. `?v=2`); the query routes refuse those they do not declare.",
                self.readings,
                Success(
                    202,
                    "Some readings were accepted (they are on the stream, to be aggregated).",
                    "IngestAccepted",
                ),
                problems=(
                    MALFORMED_JSON,
                    NO_READINGS,
                    INVALID_READINGS,
                    PAYLOAD_TOO_LARGE,
                    TOO_MANY_ITEMS,
                    UNSUPPORTED_MEDIA_TYPE,
                    INGEST_UNAVAILABLE,
                ),
                body_model="ReadingPayload",
                body_example=[
                    {
                        "device_id": "iot-sensor-001",
                        "timestamp": "2025-08-31T10:00:00Z",
                        "temperature": 25.5,
                        "humidity": 60.2,
                        "location": {"lat": 34.0522, "lon": -118.2437},
                    }
                ],
                tag="ingest",
                ignore_unknown_query=True,
            ),
        )

    def readings(self, call: Call) -> Reply:
        """``POST /v1/readings``."""
        request = call.request
        self._check_size(request.headers.get("content-length"), len(request.body))
        _check_media_type(request.headers.get("content-type"))
        items = self._items(request.body)
        return _ingest_reply(self._ingest.ingest(items))

    def _check_size(self, declared: str | None, actual: int) -> None:
        limit = self._limits.max_body
        if actual > limit or (
            declared is not None and p.is_whole(declared) and int(declared) > limit
        ):
            raise ApiProblem(PAYLOAD_TOO_LARGE, f"the body may be at most {limit} bytes")

    def _items(self, body: bytes) -> list[object]:
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ApiProblem(MALFORMED_JSON, f"the body is not valid JSON: {exc}") from None
        # The exact walk costs ~0.2 us per JSON node in Python; the text's nesting is measured
        # at C speed and settles every sane body without it.
        if _nesting(body) > MAX_DEPTH and _too_deep(value, MAX_DEPTH):
            raise ApiProblem(MALFORMED_JSON, f"the JSON nests deeper than {MAX_DEPTH} levels")
        items = value if isinstance(value, list) else [value]
        if not items:
            raise ApiProblem(NO_READINGS, "the array is empty: send at least one reading")
        if len(items) > self._limits.max_items:
            raise ApiProblem(
                TOO_MANY_ITEMS,
                f"{len(items)} readings in one request; send at most {self._limits.max_items}",
            )
        return items


def _check_media_type(content_type: str | None) -> None:
    if content_type is None:
        return  # many small devices send none: the body is JSON or it is refused as such
    media = content_type.split(";")[0].strip().lower()
    if media != JSON and not media.endswith("+json"):
        raise ApiProblem(UNSUPPORTED_MEDIA_TYPE, "send readings as Content-Type: application/json")


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = bytes(range(256)).translate(None, b"[]{}")  # every byte but the brackets
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def _nesting(body: bytes) -> int:
    """How deep the containers of a valid JSON text nest (its strings' brackets aside)."""
    # Without a backslash every quote delimits a string: what lies outside strings is every
    # other piece between quotes (a split, much faster than the regular expression).
    outside = b"".join(body.split(b'"')[::2]) if b"\\" not in body else _JSON_STRING.sub(b"", body)
    brackets = outside.translate(None, _BRACKETS).translate(_STEPS)
    return max(accumulate(array("b", brackets)), default=0)


def _too_deep(value: object, limit: int) -> bool:
    # Iterative on purpose: recursion over client data is a stack the client controls.
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _ingest_reply(result: IngestResult) -> Reply:
    rejected = [
        {"index": r.index, "reason": r.reason.value, "message": r.message} for r in result.rejected
    ]
    unpublished = list(result.unpublished)
    if result.accepted == 0 and unpublished:
        raise ApiProblem(
            INGEST_UNAVAILABLE,
            f"the stream refused {len(unpublished)} valid readings; resend them later",
            rejected=rejected,
            unpublished=unpublished,
        )
    if result.accepted == 0:
        detail = (
            f"the reading is not valid: {rejected[0]['message']}"
            if len(rejected) == 1
            else f"none of the {len(rejected)} readings is valid"
        )
        raise ApiProblem(INVALID_READINGS, detail, rejected=rejected)
    return Reply(
        202, {"accepted": result.accepted, "rejected": rejected, "unpublished": unpublished}
    )


# --- service routes ----------------------------------------------------------------------------


def service_routes(
    document: Callable[[], bytes],
    version: str,
    stream_status: Callable[[], Mapping[str, object]] | None = None,
    schema: TelemetrySchema = DEFAULT_SCHEMA,
) -> tuple[Route, ...]:
    """Health, the OpenAPI document and the dashboard (public, no key needed), and the
    telemetry schema readings follow."""
    declared = schema.to_json()

    def health(call: Call) -> Reply:
        body: dict[str, object] = {"status": "ok", "version": version}
        if stream_status is not None:
            body["stream"] = stream_status()
        return Reply(200, body)

    def openapi(call: Call) -> HttpResponse:
        return bytes_response(
            200, document(), content_type=JSON, headers={"cache-control": "no-cache"}
        )

    def dashboard(call: Call) -> HttpResponse:
        return dashboard_response()

    def telemetry_schema(call: Call) -> Reply:
        return Reply(200, declared)

    return (
        Route(
            "GET",
            "/",
            "getDashboard",
            "The dashboard",
            "The analytics dashboard page (a placeholder linking these docs if it is missing).",
            dashboard,
            Success(200, "An HTML page.", content_type=HTML, schema={"type": "string"}),
            public=True,
            tag="service",
        ),
        Route(
            "GET",
            "/v1/health",
            "getHealth",
            "Health check",
            "Answers while the process serves requests; needs no key. The local runtime adds "
            "`stream`: its durable log's backlog and the age of its oldest unprocessed record.",
            health,
            Success(200, "Serving.", "Health"),
            public=True,
            tag="service",
        ),
        Route(
            "GET",
            "/v1/openapi.json",
            "getOpenApi",
            "This OpenAPI document",
            "The OpenAPI 3.1 document of this API, generated from its route declarations.",
            openapi,
            Success(200, "The document.", content_type=JSON, schema={"type": "object"}),
            public=True,
            tag="service",
        ),
        Route(
            "GET",
            "/v1/schema",
            "getTelemetrySchema",
            "The telemetry schema",
            "The payload this deployment reads (where each value is, the time format) and its "
            "metrics with unit, range and resolution, in the shape of its TOML file. Metrics "
            "the store keeps but the schema no longer declares are listed as `retired`.",
            telemetry_schema,
            Success(200, "The schema.", "TelemetrySchemaDocument"),
            tag="service",
        ),
    )
