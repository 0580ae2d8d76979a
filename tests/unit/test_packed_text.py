"""Packed text (base64 of zlib: Pub/Sub messages, one per line of GCP's archive files): read
back exactly by the decode path every edge uses, never confused with JSON, and a corrupt one
refused as ``corrupt_record``, never a crash; a batch of mixed records unpacked in the process
use case, so the archive keeps JSON and the corrupt record alone is quarantined
(``iotpipe.application.payloads``)."""

from __future__ import annotations

import base64
import zlib

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from iotpipe.adapters.clock import ManualClock
from iotpipe.adapters.memory import MemoryArchive, MemoryQuarantine, MemoryStore
from iotpipe.application import ProcessService
from iotpipe.application.codecs.archive import decode_batch
from iotpipe.application.payloads import (
    MAX_UNPACKED,
    decode_items,
    encode_items,
    is_packed,
    is_packed_text,
    pack,
    pack_text,
    unpack,
    unpack_batch,
)
from iotpipe.domain import InvalidReading, Reason
from iotpipe.domain.time import MS_PER_HOUR, parse_instant
from iotpipe.ports import RawBatch, RawRecord

pytestmark = pytest.mark.unit

T0 = parse_instant("2025-08-31T10:00:00Z")
JSON_VALUE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)
WHITESPACE = st.sampled_from([b"", b" ", b"\t", b"\r\n", b"\n  "])


def minute(device: str, temperature: float = 21.5) -> list[dict[str, object]]:
    """A device's minute: 60 readings (~9 KB of JSON), as ingest publishes it."""
    return [
        {
            "device_id": device,
            "timestamp": f"2025-08-31T10:00:{s:02d}Z",
            "temperature": temperature + s / 10,
        }
        for s in range(60)
    ]


@given(JSON_VALUE, WHITESPACE)
def test_no_json_document_is_taken_for_packed(value: object, space: bytes) -> None:
    """Any JSON text (any value at the top, leading whitespace allowed) passes as it is."""
    text = space + orjson.dumps(value)
    assert not is_packed_text(text) and not is_packed(text)
    assert unpack(text) is text


@given(st.binary(max_size=5000))
def test_any_bytes_round_trip_through_the_text_form(data: bytes) -> None:
    text = pack_text(data)
    assert is_packed_text(text)
    assert unpack(text) == data
    # A line of a text file: printable ASCII, no newline, whatever the bytes packed.
    assert text.isascii() and b"\n" not in text and b"\r" not in text


@given(st.lists(JSON_VALUE, max_size=20))
def test_a_packed_text_message_decodes_like_its_json(items: list[object]) -> None:
    text = encode_items(items)
    assert decode_items(pack_text(text)) == decode_items(text) == decode_items(pack(text))


def _texts_of(data: bytes) -> bytes:
    return base64.b64encode(data)


GOOD = pack_text(encode_items(minute("d-1")))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (GOOD[:-3], "not base64"),  # cut: bad padding
        (GOOD[:40] + b"!" + GOOD[41:], "not base64"),  # a character no base64 has
        (GOOD[:40] + b"\n" + GOOD[40:], "not base64"),  # a line split in two
        (_texts_of(pack(encode_items(minute("d-1")))[:-9]), "truncated"),
        (_texts_of(pack(b"[1]") + b"trailing"), "trailing"),
        (_texts_of(pack(b"[1]")[:2] + b"\x00garbage!"), "invalid"),
        (_texts_of(zlib.compress(b" " * (MAX_UNPACKED + 1))), f"expands past {MAX_UNPACKED}"),
    ],
)
def test_a_corrupt_packed_text_is_refused_as_corrupt_record(data: bytes, why: str) -> None:
    assert is_packed_text(data)
    for call in (unpack, decode_items):
        with pytest.raises(InvalidReading) as refused:
            call(data)
        assert refused.value.reason is Reason.CORRUPT_RECORD
        assert "does not decompress" in refused.value.message and why in refused.value.message


@pytest.mark.parametrize("data", [b"e", b"eNo", b"error: not json", b"eNo!!!!", b"eeee"])
def test_text_starting_with_e_that_is_no_zlib_header_is_malformed_json(data: bytes) -> None:
    assert not is_packed_text(data)
    with pytest.raises(InvalidReading) as refused:
        decode_items(data)
    assert refused.value.reason is Reason.MALFORMED_JSON


def test_unpack_batch_unpacks_both_forms_and_keeps_the_rest_as_it_came() -> None:
    plain = RawRecord("1", encode_items(minute("d-1")), T0)
    corrupt = RawRecord("4", GOOD[:-3], T0)
    batch = RawBatch(
        "b",
        (
            plain,
            RawRecord("2", pack_text(encode_items(minute("d-2"))), T0),
            RawRecord("3", pack(encode_items(minute("d-3"))), T0),
            corrupt,
            RawRecord("5", b"{not json", T0),
        ),
    )
    unpacked = unpack_batch(batch)
    assert unpacked.batch_id == "b"
    assert [r.record_id for r in unpacked.records] == ["1", "2", "3", "4", "5"]
    assert unpacked.records[0] is plain and unpacked.records[3] is corrupt
    assert unpacked.records[1].data == encode_items(minute("d-2"))
    assert unpacked.records[2].data == encode_items(minute("d-3"))
    assert unpacked.records[1].arrived_ms == T0
    nothing_packed = RawBatch("c", (plain,))
    assert unpack_batch(nothing_packed) is nothing_packed


def test_the_process_use_case_reads_packed_records_and_quarantines_a_corrupt_one() -> None:
    archive, quarantine, store = MemoryArchive(), MemoryQuarantine(), MemoryStore()
    service = ProcessService(store, ManualClock(T0), archive, quarantine)
    packed = RawRecord("2", pack_text(encode_items(minute("d-2"))), T0)
    corrupt = RawRecord("3", GOOD[:-3], T0)
    batch = RawBatch("m-1", (RawRecord("1", encode_items(minute("d-1")), T0), packed, corrupt))
    report = service.process(batch)
    assert (report.received, report.accepted) == (121, 120)
    assert report.rejected == {"corrupt_record": 1} and report.failed_records == ()
    # The corrupt record, as it came (the line's text), under its own id.
    [rejection] = quarantine.rejections()
    assert (rejection.record_id, rejection.reason, rejection.payload) == (
        "3",
        Reason.CORRUPT_RECORD,
        corrupt.data,
    )
    # The archive holds JSON for the packed record (as AWS's does), the corrupt one as it came.
    [name] = archive.objects.names()
    kept = decode_batch("m-1", archive.objects.get(name)).records
    assert [r.data for r in kept] == [
        encode_items(minute("d-1")),
        encode_items(minute("d-2")),
        corrupt.data,
    ]
    for device in ("d-1", "d-2"):
        [window] = store.hourly(device, T0, T0 + MS_PER_HOUR, limit=10).items
        assert window.stats.count == 60
