"""API keys: the missing/wrong/right matrix on every route, constant-time checks, no leaks."""

from __future__ import annotations

import hmac
import logging

import orjson
import pytest

from iotpipe import in_memory_pipeline
from iotpipe.adapters.memory import MemoryStore
from iotpipe.application import QueryService
from iotpipe.domain.time import MS_PER_HOUR, format_instant
from iotpipe.entrypoints.http import AnalyticsApi, ApiKeys, HttpRequest, HttpResponse
from iotpipe.entrypoints.http.auth import presented_keys
from iotpipe.ports import DeviceSummary, Page
from tests.http.conftest import KEY, NOW, SECOND_KEY, T0, WRONG_KEY, Filled

pytestmark = pytest.mark.unit

DEVICE = "iot-sensor-001"
RANGE = {"from": format_instant(T0), "to": format_instant(NOW)}
READING = orjson.dumps(
    {"device_id": "auth-probe", "timestamp": format_instant(NOW - 1000), "temperature": 20}
)

#: A valid request for every route, by operation id: (method, path, query, body).
SAMPLES: dict[str, tuple[str, str, dict[str, str], bytes]] = {
    "getDashboard": ("GET", "/", {}, b""),
    "getHealth": ("GET", "/v1/health", {}, b""),
    "getOpenApi": ("GET", "/v1/openapi.json", {}, b""),
    "getTelemetrySchema": ("GET", "/v1/schema", {}, b""),
    "postReadings": ("POST", "/v1/readings", {}, READING),
    "listDevices": ("GET", "/v1/devices", {}, b""),
    "getHourly": ("GET", f"/v1/devices/{DEVICE}/hourly", RANGE, b""),
    "getDaily": ("GET", f"/v1/devices/{DEVICE}/daily", RANGE, b""),
    "getLatest": ("GET", f"/v1/devices/{DEVICE}/latest", {}, b""),
    "getFleetHour": ("GET", "/v1/fleet/hourly", {"hour": format_instant(T0 + MS_PER_HOUR)}, b""),
}
PUBLIC = {"getDashboard", "getHealth", "getOpenApi"}

ALL = [r.operation_id for r in AnalyticsApi.for_pipeline(in_memory_pipeline(), ApiKeys()).routes]
PRIVATE = [op for op in ALL if op not in PUBLIC]

MISSING: dict[str, str] = {}
WRONG = [
    {"authorization": f"Bearer {WRONG_KEY}"},
    {"x-api-key": WRONG_KEY},
    {"authorization": "Bearer "},
    {"authorization": f"Basic {KEY}"},  # the right key, in a scheme that does not carry keys
    {"authorization": KEY},
    {"x-api-key": KEY.upper()},
    {"x-api-key": KEY + "x"},
    {"x-api-key": KEY[:-1]},
]
RIGHT = [
    {"authorization": f"Bearer {KEY}"},
    {"authorization": f"bearer {SECOND_KEY}"},
    {"x-api-key": KEY},
    {"x-api-key": SECOND_KEY},
    {"authorization": "Basic dXNlcjpwYXNz", "x-api-key": KEY},  # a proxy owns Authorization
]


def call(api: AnalyticsApi, operation: str, headers: dict[str, str]) -> HttpResponse:
    method, path, query, body = SAMPLES[operation]
    if body:
        headers = {**headers, "content-type": "application/json"}
    return api.handle(HttpRequest(method, path, query, headers, body))


def success_status(api: AnalyticsApi, operation: str) -> int:
    return next(r.success.status for r in api.routes if r.operation_id == operation)


def test_every_route_has_a_sample_request() -> None:
    assert sorted(SAMPLES) == sorted(ALL)
    assert len(PRIVATE) == 7


