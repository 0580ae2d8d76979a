"""``POST /v1/readings`` against a corpus of bad input: refused with a reason, nothing crashes.

Body-level faults (not JSON, too deep, too big, too many, wrong media type) refuse the whole
request, and none of the valid readings inside it may be stored. Item-level faults reject the
item alone: sent alongside valid readings (and resends of them), the valid ones are accepted,
and after draining the stream the store holds each distinct valid reading exactly once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from iotpipe import Pipeline, in_memory_pipeline
from iotpipe.adapters.clock import ManualClock
from iotpipe.application.views import stats_json, window_json
from iotpipe.domain import Reason, Stats, parse_reading
from iotpipe.domain.time import MS_PER_HOUR, format_instant
from iotpipe.entrypoints.http import AnalyticsApi, ApiKeys, HttpResponse
from tests.http.conftest import KEY, NOW, post

pytestmark = pytest.mark.unit

OK_DEVICE = "corpus-ok"
START = NOW - 2 * MS_PER_HOUR


def valid(i: int) -> dict[str, Any]:
    """The i-th valid reading of the corpus device (distinct per i)."""
    return {
        "device_id": OK_DEVICE,
        "timestamp": format_instant(START + i * 1000),
        "temperature": round(20 + i / 10, 3),
        "location": {"lat": 48.85, "lon": 2.35},
    }


VALID = orjson.dumps(valid(0))


@dataclass(frozen=True)
class BodyCase:
    """A request refused as a whole."""

    name: str
    body: bytes
    status: int
    code: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemCase:
    """A reading rejected on its own, with the reason it must get."""

    name: str
    item: Any
    reason: Reason


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _with(**changes: Any) -> dict[str, Any]:
    item = {"device_id": "dev-1", "timestamp": format_instant(NOW - 60_000), "temperature": 20.5}
    item.update(changes)
    return {k: v for k, v in item.items() if v is not _DROP}


_DROP = object()
_BIG_STRING = "x" * (1 << 20)
_TOO_MANY = orjson.dumps([valid(i) for i in range(501)])

BODY_CASES = [
    BodyCase("empty body", b"", 400, "malformed_json"),
    BodyCase("whitespace only", b" \n\t ", 400, "malformed_json"),
    BodyCase(
        "truncated object", b'{"device_id": "corpus-ok", "timestamp": ', 400, "malformed_json"
    ),
    BodyCase("truncated array", b"[" + VALID + b",", 400, "malformed_json"),
    BodyCase(
        "NaN literal",
        b"[" + VALID + b',{"device_id":"a","temperature":NaN}]',
        400,
        "malformed_json",
    ),
    BodyCase(
        "Infinity literal", b'[{"device_id":"a","temperature":Infinity}]', 400, "malformed_json"
    ),
    BodyCase("-Infinity literal", b'{"device_id":"a","humidity":-Infinity}', 400, "malformed_json"),
    BodyCase("number overflowing a double", b'{"temperature":1e400}', 400, "malformed_json"),
    BodyCase("trailing garbage", VALID + b" trailing", 400, "malformed_json"),
    BodyCase("two documents", VALID + VALID, 400, "malformed_json"),
    BodyCase("single quotes", b"{'device_id': 'a'}", 400, "malformed_json"),
    BodyCase("byte order mark", b"\xef\xbb\xbf" + VALID, 400, "malformed_json"),
    BodyCase("invalid UTF-8", b'{"device_id": "\xff\xfe"}', 400, "malformed_json"),
    BodyCase("lone surrogate escape", b'{"device_id": "\\ud800"}', 400, "malformed_json"),
    BodyCase("comment", b"/* readings */" + VALID, 400, "malformed_json"),
    BodyCase("trailing comma", b"[" + VALID + b",]", 400, "malformed_json"),
    BodyCase("nested 100 deep", _nested(100), 400, "malformed_json"),
    BodyCase("nested 5000 deep", _nested(5000), 400, "malformed_json"),
    BodyCase(
        "deep inside an unknown member",
        VALID[:-1] + b',"extra":' + _nested(40) + b"}",
        400,
        "malformed_json",
    ),
    BodyCase("empty array", b"[]", 400, "no_readings"),
    BodyCase("501 readings", _TOO_MANY, 413, "too_many_items"),
    BodyCase(
        "body over 1 MiB",
        orjson.dumps([{**valid(0), "padding": _BIG_STRING}]),
        413,
        "payload_too_large",
    ),
    BodyCase(
        "Content-Length over 1 MiB",
        VALID,
        413,
        "payload_too_large",
        {"content-length": str((1 << 20) + 1)},
    ),
    BodyCase("text/plain", VALID, 415, "unsupported_media_type", {"content-type": "text/plain"}),
    BodyCase(
        "form encoded",
        VALID,
        415,
        "unsupported_media_type",
        {"content-type": "application/x-www-form-urlencoded"},
    ),
]

ITEM_CASES = [
    ItemCase("a string", "iot-sensor-001", Reason.NOT_AN_OBJECT),
    ItemCase("a number", 42, Reason.NOT_AN_OBJECT),
    ItemCase("null", None, Reason.NOT_AN_OBJECT),
    ItemCase("true", True, Reason.NOT_AN_OBJECT),
    ItemCase("an array", [valid(0)], Reason.NOT_AN_OBJECT),
    ItemCase("empty object", {}, Reason.MISSING_DEVICE_ID),
    ItemCase("no device_id", _with(device_id=_DROP), Reason.MISSING_DEVICE_ID),
    ItemCase("no timestamp", _with(timestamp=_DROP), Reason.MISSING_TIMESTAMP),
    ItemCase("empty device_id", _with(device_id=""), Reason.INVALID_DEVICE_ID),
    ItemCase("numeric device_id", _with(device_id=123), Reason.INVALID_DEVICE_ID),
    ItemCase("null device_id", _with(device_id=None), Reason.INVALID_DEVICE_ID),
    ItemCase("object device_id", _with(device_id={"id": 1}), Reason.INVALID_DEVICE_ID),
    ItemCase("unicode device_id", _with(device_id="d\u00f8vice"), Reason.INVALID_DEVICE_ID),
    ItemCase("emoji device_id", _with(device_id="sensor-\U0001f600"), Reason.INVALID_DEVICE_ID),
    ItemCase(
        "fullwidth device_id", _with(device_id="\uff44\uff45\uff56"), Reason.INVALID_DEVICE_ID
    ),
    ItemCase("path traversal", _with(device_id="../../etc/passwd"), Reason.INVALID_DEVICE_ID),
    ItemCase("SQL injection", _with(device_id="x'; DROP TABLE w;--"), Reason.INVALID_DEVICE_ID),
    ItemCase("script tag", _with(device_id="<script>alert(1)</script>"), Reason.INVALID_DEVICE_ID),
    ItemCase("JNDI lookup", _with(device_id="${jndi:ldap://x/a}"), Reason.INVALID_DEVICE_ID),
    ItemCase("NoSQL operator", _with(device_id={"$ne": None}), Reason.INVALID_DEVICE_ID),
    ItemCase("space in device_id", _with(device_id="dev 1"), Reason.INVALID_DEVICE_ID),
    ItemCase("trailing newline", _with(device_id="dev-1\n"), Reason.INVALID_DEVICE_ID),
    ItemCase("NUL in device_id", _with(device_id="dev\u00001"), Reason.INVALID_DEVICE_ID),
    ItemCase("leading dash", _with(device_id="-dev"), Reason.INVALID_DEVICE_ID),
    ItemCase("129 characters", _with(device_id="d" * 129), Reason.INVALID_DEVICE_ID),
    ItemCase("naive timestamp", _with(timestamp="2025-09-01T05:00:00"), Reason.NAIVE_TIMESTAMP),
    ItemCase("words for a time", _with(timestamp="yesterday"), Reason.INVALID_TIMESTAMP),
    ItemCase("epoch seconds", _with(timestamp=1756684800), Reason.INVALID_TIMESTAMP),
    ItemCase("date only", _with(timestamp="2025-09-01"), Reason.INVALID_TIMESTAMP),
    ItemCase("space separator", _with(timestamp="2025-09-01 05:00:00Z"), Reason.INVALID_TIMESTAMP),
    ItemCase("February 30th", _with(timestamp="2025-02-30T00:00:00Z"), Reason.INVALID_TIMESTAMP),
    ItemCase("hour 24", _with(timestamp="2025-09-01T24:00:00Z"), Reason.INVALID_TIMESTAMP),
    ItemCase(
        "offset +25:00", _with(timestamp="2025-09-01T05:00:00+25:00"), Reason.INVALID_TIMESTAMP
    ),
    ItemCase("before 1970", _with(timestamp="1969-12-31T23:59:59Z"), Reason.INVALID_TIMESTAMP),
    ItemCase("far future", _with(timestamp="2999-01-01T00:00:00Z"), Reason.FROM_FUTURE),
    ItemCase("years old", _with(timestamp="2020-01-01T00:00:00Z"), Reason.TOO_LATE),
    ItemCase("temperature as words", _with(temperature="hot"), Reason.INVALID_METRIC),
    ItemCase("temperature as a numeric string", _with(temperature="25.5"), Reason.INVALID_METRIC),
    ItemCase("temperature true", _with(temperature=True), Reason.INVALID_METRIC),
    ItemCase("temperature array", _with(temperature=[20]), Reason.INVALID_METRIC),
    ItemCase("temperature operator", _with(temperature={"$gt": 0}), Reason.INVALID_METRIC),
    ItemCase("temperature 1e308", _with(temperature=1e308), Reason.METRIC_OUT_OF_RANGE),
    ItemCase("huge integer", _with(temperature=10**30), Reason.METRIC_OUT_OF_RANGE),
    ItemCase("below absolute zero", _with(temperature=-300), Reason.METRIC_OUT_OF_RANGE),
    ItemCase("humidity over 100", _with(humidity=100.5), Reason.METRIC_OUT_OF_RANGE),
    ItemCase("negative humidity", _with(humidity=-0.1), Reason.METRIC_OUT_OF_RANGE),
    ItemCase("no metric", _with(temperature=_DROP), Reason.NO_METRICS),
    ItemCase("null metrics", _with(temperature=None, humidity=None), Reason.NO_METRICS),
    ItemCase("location as words", _with(location="here"), Reason.INVALID_LOCATION),
    ItemCase("latitude 91", _with(location={"lat": 91, "lon": 0}), Reason.INVALID_LOCATION),
    ItemCase("longitude -181", _with(location={"lat": 0, "lon": -181}), Reason.INVALID_LOCATION),
    ItemCase("no longitude", _with(location={"lat": 0}), Reason.INVALID_LOCATION),
    ItemCase(
        "coordinates as strings", _with(location={"lat": "0", "lon": "0"}), Reason.INVALID_LOCATION
    ),
    ItemCase("location array", _with(location=[1, 2]), Reason.INVALID_LOCATION),
]


def _name(case: BodyCase | ItemCase) -> str:
    return case.name


@pytest.fixture
def fresh() -> Pipeline:
    """An empty pipeline whose clock stands at NOW."""
    return in_memory_pipeline(clock=ManualClock(NOW))


def _api(pipeline: Pipeline) -> AnalyticsApi:
    return AnalyticsApi.for_pipeline(pipeline, ApiKeys([KEY]), check_responses=True)


def _send(api: AnalyticsApi, case: BodyCase) -> HttpResponse:
    return post(api, case.body, headers=case.headers)


def _post_items(api: AnalyticsApi, items: list[Any]) -> HttpResponse:
    # The standard library's encoder: orjson refuses integers beyond 64 bits, clients do not.
    return post(api, json.dumps(items, allow_nan=False).encode())


def test_the_corpus_holds_at_least_fifty_bad_inputs() -> None:
    assert len(BODY_CASES) + len(ITEM_CASES) >= 50
    names = [c.name for c in BODY_CASES] + [c.name for c in ITEM_CASES]
    assert len(set(names)) == len(names)


def test_every_item_case_is_really_rejected_by_the_domain_alone() -> None:
    # Guards the corpus itself: each item is invalid by validation or by lateness, not by luck.
    for case in ITEM_CASES:
        if case.reason in (Reason.FROM_FUTURE, Reason.TOO_LATE):
            parse_reading(case.item)  # valid in shape, refused only for its time
        else:
            with pytest.raises(Exception, match=case.reason.value):
                parse_reading(case.item)


@pytest.mark.parametrize("case", BODY_CASES, ids=_name)
def test_a_bad_body_is_refused_whole(fresh: Pipeline, case: BodyCase) -> None:
    response = _send(_api(fresh), case)
    assert response.status == case.status, response.body
    problem = response.json()
    assert problem["code"] == case.code and problem["status"] == case.status
    assert problem["type"] == f"https://iotpipe.dev/problems/{case.code}"
    assert response.headers["content-type"] == "application/problem+json"
    assert list(fresh.drain()) == []  # nothing reached the stream


@pytest.mark.parametrize("case", ITEM_CASES, ids=_name)
def test_a_bad_item_alone_is_refused_with_its_reason(fresh: Pipeline, case: ItemCase) -> None:
    response = _post_items(_api(fresh), [case.item])
    assert response.status == 400, response.body
    problem = response.json()
    assert problem["code"] == "invalid_readings"
    assert [(r["index"], r["reason"]) for r in problem["rejected"]] == [(0, case.reason.value)]
    assert problem["rejected"][0]["message"]
    assert list(fresh.drain()) == []


@pytest.mark.parametrize("case", ITEM_CASES, ids=_name)
def test_a_bad_item_among_valid_ones_rejects_only_itself(fresh: Pipeline, case: ItemCase) -> None:
    response = _post_items(_api(fresh), [valid(1), case.item, valid(2), valid(1)])
    assert response.status == 202, response.body
    body = response.json()
    assert body["accepted"] == 3 and body["unpublished"] == []
    assert [(r["index"], r["reason"]) for r in body["rejected"]] == [(1, case.reason.value)]


def test_valid_readings_sent_with_the_whole_corpus_are_stored_exactly_once(
    fresh: Pipeline,
) -> None:
    api = _api(fresh)
    sent: set[int] = set()
    for n, case in enumerate(ITEM_CASES):
        # Each request carries two new valid readings and resends of two earlier ones.
        batch = [valid(2 * n), case.item, valid(2 * n + 1), valid(max(0, n - 3)), valid(n // 2)]
        assert _post_items(api, batch).status == 202
        sent |= {2 * n, 2 * n + 1, max(0, n - 3), n // 2}
    for body_case in BODY_CASES:
        assert _send(api, body_case).status >= 400  # valid readings inside must not count
    for _ in fresh.drain():
        pass

    devices = [d.device_id for d in fresh.query.devices(limit=1000).items]
    assert devices == [OK_DEVICE]
    expected = [parse_reading(valid(i)) for i in sorted(sent)]
    windows = list(fresh.query.every_window())
    stored = [w for w in windows if w.device_id == OK_DEVICE]
    assert sum(w.stats.count for w in stored) == len(expected)
    for window in stored:
        in_hour = [r for r in expected if r.hour_ms == window.hour_ms]
        assert window_json(window) == {
            "device_id": OK_DEVICE,
            "hour": format_instant(window.hour_ms),
            **stats_json(Stats.of(in_hour)),
        }
