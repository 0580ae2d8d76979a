"""The record decoder (``decode_readings``) against the general path, on the same bytes.

``decode_readings`` reads a whole stream record (one JSON object or an array of them) with
msgspec and finishes the plain readings itself; the general path is ``orjson.loads`` and then
``parse_reading`` per item. The decoder may decline any record (``None``), but whatever it
returns must be exactly what the general path makes of the same bytes, and when the general
path refuses anything in a record, the decoder must decline the whole record.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from iotpipe.domain import InvalidReading, Reading
from iotpipe.domain.kernels import decode_readings, decode_records
from tests.oracle import plain_parse
from tests.strategies import payload, readings
from tests.unit.test_reading_validation import payloads

pytestmark = pytest.mark.unit


def general_path(data: bytes) -> list[Reading] | None:
    """What the declared rules make of a record, without any fast path (``None``: something
    refused)."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    items = value if isinstance(value, list) else [value]
    try:
        return [plain_parse(item) for item in items]
    except InvalidReading:
        return None


@st.composite
def json_text(draw: st.DrawFn, value: Any) -> str:
    """``value`` as JSON text, spelt in any of the ways a device might spell it."""
    space = draw(st.sampled_from(["", " ", "\n  ", "\t"]))
    if isinstance(value, dict):
        members = [
            f"{json_text_of(draw, k)}{space}:{space}{draw(json_text(v))}" for k, v in value.items()
        ]
        return "{" + space + ("," + space).join(members) + space + "}"
    if isinstance(value, list):
        return "[" + ",".join(draw(json_text(v)) for v in value) + "]"
    if isinstance(value, str):
        return json_text_of(draw, value)
    if isinstance(value, float) and math.isfinite(value):
        return draw(
            st.sampled_from(
                [repr(value), f"{value:.17e}", f"{value:.17E}", f"{value:.20f}".rstrip("0") + "0"]
            )
        )
    return json.dumps(value)  # big integers too; NaN and Infinity, which JSON does not allow


def json_text_of(draw: st.DrawFn, text: str) -> str:
    """A JSON string literal for ``text``, with some characters written as ``\\u`` escapes."""
    if not draw(st.booleans()):
        return orjson.dumps(text).decode()
    return (
        '"'
        + "".join(
            f"\\u{ord(c):04x}"
            if c.isalnum() and ord(c) < 0x10000
            else orjson.dumps(c).decode()[1:-1]
            for c in text
        )
        + '"'
    )


records = st.lists(payloads(), min_size=1, max_size=3).flatmap(
    lambda bodies: st.one_of(
        json_text(bodies),  # an array of items, as ingest publishes them
        json_text(bodies[0]),  # one object, as a device or the CLI sends it
    )
)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records)
def test_the_decoder_only_ever_agrees_with_the_general_path(text: str) -> None:
    data = text.encode()
    decoded = decode_readings(data)
    general = general_path(data)
    event("decoded" if decoded is not None else "declined")
    event("general path accepts" if general is not None else "general path refuses")
    if decoded is not None:
        assert general is not None, f"the decoder accepted what the general path refuses: {text}"
        assert decoded == general
        assert repr(decoded) == repr(general)  # same types: int fixed point, float coordinates


@settings(max_examples=300, deadline=None)
@given(st.lists(readings(), min_size=1, max_size=5), st.booleans())
def test_plain_records_take_the_decoder(batch: list[Reading], as_array: bool) -> None:
    bodies = [payload(r) for r in batch]
    data = orjson.dumps(bodies if as_array else bodies[0])
    assert decode_readings(data) == (batch if as_array else batch[:1])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records, min_size=1, max_size=6))
def test_a_batch_is_decoded_as_its_records_are_one_by_one(texts: list[str]) -> None:
    # The batch is finished column by column: a record declined for one odd reading must not
    # take its neighbours' readings with it, nor leave any of its own behind.
    batch = [text.encode() for text in texts]
    decoded = decode_records(batch)
    expected: list[Reading] = []
    owners: list[int] = []
    declined: list[int] = []
    for position, data in enumerate(batch):
        alone = decode_readings(data)
        if alone is None:
            declined.append(position)
        else:
            expected.extend(alone)
            owners.extend([position] * len(alone))
    assert decoded.readings == expected
    assert repr(decoded.readings) == repr(expected)
    assert decoded.owners == owners
    assert decoded.declined == declined


def test_odd_records_are_declined_whole_and_alone() -> None:
    good = VALID % b""
    batch = [
        good,
        b"[" + good + b"," + VALID % b',"device_id":"d 1"' + b"]",  # one bad item of two
        VALID % b',"timestamp":"2025-02-30T10:00:00Z"',  # no such day
        b"[]",
        good.replace(b"d1", b"d2"),
        VALID % b',"temperature":null',  # no metric left
    ]
    decoded = decode_records(batch)
    assert decoded.declined == [1, 2, 5]
    assert decoded.owners == [0, 4]
    assert [r.device_id for r in decoded.readings] == ["d1", "d2"]


VALID = b'{"device_id":"d1","timestamp":"2025-08-31T10:00:00Z","temperature":20.5%s}'


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        (b',"note":"\xff"', "invalid UTF-8 in a field the decoder would otherwise skip"),
        (b',"note":1e400', "a number orjson refuses, in a field the decoder would skip"),
        (b',"note":"\\ud800"', "a lone surrogate"),
        (b',"location":{"lat":1,"lon":2,"alt":3}', "an unknown field inside the location"),
        (b',"humidity":true', "a boolean for a number"),
        (b',"temperature":"20.5"', "a number as a string"),
        (b',"temperature":1000.0000001', "out of range"),
        (b',"temperature":1e400', "infinite once parsed"),
        (b',"device_id":"d#1"', "a device id outside the pattern, repeated key: the last wins"),
        (b',"timestamp":"2025-08-31t10:00:00z"', "lower-case t and z (valid, the general way)"),
        (b',"timestamp":"2025-08-31T10:00:00"', "no offset"),
        (b',"timestamp":"1969-12-31T23:59:59.999Z"', "before the supported range"),
        (b',"timestamp":"9999-12-31T00:00:00Z"', "after the supported range"),
        (b"}", "trailing characters"),
    ],
)
def test_unusual_records_are_declined(extra: bytes, why: str) -> None:
    data = VALID % extra
    assert decode_readings(data) is None, why
    general = general_path(data)
    # Declined is not refused: the general path still judges the record, and when it accepts
    # a reading (like the lower-case timestamp) it is the one the decoder would have built.
    if general is not None:
        assert general[0].device_id == "d1"


@pytest.mark.parametrize("stamp", [b"1969-12-31T23:59:59.999Z", b"9999-12-31T00:00:00Z"])
def test_a_batch_declines_just_its_records_outside_the_supported_range(stamp: bytes) -> None:
    outside = VALID.replace(b"2025-08-31T10:00:00Z", stamp) % b""
    batch = [VALID % b"", outside, VALID % b',"humidity":50']
    decoded = decode_records(batch)
    assert decoded.declined == [1]
    assert general_path(outside) is None
    assert list(decoded.columns) == [*general_path(batch[0]), *general_path(batch[2])]  # type: ignore[misc]


def test_an_empty_array_is_a_record_of_no_readings() -> None:
    assert decode_readings(b"[]") == []
    assert general_path(b"[]") == []


def test_a_repeated_key_counts_its_last_value_on_both_paths() -> None:
    data = VALID % b',"temperature":21.5'
    assert decode_readings(data) == general_path(data)
    assert decode_readings(data)[0].values[0] == 21_500  # type: ignore[index]
