"""Stream files (a Pub/Sub Cloud Storage subscription's text files): their names, their lines
and chunks, and the use case that processes one, over the in-memory adapters."""

from __future__ import annotations

from itertools import pairwise

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotpipe.adapters.clock import ManualClock
from iotpipe.adapters.memory import MemoryArchive, MemoryQuarantine, MemoryStore
from iotpipe.application import ProcessService, QueryService, StreamFileService
from iotpipe.application.codecs import archive as fmt
from iotpipe.application.payloads import pack_text, unpacked_head
from iotpipe.domain import LatenessPolicy
from iotpipe.domain.time import MS_PER_HOUR, format_instant, parse_instant
from iotpipe.simulator import Faults, Fleet
from tests.oracle import expected_windows

pytestmark = pytest.mark.unit

T0 = parse_instant("2025-08-31T10:00:00Z")
NAME = "stream/2025-08-31/10_05_07Z_4f1c-9a.jsonl"


def test_the_name_constants_make_the_names_the_pattern_reads() -> None:
    # What the Terraform sets, put together as Pub/Sub documents: prefix, time, "_", id, suffix.
    made = f"{fmt.STREAM_FILENAME_PREFIX}2025-08-31/10_05_07Z_4f1c-9a{fmt.STREAM_FILENAME_SUFFIX}"
    assert made == NAME and fmt.STREAM_FILENAME_DATETIME_FORMAT == "YYYY-MM-DD/hh_mm_ssZ"
    assert fmt.stream_file_time(NAME) == parse_instant("2025-08-31T10:05:07Z")
    assert NAME.startswith(fmt.stream_hour_prefix(T0 + 59 * 60_000))


def test_the_unique_part_is_read_whatever_separates_it() -> None:
    # Pub/Sub documents "_" before the unique id; a name without it must not be left
    # unprocessed for that alone.
    assert fmt.stream_file_time("stream/2025-08-31/10_05_07Z4f1c-9a.jsonl") == parse_instant(
        "2025-08-31T10:05:07Z"
    )


@pytest.mark.parametrize(
    "name",
    [
        "stream/2025-02-30/10_05_07Z_x.jsonl",  # no such day
        "stream/2025-08-31/25_05_07Z_x.jsonl",
        "stream/2025-08-31/10_05_07Z_x.jsonl.gz",
        "stream/2025-08-31/10_05_07_x.jsonl",
        "stream/2025-08-31/10_05_07Z.jsonl",  # no unique part
        "raw/dt=2025-08-31/hour=10/x.jsonl.gz",
        "other/2025-08-31/10_05_07Z_x.jsonl",
    ],
)
def test_other_names_are_not_stream_files(name: str) -> None:
    assert fmt.stream_file_time(name) is None
    with pytest.raises(ValueError, match="not a stream file"):
        fmt.decode_stream_file(name, b"[]\n")


def test_lines_are_records_as_delivered_in_chunks_with_stable_ids() -> None:
    body = b'[{"a":1}]\nnot json\n\n[]\n[{"b":2}]\n'
    chunks = fmt.decode_stream_file(NAME, body, max_devices=2)  # no device named: one each
    assert [c.batch_id for c in chunks] == [f"{NAME}#c0", f"{NAME}#c1"]
    records = [r for c in chunks for r in c.records]
    assert [(r.record_id, r.data) for r in records] == [
        (f"{NAME}#1", b'[{"a":1}]'),
        (f"{NAME}#2", b"not json"),
        (f"{NAME}#4", b"[]"),
        (f"{NAME}#5", b'[{"b":2}]'),
    ]
    assert {r.arrived_ms for r in records} == {fmt.stream_file_time(NAME)}
    assert fmt.decode_stream_file(NAME, b"") == []


def _line(device: str, second: int) -> bytes:
    return orjson.dumps(
        [{"device_id": device, "timestamp": format_instant(T0 + second * 1000), "temperature": 1}]
    )


def test_lines_are_grouped_by_device_into_chunks_of_bounded_devices_and_bytes() -> None:
    lines = [_line("b", 1), _line("a", 2), b"oops", _line("b", 3), _line("c", 4), _line("a", 5)]
    body = b"\n".join(lines) + b"\n"
    ids = [
        [r.record_id[len(NAME) + 1 :] for r in c.records]
        for c in fmt.decode_stream_file(NAME, body, max_devices=2)
    ]
    # a's and b's lines in file order, then c, then the line naming no device.
    assert ids == [["2", "6", "1", "4"], ["5", "3"]]
    # A byte bound cuts a device's lines too (a chunk always takes one line).
    small = fmt.decode_stream_file(NAME, body, max_devices=400, max_bytes=len(lines[0]) + 1)
    assert [len(c.records) for c in small] == [1] * 6
    assert fmt.decode_stream_file(NAME, body) == fmt.decode_stream_file(NAME, body)  # stable


