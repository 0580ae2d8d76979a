"""Errors: unknown paths, wrong methods, bad parameters, ranges, unknown devices, failures."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from iotpipe import Pipeline
from iotpipe.adapters.clock import ManualClock
from iotpipe.adapters.memory import MemoryStore, MemoryStream
from iotpipe.application import QueryService
from iotpipe.domain import HourlyWindow, Reading, StoreUnavailable
from iotpipe.domain.time import MS_PER_DAY, MS_PER_HOUR, format_instant
from iotpipe.entrypoints.http import AnalyticsApi, ApiKeys, HttpRequest, HttpResponse, Limits
from iotpipe.entrypoints.http import api as api_module
from iotpipe.entrypoints.http.conformance import violation
from iotpipe.entrypoints.http.messages import json_response
from iotpipe.entrypoints.http.problems import UNKNOWN_DEVICE, problem_response
from iotpipe.entrypoints.http.routes import Reply, Route, Success
from iotpipe.ports import DeviceSummary, Page, PublishResult, StreamMessage
from tests.http.conftest import KEY, NOW, T0, fill, get, post

pytestmark = pytest.mark.unit

DEVICE = "iot-sensor-004"
HOURLY = f"/v1/devices/{DEVICE}/hourly"
DAILY = f"/v1/devices/{DEVICE}/daily"
RANGE = {"from": format_instant(T0), "to": format_instant(NOW)}


def _problem(response: HttpResponse) -> tuple[int, str]:
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "https://iotpipe.dev/problems/" + body["code"]
    assert body["status"] == response.status and body["title"] and body["detail"]
    return response.status, body["code"]


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/v1",
        "/v1/",
        "/v1/devices/",
        "/v1/devices/x",
        "/v1/devices/x/hourly/extra",
        "/v2/devices",
        "//v1/devices",
        "/v1/devices//latest",
        "/V1/DEVICES",
    ],
)
def test_unknown_paths_are_not_found(api: AnalyticsApi, path: str) -> None:
    assert _problem(get(api, path)) == (404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/v1/devices", "GET, HEAD"),
        ("DELETE", f"/v1/devices/{DEVICE}/latest", "GET, HEAD"),
        ("PUT", HOURLY, "GET, HEAD"),
        ("PATCH", "/v1/fleet/hourly", "GET, HEAD"),
        ("GET", "/v1/readings", "POST"),
        ("PUT", "/v1/readings", "POST"),
        ("OPTIONS", "/v1/health", "GET, HEAD"),
        ("POST", "/", "GET, HEAD"),
        ("TRACE", "/v1/openapi.json", "GET, HEAD"),
    ],
)
def test_wrong_methods_are_not_allowed(
    api: AnalyticsApi, method: str, path: str, allow: str
) -> None:
    response = api.handle(HttpRequest(method, path, {}, {"x-api-key": KEY}))
    assert _problem(response) == (405, "method_not_allowed")
    assert response.headers["allow"] == allow


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({**RANGE, "from": "2025-08-31T00:00:00"}, "from"),  # naive
        ({**RANGE, "to": "2025-09-01"}, "to"),
        ({**RANGE, "from": "yesterday"}, "from"),
        ({**RANGE, "from": "2025-02-30T00:00:00Z"}, "from"),
        ({**RANGE, "from": "1969-12-31T00:00:00Z"}, "from"),
        ({**RANGE, "from": "2025-08-31T00:00:00+2:00"}, "from"),
        ({**RANGE, "from": "1756598400000"}, "from"),  # epoch ms is not an instant here
        ({"to": RANGE["to"]}, "from"),
        ({"from": RANGE["from"]}, "to"),
        ({**RANGE, "limit": "0"}, "limit"),
        ({**RANGE, "limit": "745"}, "limit"),
        ({**RANGE, "limit": "-1"}, "limit"),
        ({**RANGE, "limit": "ten"}, "limit"),
        ({**RANGE, "limit": "1.5"}, "limit"),
        ({**RANGE, "limit": "1,2"}, "limit"),  # repeated, as runtimes join them
        ({**RANGE, "limit": "99999999999999999999"}, "limit"),
        ({**RANGE, "form": RANGE["from"]}, "form"),  # a typo is not silently ignored
    ],
)
def test_bad_query_parameters_are_explained(
    api: AnalyticsApi, query: dict[str, str], parameter: str
) -> None:
    response = get(api, HOURLY, **query)
    assert _problem(response) == (400, "invalid_parameter")
    errors = response.json()["errors"]
    assert parameter in [e["parameter"] for e in errors]
    assert all(e["message"] for e in errors)


def test_a_naive_instant_is_told_to_add_an_offset(api: AnalyticsApi) -> None:
    response = get(api, HOURLY, **{**RANGE, "from": "2025-08-31T00:00:00"})
    assert "no UTC offset" in response.json()["detail"]


def test_every_parameter_problem_is_listed_at_once(api: AnalyticsApi) -> None:
    response = get(api, HOURLY, **{"from": "x", "limit": "0", "junk": "1"})
    parameters = sorted(e["parameter"] for e in response.json()["errors"])
    assert parameters == ["from", "junk", "limit", "to"]


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/devices", {"limit": "1001"}),
        ("/v1/fleet/hourly", {"hour": "2025-08-31T10:30:00Z"}),  # not the start of an hour
        ("/v1/fleet/hourly", {}),
        ("/v1/devices/%20bad/latest", {}),  # a device id that cannot exist
        ("/v1/devices/a%2Fb/latest", {}),
        ("/v1/devices/" + "d" * 129 + "/latest", {}),
        ("/v1/devices", {"extra": ""}),
    ],
)
def test_bad_parameters_of_other_routes(
    api: AnalyticsApi, path: str, query: dict[str, str]
) -> None:
    assert _problem(get(api, path, **query)) == (400, "invalid_parameter")


def test_percent_encoded_device_ids_are_decoded(api: AnalyticsApi) -> None:
    assert get(api, "/v1/devices/iot%2Dsensor%2D004/latest").status == 200


def test_from_must_be_before_to(api: AnalyticsApi) -> None:
    same = {"from": RANGE["from"], "to": RANGE["from"]}
    assert _problem(get(api, HOURLY, **same)) == (400, "invalid_range")
    backwards = {"from": RANGE["to"], "to": RANGE["from"]}
    assert _problem(get(api, DAILY, **backwards)) == (400, "invalid_range")


def test_ranges_are_bounded(api: AnalyticsApi) -> None:
    start = format_instant(T0)
    month = {"from": start, "to": format_instant(T0 + 31 * MS_PER_DAY)}
    assert get(api, HOURLY, **month).status == 200
    longer = {"from": start, "to": format_instant(T0 + 31 * MS_PER_DAY + 1)}
    assert _problem(get(api, HOURLY, **longer)) == (400, "range_too_large")
    year = {"from": start, "to": format_instant(T0 + 366 * MS_PER_DAY)}
    assert get(api, DAILY, **year).status == 200
    longer = {"from": start, "to": format_instant(T0 + 366 * MS_PER_DAY + 1)}
    assert _problem(get(api, DAILY, **longer)) == (400, "range_too_large")


def test_range_limits_are_configurable() -> None:
    api = AnalyticsApi.for_pipeline(fill(devices=1).pipeline, ApiKeys([KEY]), max_range_days=1)
    path = "/v1/devices/iot-sensor-001/hourly"
    day = {"from": format_instant(T0), "to": format_instant(T0 + MS_PER_DAY)}
    assert get(api, path, **day).status == 200
    more = {"from": format_instant(T0), "to": format_instant(T0 + MS_PER_DAY + MS_PER_HOUR)}
    assert _problem(get(api, path, **more)) == (400, "range_too_large")
    with pytest.raises(ValueError, match="at least 1"):
        Limits(max_items=0)


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/devices/never-seen/latest", {}),
        ("/v1/devices/never-seen/hourly", RANGE),
        ("/v1/devices/never-seen/daily", RANGE),
    ],
)
def test_unknown_devices_are_not_found(api: AnalyticsApi, path: str, query: dict[str, str]) -> None:
    response = get(api, path, **query)
    assert _problem(response) == (404, "unknown_device")
    assert "never-seen" in response.json()["detail"]


def test_a_known_device_without_data_in_range_is_an_empty_page(api: AnalyticsApi) -> None:
    empty = {"from": "2020-01-01T00:00:00Z", "to": "2020-01-02T00:00:00Z"}
    assert get(api, HOURLY, **empty).json()["items"] == []
    assert get(api, DAILY, **empty).json()["items"] == []


class BrokenStore(MemoryStore):
    """A store that is down."""

    def hourly(self, *args: object, **kwargs: object) -> Page[HourlyWindow]:
        raise StoreUnavailable("connection refused")

    def latest(self, device_id: str) -> Reading | None:
        raise StoreUnavailable("connection refused")


class BuggyQuery(QueryService):
    """A query service with a bug."""

    def latest(self, device_id: str) -> Reading | None:
        raise ZeroDivisionError("a bug")


def test_an_unavailable_store_is_a_retryable_503(caplog: pytest.LogCaptureFixture) -> None:
    api = AnalyticsApi(QueryService(BrokenStore()), None, ApiKeys([KEY]), check_responses=True)
    response = get(api, HOURLY, **RANGE)
    assert _problem(response) == (503, "store_unavailable")
    assert response.headers["retry-after"] == "1"
    assert "store unavailable" in caplog.text


def test_an_unexpected_failure_is_a_logged_500_never_an_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = AnalyticsApi(BuggyQuery(MemoryStore()), None, ApiKeys([KEY]), check_responses=True)
    response = get(api, f"/v1/devices/{DEVICE}/latest")
    assert _problem(response) == (500, "internal_error")
    assert "a bug" not in response.json()["detail"]  # internals stay in the log
    assert "ZeroDivisionError: a bug" in caplog.text


def test_even_a_malformed_request_object_gets_an_answer(api: AnalyticsApi) -> None:
    broken = HttpRequest("GET", None, None, None, None)  # type: ignore[arg-type]
    assert _problem(api.handle(broken)) == (500, "internal_error")


class RefusingStream(MemoryStream):
    """A stream that refuses every other message (a throttled stream), or all of them."""

    def __init__(self, refuse_all: bool) -> None:
        super().__init__(ManualClock(NOW))
        self.refuse_all = refuse_all

    def publish(self, messages: Sequence[StreamMessage]) -> PublishResult:
        keep = [] if self.refuse_all else [m for i, m in enumerate(messages) if i % 2 == 0]
        super().publish(keep)
        refused = tuple(i for i, m in enumerate(messages) if m not in keep)
        return PublishResult(failed=refused, error="throttled")


def _stream_api(refuse_all: bool) -> AnalyticsApi:
    clock = ManualClock(NOW)
    pipeline = Pipeline(MemoryStore(), clock, stream=RefusingStream(refuse_all))
    return AnalyticsApi.for_pipeline(pipeline, ApiKeys([KEY]), check_responses=True)


def _reading(device: str) -> dict[str, object]:
    return {"device_id": device, "timestamp": format_instant(NOW - 1000), "humidity": 50}


def test_readings_the_stream_refused_are_listed_for_resending() -> None:
    response = post(_stream_api(False), [_reading("a"), _reading("b"), "junk", _reading("c")])
    assert response.status == 202
    body = response.json()
    assert body["accepted"] == 2 and body["unpublished"] == [1]
    assert [r["index"] for r in body["rejected"]] == [2]


def test_nothing_published_is_a_retryable_503() -> None:
    response = post(_stream_api(True), [_reading("a"), "junk", _reading("b")])
    assert _problem(response) == (503, "ingest_unavailable")
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert body["unpublished"] == [0, 2] and [r["index"] for r in body["rejected"]] == [1]


def test_a_read_only_api_does_not_route_ingest(filled_pipeline: Pipeline) -> None:
    api = AnalyticsApi(filled_pipeline.query, None, ApiKeys([KEY]))
    assert _problem(post(api, [_reading("a")])) == (404, "not_found")
    assert "/v1/readings" not in api.openapi()["paths"]


def _drifted_health(
    document: object, version: str, stream_status: object = None, schema: object = None
) -> tuple[Route, ...]:
    return (
        Route(
            "GET",
            "/v1/health",
            "getHealth",
            "Health",
            "",
            lambda call: Reply(200, {"status": "ok", "version": version, "extra": True}),
            Success(200, "", "Health"),
            public=True,
        ),
    )


def test_response_checking_turns_a_drifted_response_into_a_logged_500(
    filled_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The checker itself must be able to fail: a handler that adds an undeclared member.
    monkeypatch.setattr(api_module, "service_routes", _drifted_health)
    checked = AnalyticsApi.for_pipeline(filled_pipeline, ApiKeys([KEY]), check_responses=True)
    assert _problem(get(checked, "/v1/health")) == (500, "internal_error")
    assert "breaks its declaration" in caplog.text
    unchecked = AnalyticsApi.for_pipeline(filled_pipeline, ApiKeys([KEY]))
    assert get(unchecked, "/v1/health").json()["extra"] is True


def test_violations_name_what_is_wrong(api: AnalyticsApi) -> None:
    routes = {r.operation_id: r for r in api.routes}
    health, latest = routes["getHealth"], routes["getLatest"]
    assert violation(health, json_response(200, {"status": "ok", "version": "1"})) is None
    assert "Health" in str(violation(health, json_response(200, {"status": "fine"})))
    assert "not declared" in str(violation(health, problem_response(UNKNOWN_DEVICE, "x")))
    assert violation(latest, problem_response(UNKNOWN_DEVICE, "x")) is None
    assert "not a problem" in str(violation(latest, json_response(404, {"code": "x"})))
    assert "content-type" in str(
        violation(latest, json_response(200, {}, content_type="text/plain"))
    )


@pytest.fixture
def filled_pipeline() -> Pipeline:
    """A small filled pipeline (two devices)."""
    return fill(devices=2).pipeline


@pytest.mark.parametrize("declared", ["\u00b2", "abc", "-5", ""])
def test_a_meaningless_content_length_falls_back_to_the_actual_body(
    api: AnalyticsApi, declared: str
) -> None:
    reading = {"device_id": "cl", "timestamp": format_instant(NOW - 1000), "humidity": 1}
    response = post(api, reading, headers={"content-length": declared})
    assert response.status == 202, response.body


class ValueErrorStore(MemoryStore):
    """A store with a bug that raises ValueError."""

    def devices(self, *, limit: int, cursor: str | None = None) -> Page[DeviceSummary]:
        raise ValueError("a store bug")


def test_a_store_error_without_a_cursor_is_not_blamed_on_the_client() -> None:
    api = AnalyticsApi(QueryService(ValueErrorStore()), None, ApiKeys([KEY]))
    assert _problem(get(api, "/v1/devices")) == (500, "internal_error")
