"""Packed (zlib) stream records: recognised by their header, unpacked exactly, and a corrupt
one refused with its own reason, never a crash (``iotpipe.application.payloads``)."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iotpipe.application.payloads import (
    MAX_UNPACKED,
    decode_items,
    encode_items,
    is_packed,
    pack,
    unpack,
)
from iotpipe.domain import InvalidReading, Reason

READING = {"device_id": "d-1", "timestamp": "2025-08-31T10:00:00Z", "temperature": 21.5}
JSON_TEXT = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


@given(JSON_TEXT)
def test_json_is_never_taken_for_a_packed_record_and_packing_round_trips(value: object) -> None:
    for text in (encode_items([value]), encode_items([value]).replace(b"[", b" [", 1)):
        assert not is_packed(text)
        assert unpack(text) is text  # a plain record passes as it is
        assert is_packed(pack(text)) and unpack(pack(text)) == text


def test_a_packed_record_decodes_like_its_json() -> None:
    text = encode_items([READING] * 60)
    assert decode_items(pack(text)) == decode_items(text) == [READING] * 60


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (pack(encode_items([READING] * 60))[:-7], "truncated"),
        (pack(encode_items([READING]))[:2] + b"\x00garbage", "invalid"),
        (pack(b"[1]") + b"trailing", "trailing"),
        (zlib.compress(b" " * (MAX_UNPACKED + 1)), f"expands past {MAX_UNPACKED}"),
    ],
)
def test_a_corrupt_packed_record_is_refused_as_corrupt_record(data: bytes, why: str) -> None:
    for call in (unpack, decode_items):
        with pytest.raises(InvalidReading) as refused:
            call(data)
        assert refused.value.reason is Reason.CORRUPT_RECORD
        assert "does not decompress" in refused.value.message and why in refused.value.message


def test_not_json_and_not_packed_is_still_malformed_json() -> None:
    with pytest.raises(InvalidReading) as refused:
        decode_items(b"xyz")
    assert refused.value.reason is Reason.MALFORMED_JSON