def test_a_device_with_many_lines_in_a_file_is_one_window_write_per_chunk() -> None:
    # Devices that post every reading: 3 devices x 300 lines, interleaved as they arrive
    # (more lines than a chunk has devices).
    lines = [_line(device, second) for second in range(300) for device in ("x", "y", "z")]
    archive = MemoryArchive()
    archive.objects.put(NAME, b"\n".join(lines))
    counts = _service(archive, fmt.STREAM_CHUNK_DEVICES).process(NAME).counts()
    assert counts["chunks"] == 1 and counts["accepted"] == 900
    assert counts["windows_updated"] == 3  # one per device (hour), not one per line


def test_packed_lines_are_grouped_by_the_device_they_name_inside() -> None:
    # GCP ingest packs messages over 1 KB (base64 of zlib): the device is read from the start.
    minute = [orjson.loads(_line(device, s))[0] for device in ("p", "q") for s in range(40)]
    lines = [pack_text(orjson.dumps(minute[i : i + 20])) for i in range(0, 80, 20)]
    assert all(line.startswith(b"e") for line in lines)  # packed, no device id readable as is
    body = b"\n".join([lines[0], lines[2], lines[1], lines[3]])
    ids = [
        [r.record_id[len(NAME) + 1 :] for r in c.records]
        for c in fmt.decode_stream_file(NAME, body, max_devices=1)
    ]
    assert ids == [["1", "3"], ["2", "4"]]  # p's two lines, then q's
    assert unpacked_head(lines[0], 40) == orjson.dumps(minute[:20])[:40]
    assert unpacked_head(b"e" + b"!" * 50) == b"e" + b"!" * 50  # not packed: as it is
    assert unpacked_head(lines[0][:4] + b"####") == b""  # marked packed, unreadable


def _service(
    archive: MemoryArchive, max_devices: int, max_bytes: int = fmt.STREAM_CHUNK_BYTES
) -> StreamFileService:
    processor = ProcessService(
        MemoryStore(),
        ManualClock(T0),
        None,
        MemoryQuarantine(),
        LatenessPolicy(horizon=None),
    )
    return StreamFileService(archive, processor, max_devices, max_bytes)


LINES = list(Fleet(3, 300, seed=4).payloads(T0, T0 + 2 * MS_PER_HOUR, Faults(duplicates=0.1)))


@settings(max_examples=40, deadline=None)
@given(data=st.data(), max_devices=st.integers(1, 4), max_bytes=st.integers(1, 4000))
def test_any_split_into_files_any_chunks_any_redelivery_stores_the_oracle(
    data: st.DataObject, max_devices: int, max_bytes: int
) -> None:
    """Messages split into files at random (some in two files), processed in any order, any
    file any number of times: the store holds each distinct reading once."""
    messages = [b"[" + line.encode() + b"]" for line in LINES]
    cuts = sorted(data.draw(st.sets(st.integers(1, len(messages) - 1), max_size=6)))
    bounds = [0, *cuts, len(messages)]
    files = [messages[a:b] for a, b in pairwise(bounds)]
    files.append(data.draw(st.lists(st.sampled_from(messages), max_size=10)))  # repeats
    archive = MemoryArchive()
    names = []
    for n, lines in enumerate(files):
        name = f"stream/2025-08-31/12_{n:02d}_00Z_f{n}.jsonl"
        archive.objects.put(name, b"".join(line + b"\n" for line in lines))
        names.append(name)
    deliveries = data.draw(st.lists(st.sampled_from(names), min_size=len(names)))
    order = data.draw(st.permutations(names)) + deliveries  # each at least once
    service = _service(archive, max_devices, max_bytes)
    for name in order:
        report = service.process(name)
        assert not report.redeliver and report.found
    stored = QueryService(service.processor.store).every_window()
    assert {(w.device_id, w.hour_ms): w.stats for w in stored} == expected_windows(LINES)


def test_a_file_that_is_gone_is_reported_not_found() -> None:
    report = _service(MemoryArchive(), 10).process(NAME)
    assert not report.found and not report.redeliver and report.chunks == ()


def test_the_summary_sums_the_chunks() -> None:
    archive = MemoryArchive()
    lines = [b"[" + line.encode() + b"]" for line in LINES[:7]] + [b"oops"]
    archive.objects.put(NAME, b"\n".join(lines))
    counts = _service(archive, 1).process(NAME).counts()  # a chunk per device, and the oops
    assert counts["chunks"] == 4 and counts["records"] == 8
    distinct = sum(stats.count for stats in expected_windows(LINES[:7]).values())
    assert counts["accepted"] + counts["duplicates"] == 7 and counts["accepted"] == distinct
    assert counts["rejected"] == {"malformed_json": 1} and counts["failed_chunks"] == 0
    assert orjson.dumps(counts)  # one log line: plain JSON values only
