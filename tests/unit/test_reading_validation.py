"""Validation of reading payloads: the outcome table, error precedence and the two paths.

``parse_reading`` validates the common, well-formed payload on a fast path and everything else
through the pydantic declaration; the property tests below hold the two together.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import iotpipe
from iotpipe.domain import InvalidReading, Location, Reading, Reason, parse_reading
from iotpipe.domain.kernels import fast_reading
from iotpipe.domain.schema import ReadingPayload, _to_reading
from tests.strategies import BASE_MS, payload, readings

pytestmark = pytest.mark.unit

T0 = BASE_MS  # 2025-08-31T10:00:00Z
MINUTE = 60_000
STAMP = "2025-08-31T10:00:00Z"
BASE: dict[str, Any] = {"device_id": "d1", "timestamp": STAMP, "temperature": 20.5}
_DROP = object()


def p(**changes: Any) -> dict[str, Any]:
    """The base payload with fields replaced (or dropped, with ``_DROP``)."""
    body = dict(BASE)
    for key, value in changes.items():
        if value is _DROP:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def ok(
    device_id: str = "d1",
    timestamp_ms: int = T0,
    values: tuple[int | None, ...] = (20_500, None),
    location: Location | None = None,
) -> Reading:
    return Reading(device_id, timestamp_ms, values, location)


R = Reason
CASES: list[Any] = [
    # --- the base case and device ids ---------------------------------------------------------
    pytest.param(p(), ok(), id="base"),
    pytest.param(p(device_id=_DROP), R.MISSING_DEVICE_ID, id="device-missing"),
    pytest.param(p(device_id=""), R.INVALID_DEVICE_ID, id="device-empty"),
    pytest.param(p(device_id="a" * 128), ok(device_id="a" * 128), id="device-128-max"),
    pytest.param(p(device_id="a" * 129), R.INVALID_DEVICE_ID, id="device-129-too-long"),
    pytest.param(p(device_id="x"), ok(device_id="x"), id="device-one-char"),
    pytest.param(p(device_id="A.b:c-9_Z"), ok(device_id="A.b:c-9_Z"), id="device-all-classes"),
    pytest.param(p(device_id="9lives"), ok(device_id="9lives"), id="device-leading-digit"),
    pytest.param(p(device_id="dev#1"), R.INVALID_DEVICE_ID, id="device-hash"),
    pytest.param(p(device_id="dev/1"), R.INVALID_DEVICE_ID, id="device-slash"),
    pytest.param(p(device_id="dev 1"), R.INVALID_DEVICE_ID, id="device-space"),
    pytest.param(p(device_id="dévice"), R.INVALID_DEVICE_ID, id="device-unicode-letter"),
    pytest.param(p(device_id="٣"), R.INVALID_DEVICE_ID, id="device-unicode-digit"),
    pytest.param(p(device_id="-dev"), R.INVALID_DEVICE_ID, id="device-leading-dash"),
    pytest.param(p(device_id=".dev"), R.INVALID_DEVICE_ID, id="device-leading-dot"),
    pytest.param(p(device_id="dev\n"), R.INVALID_DEVICE_ID, id="device-trailing-newline"),
    pytest.param(p(device_id=123), R.INVALID_DEVICE_ID, id="device-int"),
    pytest.param(p(device_id=None), R.INVALID_DEVICE_ID, id="device-null"),
    pytest.param(p(device_id=True), R.INVALID_DEVICE_ID, id="device-bool"),
    pytest.param(p(device_id=["d1"]), R.INVALID_DEVICE_ID, id="device-list"),
    # --- timestamps ---------------------------------------------------------------------------
    pytest.param(p(timestamp=_DROP), R.MISSING_TIMESTAMP, id="ts-missing"),
    pytest.param(p(timestamp="2025-08-31t10:00:00z"), ok(), id="ts-lowercase-t-z"),
    pytest.param(
        p(timestamp="2025-08-31T12:30:00+02:00"),
        ok(timestamp_ms=T0 + 30 * MINUTE),
        id="ts-offset-plus",
    ),
    pytest.param(p(timestamp="2025-08-31T04:30:00-05:30"), ok(), id="ts-offset-minus"),
    pytest.param(p(timestamp="2025-08-31T10:00:00+00:00"), ok(), id="ts-offset-zero"),
    pytest.param(p(timestamp="2025-08-31T10:00:00.5Z"), ok(timestamp_ms=T0 + 500), id="ts-frac-1"),
    pytest.param(
        p(timestamp="2025-08-31T10:00:00.123Z"), ok(timestamp_ms=T0 + 123), id="ts-frac-3"
    ),
    pytest.param(
        p(timestamp="2025-08-31T10:00:00.123999Z"),
        ok(timestamp_ms=T0 + 123),
        id="ts-frac-truncated",
    ),
    pytest.param(
        p(timestamp="2025-08-31T10:00:00.999999999Z"),
        ok(timestamp_ms=T0 + 999),
        id="ts-frac-9-digits",
    ),
    pytest.param(
        p(timestamp="2025-08-31T12:00:00.123456789+02:00"),
        ok(timestamp_ms=T0 + 123),
        id="ts-frac-9-digits-offset",
    ),
    pytest.param(
        p(timestamp="2025-08-31T10:00:00.1234567891Z"), R.INVALID_TIMESTAMP, id="ts-frac-10-digits"
    ),
    pytest.param(p(timestamp="2025-08-31T10:00:00.Z"), R.INVALID_TIMESTAMP, id="ts-frac-empty"),
    pytest.param(p(timestamp="2025-08-31T10:00:00"), R.NAIVE_TIMESTAMP, id="ts-naive"),
    pytest.param(p(timestamp="2025-08-31T10:00:00.250"), R.NAIVE_TIMESTAMP, id="ts-naive-frac"),
    pytest.param(p(timestamp="2025-08-31"), R.INVALID_TIMESTAMP, id="ts-date-only"),
    pytest.param(p(timestamp="2025-08-31T10:00Z"), R.INVALID_TIMESTAMP, id="ts-no-seconds"),
    pytest.param(p(timestamp="2025-08-31 10:00:00Z"), R.INVALID_TIMESTAMP, id="ts-space-separator"),
    pytest.param(
        p(timestamp="2025-08-31T10:00:00+0200"), R.INVALID_TIMESTAMP, id="ts-offset-no-colon"
    ),
    pytest.param(p(timestamp="2025-08-31T10:00:00+24:00"), R.INVALID_TIMESTAMP, id="ts-offset-24h"),
    pytest.param(p(timestamp=1_756_634_400), R.INVALID_TIMESTAMP, id="ts-epoch-seconds"),
    pytest.param(p(timestamp=T0), R.INVALID_TIMESTAMP, id="ts-epoch-ms"),
    pytest.param(p(timestamp=1_756_634_400.5), R.INVALID_TIMESTAMP, id="ts-epoch-float"),
    pytest.param(p(timestamp=None), R.INVALID_TIMESTAMP, id="ts-null"),
    pytest.param(p(timestamp="2025-02-30T10:00:00Z"), R.INVALID_TIMESTAMP, id="ts-feb-30"),
    pytest.param(p(timestamp="2025-13-01T10:00:00Z"), R.INVALID_TIMESTAMP, id="ts-month-13"),
    pytest.param(p(timestamp="2025-08-31T24:00:00Z"), R.INVALID_TIMESTAMP, id="ts-hour-24"),
    pytest.param(p(timestamp="2016-12-31T23:59:60Z"), R.INVALID_TIMESTAMP, id="ts-leap-second"),
    pytest.param(p(timestamp=STAMP + "\n"), R.INVALID_TIMESTAMP, id="ts-trailing-newline"),
    pytest.param(p(timestamp=" " + STAMP), R.INVALID_TIMESTAMP, id="ts-leading-space"),
    pytest.param(
        p(timestamp="２０２５-08-31T10:00:00Z"), R.INVALID_TIMESTAMP, id="ts-fullwidth-digits"
    ),
    pytest.param(p(timestamp="٢٠٢٥-08-31T10:00:00Z"), R.INVALID_TIMESTAMP, id="ts-arabic-digits"),
    pytest.param(p(timestamp="yesterday"), R.INVALID_TIMESTAMP, id="ts-words"),
    # --- metrics ------------------------------------------------------------------------------
    pytest.param(p(temperature=20), ok(values=(20_000, None)), id="metric-int"),
    pytest.param(p(temperature=21.1234), ok(values=(21_123, None)), id="metric-fixed-point"),
    pytest.param(p(temperature=0.1 + 0.2), ok(values=(300, None)), id="metric-float-noise"),
    pytest.param(p(temperature=-273.15), ok(values=(-273_150, None)), id="temp-min-inclusive"),
    pytest.param(p(temperature=1000), ok(values=(1_000_000, None)), id="temp-max-inclusive"),
    pytest.param(p(temperature=-273.16), R.METRIC_OUT_OF_RANGE, id="temp-below-min"),
    pytest.param(p(temperature=1000.001), R.METRIC_OUT_OF_RANGE, id="temp-above-max"),
    pytest.param(p(temperature=_DROP, humidity=0), ok(values=(None, 0)), id="hum-min-inclusive"),
    pytest.param(
        p(temperature=_DROP, humidity=100), ok(values=(None, 100_000)), id="hum-max-inclusive"
    ),
    pytest.param(p(humidity=-0.001), R.METRIC_OUT_OF_RANGE, id="hum-below-min"),
    pytest.param(p(humidity=100.001), R.METRIC_OUT_OF_RANGE, id="hum-above-max"),
    pytest.param(p(humidity=55.5), ok(values=(20_500, 55_500)), id="both-metrics"),
    pytest.param(
        p(temperature=None, humidity=40), ok(values=(None, 40_000)), id="null-metric-absent"
    ),
    pytest.param(p(temperature=10**400), R.METRIC_OUT_OF_RANGE, id="metric-huge-int"),
    pytest.param(p(temperature=-(10**400)), R.METRIC_OUT_OF_RANGE, id="metric-huge-negative-int"),
    pytest.param(p(temperature=float("inf")), R.METRIC_OUT_OF_RANGE, id="metric-inf"),
    pytest.param(p(temperature=float("-inf")), R.METRIC_OUT_OF_RANGE, id="metric-minus-inf"),
    pytest.param(p(humidity=float("nan")), R.METRIC_OUT_OF_RANGE, id="metric-nan"),
    pytest.param(p(temperature=True), R.INVALID_METRIC, id="metric-bool"),
    pytest.param(p(temperature="20"), R.INVALID_METRIC, id="metric-numeric-string"),
    pytest.param(p(temperature=[20]), R.INVALID_METRIC, id="metric-list"),
    pytest.param(p(humidity={"value": 20}), R.INVALID_METRIC, id="metric-object"),
    pytest.param(p(temperature=_DROP), R.NO_METRICS, id="no-metrics"),
    pytest.param(p(temperature=None, humidity=None), R.NO_METRICS, id="all-metrics-null"),
    # --- location -----------------------------------------------------------------------------
    pytest.param(
        p(location={"lat": 51.5074, "lon": -0.1278}),
        ok(location=Location(51.5074, -0.1278)),
        id="loc-valid",
    ),
    pytest.param(p(location={"lat": 1, "lon": 2}), ok(location=Location(1.0, 2.0)), id="loc-ints"),
    pytest.param(
        p(location={"lat": 90, "lon": -180}), ok(location=Location(90.0, -180.0)), id="loc-bounds-1"
    ),
    pytest.param(
        p(location={"lat": -90, "lon": 180}), ok(location=Location(-90.0, 180.0)), id="loc-bounds-2"
    ),
    pytest.param(
        p(location={"lat": 1, "lon": 2, "alt": 300}),
        ok(location=Location(1.0, 2.0)),
        id="loc-extra-key",
    ),
    pytest.param(p(location=None), ok(), id="loc-null-absent"),
    pytest.param(p(location={"lat": 51.5}), R.INVALID_LOCATION, id="loc-missing-lon"),
    pytest.param(p(location={}), R.INVALID_LOCATION, id="loc-empty-object"),
    pytest.param(p(location={"lat": 91, "lon": 0}), R.INVALID_LOCATION, id="loc-lat-91"),
    pytest.param(p(location={"lat": 0, "lon": -181}), R.INVALID_LOCATION, id="loc-lon-minus-181"),
    pytest.param(p(location={"lat": -90.5, "lon": 0}), R.INVALID_LOCATION, id="loc-lat-minus-90.5"),
    pytest.param(p(location={"lat": 0, "lon": 180.5}), R.INVALID_LOCATION, id="loc-lon-180.5"),
    pytest.param(p(location={"lat": "51.5", "lon": "0"}), R.INVALID_LOCATION, id="loc-strings"),
    pytest.param(p(location={"lat": True, "lon": 0}), R.INVALID_LOCATION, id="loc-bool-lat"),
    pytest.param(p(location={"lat": None, "lon": 0}), R.INVALID_LOCATION, id="loc-null-lat"),
    pytest.param(p(location={"lat": float("nan"), "lon": 0}), R.INVALID_LOCATION, id="loc-nan-lat"),
    pytest.param(p(location={"lat": 0, "lon": 10**400}), R.INVALID_LOCATION, id="loc-huge-lon"),
    pytest.param(p(location="51.5,-0.12"), R.INVALID_LOCATION, id="loc-string"),
    pytest.param(p(location=True), R.INVALID_LOCATION, id="loc-bool"),
    pytest.param(p(location=[51.5, -0.12]), R.INVALID_LOCATION, id="loc-list"),
    pytest.param(p(location=0), R.INVALID_LOCATION, id="loc-number"),
    # --- extra fields and the top level -------------------------------------------------------
    pytest.param(
        p(unit="degC", firmware={"version": [1, 2]}, pressure="high"), ok(), id="extra-fields"
    ),
    pytest.param([], R.NOT_AN_OBJECT, id="top-empty-list"),
    pytest.param([BASE], R.NOT_AN_OBJECT, id="top-list-of-reading"),
    pytest.param(orjson.dumps(BASE).decode(), R.NOT_AN_OBJECT, id="top-json-string"),
    pytest.param(42, R.NOT_AN_OBJECT, id="top-int"),
    pytest.param(None, R.NOT_AN_OBJECT, id="top-null"),
    pytest.param(True, R.NOT_AN_OBJECT, id="top-bool"),
]


@pytest.mark.parametrize(("body", "expected"), CASES)
def test_payload_outcome(body: object, expected: Reading | Reason) -> None:
    if isinstance(expected, Reason):
        with pytest.raises(InvalidReading) as caught:
            parse_reading(body)
        assert caught.value.reason is expected
        message = caught.value.message
        assert isinstance(message, str)
        assert message.strip()
        assert message != expected.value
        assert "pydantic" not in message.lower()
        assert str(caught.value) == f"{expected.value}: {message}"
    else:
        reading = parse_reading(body)
        assert reading == expected
        # Exact types too: fixed point ints, float coordinates.
        assert all(v is None or type(v) is int for v in reading.values)
        if reading.location is not None:
            assert all(type(c) is float for c in reading.location)


def test_the_table_is_big_and_covers_every_validation_reason() -> None:
    assert len(CASES) >= 40
    reasons = {c.values[1] for c in CASES if isinstance(c.values[1], Reason)}
    assert reasons == {
        R.NOT_AN_OBJECT,
        R.MISSING_DEVICE_ID,
        R.INVALID_DEVICE_ID,
        R.MISSING_TIMESTAMP,
        R.INVALID_TIMESTAMP,
        R.NAIVE_TIMESTAMP,
        R.INVALID_METRIC,
        R.METRIC_OUT_OF_RANGE,
        R.NO_METRICS,
        R.INVALID_LOCATION,
    }


def test_payloads_are_not_mutated() -> None:
    body = p(location={"lat": 1, "lon": 2}, extra=[1])
    snapshot = orjson.dumps(body)
    parse_reading(body)
    assert orjson.dumps(body) == snapshot


# --- error precedence -------------------------------------------------------------------------

BAD_LOCATION = {"lat": 91, "lon": 0}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            {"device_id": "a/b", "timestamp": "now", "temperature": "hot", "location": 1},
            R.INVALID_DEVICE_ID,
            id="device-before-all",
        ),
        pytest.param(
            {"timestamp": "now", "temperature": 5000, "location": BAD_LOCATION},
            R.MISSING_DEVICE_ID,
            id="missing-device-before-all",
        ),
        pytest.param(
            {"device_id": "", "humidity": -1},
            R.INVALID_DEVICE_ID,
            id="device-before-missing-timestamp",
        ),
        pytest.param(
            {"device_id": "d1", "timestamp": "2025-08-31T10:00:00", "temperature": "hot"},
            R.NAIVE_TIMESTAMP,
            id="naive-before-metric",
        ),
        pytest.param(
            {"device_id": "d1", "temperature": True, "location": "x"},
            R.MISSING_TIMESTAMP,
            id="missing-timestamp-before-metric",
        ),
        pytest.param(
            {"device_id": "d1", "timestamp": 0, "location": "x"},
            R.INVALID_TIMESTAMP,
            id="timestamp-before-location",
        ),
        pytest.param(
            {"device_id": "d1", "timestamp": "2025-08-31T10:00:00Z"},
            R.NO_METRICS,
            id="no-metrics-alone",
        ),
        pytest.param(
            {"device_id": "d1", "timestamp": "Feb 30"},
            R.INVALID_TIMESTAMP,
            id="timestamp-before-no-metrics",
        ),
        pytest.param(
            p(humidity=140, temperature="hot", location=BAD_LOCATION),
            R.INVALID_METRIC,
            id="temperature-before-humidity-and-location",
        ),
        pytest.param(
            p(temperature=5000, humidity="wet"),
            R.METRIC_OUT_OF_RANGE,
            id="temperature-range-before-humidity-type",
        ),
        pytest.param(
            p(humidity=140, location="x"),
            R.METRIC_OUT_OF_RANGE,
            id="humidity-before-location",
        ),
        pytest.param(
            p(location=BAD_LOCATION, extra="ignored"),
            R.INVALID_LOCATION,
            id="location-last",
        ),
    ],
)
def test_first_problem_in_field_order_wins(body: dict[str, Any], expected: Reason) -> None:
    with pytest.raises(InvalidReading) as caught:
        parse_reading(body)
    assert caught.value.reason is expected


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan"), 10**400])
def test_non_finite_metric_code_is_stable(bad: float) -> None:
    """Python-level inf/nan/huge values are always ``metric_out_of_range``, on both metrics."""
    for metric in ("temperature", "humidity"):
        for _ in range(3):
            with pytest.raises(InvalidReading) as caught:
                parse_reading({"device_id": "d1", "timestamp": STAMP, metric: bad})
            assert caught.value.reason is R.METRIC_OUT_OF_RANGE


# --- the fast path and the pydantic path agree ------------------------------------------------

FIELDS = ("device_id", "timestamp", "temperature", "humidity", "location")

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**400, -(10**400), 2**63, -(2**63) - 1])
    | st.floats()
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _digits(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=n, max_size=n)


@st.composite
def rfc3339ish(draw: st.DrawFn) -> str:
    """Timestamp-like strings from RFC 3339 pieces, valid and subtly invalid."""
    year = draw(
        st.sampled_from(["2025", "2024", "1970", "1969", "0001", "0000", "9998"]) | _digits(4)
    )
    month = draw(st.sampled_from(["01", "02", "08", "12", "00", "13"]) | _digits(2))
    day = draw(st.sampled_from(["01", "28", "29", "30", "31", "00", "32"]))
    sep = draw(st.sampled_from(["T", "t", " ", "", "_"]))
    hour = draw(st.sampled_from(["00", "10", "23", "24", "99"]))
    minute = draw(st.sampled_from(["00", "30", "59", "60"]))
    second = draw(st.sampled_from(["00", "30", "59", "60", "61"]))
    fraction = draw(
        st.sampled_from(["", "", ".", ".5", ".123", ".123999", ".999999999", ".1234567890"])
        | st.integers(1, 11).flatmap(_digits).map(lambda d: "." + d)
    )
    offset = draw(
        st.sampled_from(
            [
                *("Z", "z", "", "+02:00", "-05:30", "+00:00", "-00:00", "+23:59", "+24:00"),
                *("+0200", "+02", " Z", "Z\n", "\nZ", "UTC"),
            ]
        )
    )
    text = f"{year}-{month}-{day}{sep}{hour}:{minute}:{second}{fraction}{offset}"
    if draw(st.integers(0, 9)) == 0:  # now and then, one character swapped for another
        i = draw(st.integers(0, len(text) - 1))
        text = (
            text[:i] + draw(st.sampled_from(["٣", "３", "1", "-", ":", "", "  "])) + text[i + 1 :]
        )
    return text


huge_ints = st.sampled_from([10**400, -(10**400), 2**1024, 10**20])
numbers = st.one_of(
    st.integers(-400, 1100),
    st.floats(-400, 1100),
    st.floats(),
    huge_ints,
    st.sampled_from(
        [
            *(-273.15, -273.1500001, 1000, 1000.0000001, 0, 0.0, -0.0, 100, 100.0000001, -1e-9),
            *(90, -90, 180, -180, 90.0000001, -90.0000001, 180.0000001, -180.0000001, -90.5),
            *(1, 1.0, 45.5, -45),
        ]
    ),
)
field_values: dict[str, st.SearchStrategy[Any]] = {
    "device_id": st.one_of(
        st.text(max_size=10),
        st.text(alphabet="abcAZ09._:-#/ é", min_size=1, max_size=140),
        st.sampled_from(["a" * 128, "a" * 129, "-x", "x#", "", "d1\n", "ok-1"]),
        json_values,
    ),
    "timestamp": rfc3339ish() | json_values,
    "temperature": numbers | json_values,
    "humidity": numbers | json_values,
    "location": st.one_of(
        st.none(),
        st.fixed_dictionaries({"lat": numbers, "lon": numbers}),
        st.fixed_dictionaries({"lat": numbers, "lon": numbers}, optional={"alt": numbers}),
        st.dictionaries(st.sampled_from(["lat", "lon", "alt"]), numbers | json_values, max_size=3),
        json_values,
    ),
}


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, Any]:
    """Well-formed payloads from the shared strategies, and mutations of them.

    Mutating one field of an otherwise good payload reaches the deep checks of each field;
    mutating several at once reaches the combinations.
    """
    body = payload(draw(readings()))
    mode = draw(st.sampled_from(["clean", "one", "one", "many", "many"]))
    if mode == "clean":
        return body
    if mode == "one":
        names = [draw(st.sampled_from(FIELDS))]
    else:
        names = [name for name in FIELDS if draw(st.booleans())]
    for name in names:
        if draw(st.integers(0, 3)) == 0:
            body.pop(name, None)
        else:
            body[name] = draw(field_values[name])
    extras = draw(
        st.dictionaries(
            st.text(max_size=10).filter(lambda k: k not in FIELDS), json_values, max_size=3
        )
    )
    body.update(extras)
    return body


def _declared_path(body: dict[str, Any]) -> Reading | None:
    try:
        return _to_reading(ReadingPayload.model_validate(body))
    except ValidationError:
        return None


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads())
def test_fast_path_agrees_with_the_declared_path(body: dict[str, Any]) -> None:
    fast = fast_reading(body)
    declared = _declared_path(body)
    if fast is not None:
        assert declared is not None, f"fast path accepted what pydantic refuses: {body!r}"
        assert fast == declared
        assert repr(fast) == repr(declared)  # same types: int fixed point, float coordinates
    # And parse_reading is exactly the declared path's verdict.
    if declared is None:
        with pytest.raises(InvalidReading):
            parse_reading(body)
    else:
        assert parse_reading(body) == declared


@settings(max_examples=200, deadline=None)
@given(readings())
def test_well_formed_payloads_take_the_fast_path(reading: Reading) -> None:
    body = payload(reading)
    assert fast_reading(body) == reading
    assert _declared_path(body) == reading


@settings(max_examples=400, deadline=None)
@given(json_values | payloads())
def test_parse_reading_raises_only_invalid_reading(value: object) -> None:
    try:
        reading = parse_reading(value)
    except InvalidReading as exc:
        assert isinstance(exc.reason, Reason)
        assert exc.message.strip()
    else:
        assert isinstance(reading, Reading)
        assert isinstance(value, dict)


# --- round trip and fingerprint ---------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(readings())
def test_round_trip_through_json(reading: Reading) -> None:
    assert parse_reading(reading.to_json()) == reading
    assert parse_reading(orjson.loads(orjson.dumps(reading.to_json()))) == reading


@settings(max_examples=200, deadline=None)
@given(readings())
def test_fingerprint_is_deterministic_and_16_bit(reading: Reading) -> None:
    fingerprint = reading.fingerprint()
    assert 0 <= fingerprint <= 0xFFFF
    assert reading.fingerprint() == fingerprint
    rebuilt = Reading(
        reading.device_id, reading.timestamp_ms, tuple(reading.values), reading.location
    )
    assert rebuilt.fingerprint() == fingerprint
    assert parse_reading(reading.to_json()).fingerprint() == fingerprint
    # What the reading says, not who or when: identity is not part of it.
    assert reading._replace(device_id="other", timestamp_ms=0).fingerprint() == fingerprint


def test_fingerprint_sees_every_part_of_what_a_reading_says() -> None:
    base = ok(values=(20_000, None))
    variants = [
        ok(values=(20_001, None)),
        ok(values=(None, 20_000)),
        ok(values=(20_000, 0)),
        ok(values=(0, None)),
        base._replace(location=Location(0.0, 0.0)),
        base._replace(location=Location(51.5, -0.12)),
        base._replace(location=Location(51.5000001, -0.12)),
    ]
    fingerprints = [r.fingerprint() for r in [base, *variants]]
    assert len(set(fingerprints)) == len(fingerprints)


def test_fingerprint_rarely_collides() -> None:
    rng = random.Random(20250831)

    def random_reading() -> Reading:
        temperature = rng.choice([None, rng.randint(-273_150, 1_000_000)])
        humidity = (
            rng.randint(0, 100_000)
            if temperature is None
            else rng.choice([None, rng.randint(0, 100_000)])
        )
        location = rng.choice([None, Location(rng.uniform(-90, 90), rng.uniform(-180, 180))])
        return ok(values=(temperature, humidity), location=location)

    collisions = distinct = 0
    for _ in range(2000):
        a, b = random_reading(), random_reading()
        if (a.values, a.location) == (b.values, b.location):
            continue
        distinct += 1
        collisions += a.fingerprint() == b.fingerprint()
    assert distinct > 1900
    assert collisions < 5
    # Near neighbours (one fixed-point unit apart) spread out as well.
    near = {ok(values=(v, None)).fingerprint() for v in range(20_000, 21_000)}
    assert len(near) > 950


_FINGERPRINTS_SCRIPT = """
import json, sys
from iotpipe.domain import Location, Reading
rows = json.loads(sys.argv[1])
print(json.dumps([
    Reading("d", 0, tuple(v), None if at is None else Location(*at)).fingerprint()
    for v, at in rows
]))
"""


def test_fingerprint_is_the_same_in_other_processes() -> None:
    """Identity sets are stored: a fingerprint must not depend on the process (hash seeds)."""
    rows = [
        ([20_000, None], None),
        ([None, 55_000], [51.5, -0.12]),
        ([-273_150, 0], [-90.0, 180.0]),
        ([None, 1], None),
        ([1_000_000, 100_000], [0.0, 0.0]),
    ]
    here = [
        ok(values=tuple(v), location=None if at is None else Location(*at)).fingerprint()
        for v, at in rows
    ]
    package_root = str(Path(iotpipe.__file__).resolve().parents[1])
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        done = subprocess.run(
            [sys.executable, "-c", _FINGERPRINTS_SCRIPT, json.dumps(rows)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert json.loads(done.stdout) == here, f"PYTHONHASHSEED={seed}"


@pytest.mark.parametrize(
    "stamp",
    [
        "0999-01-01T00:00:00Z",
        "1969-12-31T23:59:59.999Z",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
    ],
)
def test_timestamps_outside_the_supported_range_are_rejected_not_crashed(stamp: str) -> None:
    with pytest.raises(InvalidReading) as caught:
        parse_reading({"device_id": "d1", "timestamp": stamp, "temperature": 20})
    assert caught.value.reason is Reason.INVALID_TIMESTAMP


def test_the_range_edges_round_trip_through_the_canonical_format() -> None:
    for stamp in ("1970-01-01T00:00:00Z", "9999-12-30T23:59:59.999Z"):
        reading = parse_reading({"device_id": "d1", "timestamp": stamp, "temperature": 20})
        assert reading.to_json()["timestamp"] == stamp
        assert parse_reading(reading.to_json()) == reading


def test_no_metrics_takes_precedence_over_a_bad_location() -> None:
    body = {
        "device_id": "d1",
        "timestamp": "2025-08-31T10:00:00Z",
        "location": {"lat": 91, "lon": 0},
    }
    with pytest.raises(InvalidReading) as caught:
        parse_reading(body)
    assert caught.value.reason is Reason.NO_METRICS
