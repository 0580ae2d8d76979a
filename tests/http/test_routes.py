"""Every route's happy path over a simulated fleet, against independently computed truth.

Aggregates must be exactly what ``iotpipe process`` writes for the same payloads (byte for
byte), and daily, fleet and latest answers must equal aggregates computed directly from the
distinct readings.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from iotpipe import __version__
from iotpipe.application.views import stats_json
from iotpipe.domain import Reading, Stats
from iotpipe.domain.time import MS_PER_DAY, MS_PER_HOUR, format_instant
from iotpipe.entrypoints.cli import main as cli
from iotpipe.entrypoints.http import AnalyticsApi, HttpRequest, dashboard
from tests.http.conftest import DEVICES, HOURS, KEY, NOW, T0, Filled, get, post

pytestmark = pytest.mark.unit

DEVICE = "iot-sensor-003"


@pytest.fixture
def process_output(filled: Filled, tmp_path: Path) -> list[bytes]:
    """``iotpipe process`` over the same payloads: one JSON line per device and hour."""
    source = tmp_path / "readings.jsonl"
    source.write_text("\n".join(filled.payloads) + "\n")
    out = tmp_path / "hourly.jsonl"
    assert cli(["process", str(source), "-o", str(out)]) == 0
    return out.read_bytes().splitlines()


def _by(lines: list[bytes], **match: str) -> list[bytes]:
    return [line for line in lines if all(orjson.loads(line)[k] == v for k, v in match.items())]


def _readings_of(filled: Filled, device: str) -> list[Reading]:
    return [r for r in filled.readings() if r.device_id == device]


def test_health_answers_without_a_key(api: AnalyticsApi) -> None:
    response = get(api, "/v1/health", key=None)
    assert response.status == 200
    assert response.json() == {"status": "ok", "version": __version__}


def test_devices_lists_every_device_with_its_last_event_time(
    api: AnalyticsApi, filled: Filled
) -> None:
    response = get(api, "/v1/devices")
    assert response.status == 200
    body = response.json()
    last_seen: dict[str, int] = defaultdict(int)
    for reading in filled.readings():
        last_seen[reading.device_id] = max(last_seen[reading.device_id], reading.timestamp_ms)
    assert body == {
        "items": [
            {"device_id": d, "last_seen": format_instant(ms)} for d, ms in sorted(last_seen.items())
        ],
        "next_cursor": None,
    }
    assert len(body["items"]) == DEVICES


def test_hourly_items_are_byte_identical_to_iotpipe_process(
    api: AnalyticsApi, process_output: list[bytes]
) -> None:
    query = {"from": format_instant(T0), "to": format_instant(NOW), "limit": "744"}
    response = get(api, f"/v1/devices/{DEVICE}/hourly", **query)
    assert response.status == 200
    body = response.json()
    assert [orjson.dumps(item) for item in body["items"]] == _by(process_output, device_id=DEVICE)
    assert len(body["items"]) == HOURS
    assert (body["device_id"], body["from"], body["to"]) == (DEVICE, query["from"], query["to"])
    assert body["next_cursor"] is None


def test_hourly_range_includes_from_and_excludes_to(api: AnalyticsApi) -> None:
    start, end = T0 + 5 * MS_PER_HOUR, T0 + 9 * MS_PER_HOUR
    # Instants inside an hour: the hour starting before "from" is out, the one at "to" too.
    query = {"from": format_instant(start - 1), "to": format_instant(end)}
    hours = [i["hour"] for i in get(api, f"/v1/devices/{DEVICE}/hourly", **query).json()["items"]]
    assert hours == [format_instant(start + h * MS_PER_HOUR) for h in range(4)]


def test_instants_with_offsets_mean_the_same_instant(api: AnalyticsApi) -> None:
    utc = {"from": "2025-08-31T02:00:00Z", "to": "2025-08-31T05:00:00Z"}
    shifted = {"from": "2025-08-31T04:00:00+02:00", "to": "2025-08-31T07:00:00+02:00"}
    # A "+" sent unencoded in a query string arrives as a space.
    spaced = {"from": "2025-08-31T04:00:00 02:00", "to": "2025-08-31T07:00:00 02:00"}
    bodies = [get(api, f"/v1/devices/{DEVICE}/hourly", **q).json() for q in (utc, shifted, spaced)]
    assert len(bodies[0]["items"]) == 3
    assert bodies[0] == bodies[1] == bodies[2]


def test_daily_rollups_equal_the_aggregate_of_each_days_readings(
    api: AnalyticsApi, filled: Filled
) -> None:
    query = {"from": format_instant(T0 + 3 * MS_PER_HOUR), "to": format_instant(NOW)}
    response = get(api, f"/v1/devices/{DEVICE}/daily", **query)
    assert response.status == 200
    body = response.json()
    by_day: dict[int, list[Reading]] = defaultdict(list)
    for reading in _readings_of(filled, DEVICE):
        by_day[reading.timestamp_ms - reading.timestamp_ms % MS_PER_DAY].append(reading)
    expected = [
        {"device_id": DEVICE, "day": format_instant(day)[:10], **stats_json(Stats.of(rs))}
        for day, rs in sorted(by_day.items())
    ]
    assert body["items"] == expected
    assert [i["day"] for i in body["items"]] == ["2025-08-31", "2025-09-01"]
    assert (body["from"], body["to"]) == (query["from"], query["to"])


def test_latest_is_the_reading_with_the_greatest_event_time(
    api: AnalyticsApi, filled: Filled
) -> None:
    newest = max(_readings_of(filled, DEVICE), key=lambda r: r.timestamp_ms)
    response = get(api, f"/v1/devices/{DEVICE}/latest")
    assert response.status == 200
    assert response.json() == newest.to_json()


def test_fleet_hour_lists_every_device_and_merges_them_exactly(
    api: AnalyticsApi, filled: Filled, process_output: list[bytes]
) -> None:
    hour = T0 + 7 * MS_PER_HOUR
    response = get(api, "/v1/fleet/hourly", hour=format_instant(hour))
    assert response.status == 200
    body = response.json()
    assert [orjson.dumps(i) for i in body["items"]] == _by(
        process_output, hour=format_instant(hour)
    )
    in_hour = [r for r in filled.readings() if r.hour_ms == hour]
    assert body["fleet"] == stats_json(Stats.of(in_hour))
    assert body["fleet"]["count"] == len(in_hour) > 0
    assert body["devices"] == len({r.device_id for r in in_hour}) == len(body["items"])
    assert (body["hour"], body["next_cursor"]) == (format_instant(hour), None)


def test_fleet_hour_without_data_is_empty_not_an_error(api: AnalyticsApi) -> None:
    body = get(api, "/v1/fleet/hourly", hour="2020-01-01T00:00:00Z").json()
    assert body["items"] == [] and body["fleet"]["count"] == 0 and body["devices"] == 0


def test_posted_readings_are_aggregated_after_the_stream_is_drained(
    api: AnalyticsApi, filled: Filled
) -> None:
    base = NOW - MS_PER_HOUR // 2
    new: list[dict[str, Any]] = [
        {"device_id": "new-device", "timestamp": format_instant(base + i * 1000), "humidity": i}
        for i in range(5)
    ]
    response = post(api, [*new, new[0]])  # a resend inside the same request
    assert response.status == 202
    assert response.json() == {"accepted": 6, "rejected": [], "unpublished": []}
    assert get(api, "/v1/devices/new-device/latest").status == 404  # not processed yet
    for _ in filled.pipeline.drain():
        pass
    assert get(api, "/v1/devices/new-device/latest").json() == new[-1] | {"humidity": 4.0}
    hour = format_instant(base - base % MS_PER_HOUR)
    items = get(
        api, "/v1/devices/new-device/hourly", **{"from": hour, "to": format_instant(NOW)}
    ).json()["items"]
    assert [(i["count"], i["humidity"]["mean"]) for i in items] == [(5, 2.0)]


def test_a_single_reading_object_is_accepted_like_an_array_of_one(api: AnalyticsApi) -> None:
    reading = {"device_id": "solo", "timestamp": format_instant(NOW - 1000), "temperature": 1.5}
    assert post(api, reading).json() == {"accepted": 1, "rejected": [], "unpublished": []}


def test_root_serves_the_dashboard_file_when_it_exists(
    api: AnalyticsApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = tmp_path / "dashboard.html"
    page.write_bytes(b"<!doctype html><title>dash</title>")
    monkeypatch.setattr(dashboard, "DASHBOARD", (str(page),))
    response = get(api, "/", key=None)
    assert (response.status, response.body) == (200, page.read_bytes())
    assert response.headers["content-type"] == "text/html; charset=utf-8"


def test_root_serves_a_placeholder_linking_the_docs_until_the_dashboard_exists(
    api: AnalyticsApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard, "DASHBOARD", (str(tmp_path / "missing.html"),))
    response = get(api, "/", key=None)
    assert response.status == 200 and response.body == dashboard.PLACEHOLDER
    assert b'href="/v1/openapi.json"' in response.body


def test_the_dashboard_is_looked_up_in_the_packages_static_folder() -> None:
    assert dashboard.DASHBOARD == ("static", "dashboard.html")


def test_head_answers_like_get(api: AnalyticsApi) -> None:
    head = api.handle(HttpRequest("HEAD", "/v1/devices", {}, {"x-api-key": KEY}))
    assert head.status == 200
    assert head.headers["content-length"] == str(len(get(api, "/v1/devices").body))


def test_the_text_nesting_check_agrees_with_walking_the_json() -> None:
    # The C-speed measure of the body's text decides for the exact walk: they must agree.
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from iotpipe.entrypoints.http.endpoints import _nesting, _too_deep

    scalars = (
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False)
    )
    text = st.text(alphabet=st.sampled_from('[]{}"\\ab,:'), max_size=8)
    values = st.recursive(
        scalars | text,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
        max_leaves=40,
    )

    @settings(max_examples=300, deadline=None)
    @given(values, st.integers(min_value=0, max_value=12))
    def agree(value: object, limit: int) -> None:
        body = orjson.dumps(value)
        assert (_nesting(body) > limit) == _too_deep(value, limit)

    agree()
