"""Pagination: every walk returns exactly the unpaged truth; cursors are opaque and bound."""

from __future__ import annotations

import base64
import math
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from iotpipe.domain.time import MS_PER_HOUR, format_instant
from iotpipe.entrypoints.http import AnalyticsApi
from iotpipe.entrypoints.http.cursors import encode_cursor
from tests.http.conftest import DEVICES, HOURS, NOW, T0, get

pytestmark = pytest.mark.unit

DEVICE = "iot-sensor-002"
HOURLY = f"/v1/devices/{DEVICE}/hourly"
RANGE = {"from": format_instant(T0), "to": format_instant(NOW)}
HOUR = {"hour": format_instant(T0 + 4 * MS_PER_HOUR)}


def walk(api: AnalyticsApi, path: str, limits: Iterator[int], **query: str) -> list[dict[str, Any]]:
    """Every page of ``path`` in order, following ``next_cursor``; page sizes from ``limits``."""
    pages: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {**query, "limit": str(next(limits))}
        if cursor is not None:
            params["cursor"] = cursor
        response = get(api, path, **params)
        assert response.status == 200, response.body
        pages.append(response.json())
        cursor = pages[-1]["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 1000, "the walk does not end"


def items(pages: list[dict[str, Any]]) -> list[Any]:
    return [item for page in pages for item in page["items"]]


def forever(*sizes: int) -> Iterator[int]:
    while True:
        yield from sizes


@pytest.mark.parametrize("limit", [1, 2, 3, 6, 7, 1000])
def test_device_pages_add_up_to_the_whole_list(api: AnalyticsApi, limit: int) -> None:
    truth = get(api, "/v1/devices", limit="1000").json()["items"]
    pages = walk(api, "/v1/devices", forever(limit))
    assert items(pages) == truth and len(truth) == DEVICES
    assert len(pages) == math.ceil(DEVICES / limit)
    assert all(len(p["items"]) == limit for p in pages[:-1])


@pytest.mark.parametrize("limit", [1, 4, 24, 29, 30, 744])
def test_hourly_pages_add_up_to_the_whole_range(api: AnalyticsApi, limit: int) -> None:
    truth = get(api, HOURLY, limit="744", **RANGE).json()["items"]
    pages = walk(api, HOURLY, forever(limit), **RANGE)
    assert items(pages) == truth and len(truth) == HOURS
    assert all(len(p["items"]) == limit for p in pages[:-1])
    assert all((p["from"], p["to"]) == (RANGE["from"], RANGE["to"]) for p in pages)


@pytest.mark.parametrize("limit", [1, 2, 5, 1000])
def test_fleet_pages_add_up_and_each_carries_the_whole_fleet(api: AnalyticsApi, limit: int) -> None:
    truth = get(api, "/v1/fleet/hourly", limit="1000", **HOUR).json()
    pages = walk(api, "/v1/fleet/hourly", forever(limit), **HOUR)
    assert items(pages) == truth["items"] and len(truth["items"]) == DEVICES
    assert all(p["fleet"] == truth["fleet"] for p in pages)


def test_the_page_size_may_change_during_a_walk(api: AnalyticsApi) -> None:
    truth = get(api, HOURLY, limit="744", **RANGE).json()["items"]
    assert items(walk(api, HOURLY, forever(1, 7, 3), **RANGE)) == truth


def test_an_exactly_full_last_page_still_ends_the_walk(api: AnalyticsApi) -> None:
    page = get(api, "/v1/devices", limit=str(DEVICES)).json()
    assert len(page["items"]) == DEVICES and page["next_cursor"] is None


def _first_cursor(api: AnalyticsApi, path: str, **query: str) -> str:
    cursor = get(api, path, limit="1", **query).json()["next_cursor"]
    assert isinstance(cursor, str)
    return cursor


def test_cursors_are_opaque_base64url_tokens(api: AnalyticsApi) -> None:
    cursor = _first_cursor(api, HOURLY, **RANGE)
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    # The store's own cursor (here the hour in epoch ms) does not appear as such.
    assert str(T0) not in cursor and DEVICE not in cursor


@pytest.mark.parametrize(
    ("path", "issued_with", "used_with"),
    [
        (HOURLY, RANGE, {**RANGE, "from": format_instant(T0 + MS_PER_HOUR)}),
        (HOURLY, RANGE, {**RANGE, "to": format_instant(NOW - MS_PER_HOUR)}),
        ("/v1/fleet/hourly", HOUR, {"hour": format_instant(T0 + 5 * MS_PER_HOUR)}),
    ],
)
def test_a_cursor_is_refused_with_other_parameters(
    api: AnalyticsApi, path: str, issued_with: dict[str, str], used_with: dict[str, str]
) -> None:
    cursor = _first_cursor(api, path, **issued_with)
    assert get(api, path, cursor=cursor, **issued_with).status == 200
    refused = get(api, path, cursor=cursor, **used_with)
    assert refused.status == 400 and refused.json()["code"] == "invalid_cursor"


def test_a_cursor_is_refused_for_another_device_or_route(api: AnalyticsApi) -> None:
    cursor = _first_cursor(api, HOURLY, **RANGE)
    other = get(api, "/v1/devices/iot-sensor-001/hourly", cursor=cursor, **RANGE)
    assert (other.status, other.json()["code"]) == (400, "invalid_cursor")
    devices = get(api, "/v1/devices", cursor=cursor)
    assert (devices.status, devices.json()["code"]) == (400, "invalid_cursor")
    fleet_cursor = _first_cursor(api, "/v1/fleet/hourly", **HOUR)
    assert get(api, HOURLY, cursor=fleet_cursor, **RANGE).status == 400


def _tamper(cursor: str) -> str:
    token = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    token["c"] = str(int(token["c"]) + 7 * MS_PER_HOUR)  # skip a week ahead
    return base64.urlsafe_b64encode(orjson.dumps(token)).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "x",
        "not a cursor!",
        "eyJ2IjoxfQ",  # {"v":1}
        base64.urlsafe_b64encode(b"[1,2,3]").decode(),
        base64.urlsafe_b64encode(b'{"v":2,"q":"","c":"1"}').decode(),
        "\u00e9t\u00e9",
        "%00",
        "A" * 512,
    ],
)
def test_made_up_cursors_are_refused(api: AnalyticsApi, cursor: str) -> None:
    response = get(api, HOURLY, cursor=cursor, **RANGE)
    assert (response.status, response.json()["code"]) == (400, "invalid_cursor")


def test_an_edited_cursor_is_refused(api: AnalyticsApi) -> None:
    cursor = _first_cursor(api, HOURLY, **RANGE)
    response = get(api, HOURLY, cursor=_tamper(cursor), **RANGE)
    assert (response.status, response.json()["code"]) == (400, "invalid_cursor")


def test_a_forged_cursor_the_store_cannot_read_is_a_client_error(api: AnalyticsApi) -> None:
    # The binding is public, so a client can wrap any string; the store must not crash on it.
    forged = encode_cursor(("hourly", DEVICE, T0, NOW), "not-an-hour")
    assert forged is not None
    response = get(api, HOURLY, cursor=forged, **RANGE)
    assert (response.status, response.json()["code"]) == (400, "invalid_cursor")


def test_an_overlong_cursor_is_a_parameter_error(api: AnalyticsApi) -> None:
    response = get(api, HOURLY, cursor="A" * 513, **RANGE)
    assert (response.status, response.json()["code"]) == (400, "invalid_parameter")