@pytest.mark.parametrize("operation", PRIVATE)
def test_a_missing_key_is_refused_on_every_private_route(api: AnalyticsApi, operation: str) -> None:
    response = call(api, operation, MISSING)
    assert response.status == 401
    assert response.json()["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == 'Bearer realm="iotpipe"'


@pytest.mark.parametrize("headers", WRONG, ids=range(len(WRONG)))
@pytest.mark.parametrize("operation", PRIVATE)
def test_a_wrong_key_is_refused_on_every_private_route(
    api: AnalyticsApi, operation: str, headers: dict[str, str]
) -> None:
    response = call(api, operation, headers)
    assert response.status == 401
    assert response.json()["code"] == "unauthorized"


@pytest.mark.parametrize("headers", RIGHT, ids=range(len(RIGHT)))
@pytest.mark.parametrize("operation", ALL)
def test_a_right_key_is_served_on_every_route(
    api: AnalyticsApi, operation: str, headers: dict[str, str]
) -> None:
    response = call(api, operation, headers)
    assert response.status == success_status(api, operation), response.body


@pytest.mark.parametrize("headers", [MISSING, *WRONG[:2]], ids=["missing", "bearer", "header"])
@pytest.mark.parametrize("operation", sorted(PUBLIC))
def test_public_routes_need_no_key(
    api: AnalyticsApi, operation: str, headers: dict[str, str]
) -> None:
    assert call(api, operation, headers).status == 200


@pytest.mark.parametrize("operation", PRIVATE)
def test_with_no_key_configured_every_private_route_is_refused(
    filled: Filled, operation: str
) -> None:
    locked = AnalyticsApi.for_pipeline(filled.pipeline, ApiKeys())
    for headers in (MISSING, {"authorization": f"Bearer {KEY}"}, {"x-api-key": ""}):
        assert call(locked, operation, headers).status == 401


def test_keys_come_from_the_environment_and_explicitly() -> None:
    keys = ApiKeys.from_env({"IOTPIPE_API_KEYS": " alpha-1 , ,beta-2,"}, "gamma-3")
    assert len(keys) == 3
    assert all(keys.verify(k) for k in ("alpha-1", "beta-2", "gamma-3"))
    assert not keys.verify("alpha-1 ") and not keys.verify("") and not keys.verify(None)
    assert len(ApiKeys.from_env({})) == 0


@pytest.mark.parametrize("bad", ["", "has space", "tab\tkey", "caf\u00e9", "new\nline"])
def test_unusable_keys_are_refused_without_echoing_them(bad: str) -> None:
    with pytest.raises(ValueError) as raised:
        ApiKeys([bad])
    assert bad not in str(raised.value) or bad == ""


def test_keys_never_appear_in_a_repr() -> None:
    keys = ApiKeys([KEY, SECOND_KEY])
    assert KEY not in repr(keys) and SECOND_KEY not in repr(keys)
    assert repr(keys) == "ApiKeys(<2 keys>)"


@pytest.mark.parametrize("position", [0, 1, 2])
def test_verification_compares_every_key_wherever_the_match_is(
    monkeypatch: pytest.MonkeyPatch, position: int
) -> None:
    keys = ApiKeys(["key-a", "key-b", "key-c"])
    compared: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(len(a) + len(b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    assert keys.verify(["key-a", "key-b", "key-c"][position])
    # Three comparisons whether the first, second or last key matches, all of equal length
    # (digests): neither which key matched nor the key's length shows in the timing.
    assert compared == [64, 64, 64]
    compared.clear()
    assert not keys.verify("x" * 1000)
    assert compared == [64, 64, 64]


def test_presented_keys_reads_both_header_styles() -> None:
    assert presented_keys({"authorization": "Bearer  k1 ", "x-api-key": "k2"}) == ["k1", "k2"]
    assert presented_keys({"authorization": "Token k1"}) == []
    assert presented_keys({"x-api-key": "   "}) == []


class Exploding(QueryService):
    """A query service that fails unexpectedly."""

    def devices(self, *, limit: int, cursor: str | None = None) -> Page[DeviceSummary]:
        raise RuntimeError("the store exploded")


def test_keys_are_never_logged_or_echoed(
    api: AnalyticsApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers = [call(api, op, {"authorization": f"Bearer {WRONG_KEY}"}) for op in PRIVATE]
    answers += [call(api, op, {"x-api-key": KEY}) for op in ALL]
    # An unexpected failure while a key is present: logged, and still no key in the log.
    exploding = AnalyticsApi(Exploding(MemoryStore()), None, ApiKeys([KEY]))
    answers.append(call(exploding, "listDevices", {"authorization": f"Bearer {KEY}"}))
    assert answers[-1].status == 500
    assert "the store exploded" in caplog.text  # the failure itself is logged...
    for secret in (KEY, WRONG_KEY, SECOND_KEY):
        assert secret not in caplog.text  # ...but no key ever is
        assert all(secret.encode() not in a.body for a in answers)
        assert all(secret not in str(a.headers) for a in answers)
