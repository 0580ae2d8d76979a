"""The fast path against the plain definition for declared schemas (nested paths, epoch times,
no location, several resolutions): same payload in, same verdict and same reading out.

The kernel's decoders are generated from the schema (msgspec structs for the record decoder, a
plan for :func:`~iotpipe.domain.kernels.fast_reading`); the plain definition is the pydantic
declaration (:func:`iotpipe.domain.schema.validate`). Neither side computes with the other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotpipe.adapters.schema_file import load_schema
from iotpipe.domain import InvalidReading, Reading, TelemetrySchema
from iotpipe.domain.kernels import decode_records, fast_reading
from iotpipe.domain.schema import validate
from iotpipe.domain.telemetry import steps
from tests.strategies import BASE_MS

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).parents[2] / "examples" / "schemas"
SCHEMAS = {p.stem: load_schema(p) for p in sorted(EXAMPLES.glob("*.toml"))}
_ABSENT = object()


def _put(body: dict[str, Any], path: str, value: object) -> None:
    *outer, last = steps(path)
    for key in outer:
        inner = body.setdefault(key, {})
        if not isinstance(inner, dict):
            return  # an object on the way was replaced by something else
        body = inner
    if value is not _ABSENT:
        body[last] = value


def _stamps(schema: TelemetrySchema) -> st.SearchStrategy[object]:
    ms = st.integers(BASE_MS - 10**9, BASE_MS + 10**9)
    odd = st.sampled_from([_ABSENT, None, True, "soon", -1, 2**70, 1.5e300, [], {}])
    if schema.timestamp_format == "epoch_ms":
        good: st.SearchStrategy[object] = st.one_of(ms, ms.map(float), ms.map(lambda t: t + 0.5))
    elif schema.timestamp_format == "epoch_s":
        secs = ms.map(lambda t: t // 1000)
        good = st.one_of(secs, secs.map(float), secs.map(lambda t: t + 0.25))
    else:
        good = st.sampled_from(["2025-08-31T10:00:00Z", "2025-08-31T10:00:00.123+02:00"])
        good = st.one_of(good, st.just("2025-08-31T10:00:00"))
    return st.one_of(good, good, good, odd)


def _value(schema: TelemetrySchema, name: str) -> st.SearchStrategy[object]:
    metric = schema.metric(name)
    span = metric.maximum - metric.minimum
    inside = st.floats(metric.minimum, metric.maximum, allow_nan=False)
    near = st.floats(metric.minimum - span, metric.maximum + span, allow_nan=False)
    rounded = st.builds(round, inside, st.integers(0, 4))
    odd = st.sampled_from([_ABSENT, None, True, "7", [], 10**30, float("inf")])
    return st.one_of(rounded, rounded, inside, near, st.integers(-5, 5), odd)


@st.composite
def payloads(draw: st.DrawFn, schema: TelemetrySchema) -> dict[str, Any]:
    """A payload shaped by ``schema``: mostly valid, some values missing, odd or out of range,
    sometimes an object on a path replaced by a number, sometimes an unknown field."""
    body: dict[str, Any] = {}
    device = st.sampled_from(["dev-1", "dev-2", "x" * 129, "", 7, _ABSENT, "bad id"])
    _put(body, schema.device_id, draw(st.one_of(st.just("dev-1"), device)))
    _put(body, schema.timestamp, draw(_stamps(schema)))
    for metric in schema.accepted:
        _put(body, metric.path, draw(_value(schema, metric.name)))
    if schema.location is not None and draw(st.booleans()):
        lat = draw(st.one_of(st.floats(-90, 90), st.sampled_from([91.0, "n", _ABSENT])))
        lon = draw(st.one_of(st.floats(-180, 180), st.sampled_from([-181.0, None, _ABSENT])))
        _put(body, schema.location.lat, lat)
        _put(body, schema.location.lon, lon)
    if draw(st.integers(0, 9)) == 0:
        body[steps(schema.accepted[0].path)[0]] = 3  # an object on the way is a number
    if draw(st.integers(0, 4)) == 0:
        body["firmware"] = "1.2"
    return body


def plain(payload: dict[str, Any], schema: TelemetrySchema) -> Reading | None:
    try:
        return validate(payload, schema)
    except InvalidReading:
        return None


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@settings(max_examples=250, deadline=None)
@given(data=st.data())
def test_the_generated_decoders_agree_with_the_declaration(name: str, data: st.DataObject) -> None:
    schema = SCHEMAS[name]
    payload = data.draw(payloads(schema))
    expected = plain(payload, schema)
    # The per-item fast path takes only what the declaration accepts, and reads it the same.
    fast = fast_reading(payload, schema)
    assert fast is None or fast == expected
    # The record decoder declines every record the declaration refuses, and takes the others
    # as the declaration reads them (a valid record may also be left to the general path).
    decoded = decode_records([json.dumps(payload).encode()], schema)
    if expected is None:
        assert decoded.declined == [0]
    elif not decoded.declined:
        assert decoded.readings == [expected]


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_epoch_times_are_whole_units_and_identity_is_at_the_millisecond(name: str) -> None:
    schema = SCHEMAS[name]
    body: dict[str, Any] = {}
    _put(body, schema.device_id, "dev-1")
    for metric in schema.accepted:
        _put(body, metric.path, (metric.minimum + metric.maximum) / 2)
    stamps: dict[str, tuple[object, object, int]] = {
        "epoch_ms": (1_756_634_400_123, 1_756_634_400_123.5, 1_756_634_400_123),
        "epoch_s": (1_756_634_400, 1_756_634_400.5, 1_756_634_400_000),
        "rfc3339": ("2025-08-31T10:00:00.123Z", "2025-08-31T10:00:00", 1_756_634_400_123),
    }
    good, bad, ms = stamps[schema.timestamp_format]
    _put(body, schema.timestamp, good)
    reading = validate(body, schema)
    assert reading.timestamp_ms == ms
    assert decode_records([json.dumps(body).encode()], schema).readings == [reading]
    _put(body, schema.timestamp, bad)
    with pytest.raises(InvalidReading) as refused:
        validate(body, schema)
    assert schema.timestamp in str(refused.value)  # the message names the declared path
    assert decode_records([json.dumps(body).encode()], schema).declined == [0]
