"""The archive and quarantine in a directory, and replaying archived batches into a store."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import orjson
import pytest

from iotpipe.adapters.clock import ManualClock
from iotpipe.adapters.local import FileArchive, FileQuarantine, SqliteStore
from iotpipe.adapters.memory import MemoryArchive, MemoryQuarantine
from iotpipe.application import ProcessService, QueryService, replay
from iotpipe.application.views import window_json
from iotpipe.bootstrap import local_pipeline
from iotpipe.domain import ArchiveUnavailable, LatenessPolicy, Reason
from iotpipe.domain.time import MS_PER_DAY, MS_PER_HOUR, parse_instant
from iotpipe.ports import AggregateStore, RawBatch, RawRecord, Rejection

pytestmark = pytest.mark.integration

H10 = parse_instant("2025-08-31T10:00:00Z")
H11, H12 = H10 + MS_PER_HOUR, H10 + 2 * MS_PER_HOUR
NEXT_DAY = H10 + MS_PER_DAY


def batch(batch_id: str, *payloads: bytes, arrived_ms: int | None = H10) -> RawBatch:
    records = tuple(
        RawRecord(f"{batch_id}-{n}", data, arrived_ms) for n, data in enumerate(payloads)
    )
    return RawBatch(batch_id, records)


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# --- layout and format ------------------------------------------------------------------------


def test_batches_are_files_in_the_shared_layout_and_format(tmp_path: Path) -> None:
    archive, reference = FileArchive(tmp_path), MemoryArchive()
    writes = [
        (batch("shard-1:000017", b'{"device_id": "d1"}', "naïve ünïcode".encode()), H10 + 5),
        (batch("b2", b"\xff\xfe not utf-8", arrived_ms=None), H11 + 59_000),
        (batch("b3", b"{}"), NEXT_DAY),
    ]
    for raw, partition in writes:
        archive.write(raw, partition)
        reference.write(raw, partition)

    assert files_under(tmp_path) == [
        "raw/dt=2025-08-31/hour=10/shard-1_000017.jsonl.gz",
        "raw/dt=2025-08-31/hour=11/b2.jsonl.gz",
        "raw/dt=2025-09-01/hour=10/b3.jsonl.gz",
    ]
    # Byte for byte what the memory (and cloud) archives hold under the same names.
    for name in reference.objects.names():
        assert (tmp_path / name).read_bytes() == reference.objects.get(name)
    lines = gzip.decompress((tmp_path / files_under(tmp_path)[1]).read_bytes()).splitlines()
    assert [orjson.loads(line) for line in lines] == [
        {"id": "b2-0", "data_b64": "//4gbm90IHV0Zi04"}
    ]


def test_a_retried_batch_replaces_its_file_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    archive = FileArchive(tmp_path)
    archive.write(batch("b1", b"first attempt", b"more"), H10)
    archive.write(batch("b1", b"second attempt"), H10 + 1000)
    assert files_under(tmp_path) == ["raw/dt=2025-08-31/hour=10/b1.jsonl.gz"]
    [again] = archive.read(H10, H11)
    assert [r.data for r in again.records] == [b"second attempt"]


def test_a_failed_write_keeps_the_previous_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = FileArchive(tmp_path)
    archive.write(batch("b1", b"kept"), H10)

    def crash(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(ArchiveUnavailable, match="No space left"):
        archive.write(batch("b1", b"lost"), H10)
    monkeypatch.undo()
    assert files_under(tmp_path) == ["raw/dt=2025-08-31/hour=10/b1.jsonl.gz"]
    [kept] = archive.read(H10, H11)
    assert [r.data for r in kept.records] == [b"kept"]


def test_an_unwritable_root_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the archive should be")
    with pytest.raises(ArchiveUnavailable):
        FileArchive(blocker).write(batch("b1", b"x"), H10)
    with pytest.raises(ArchiveUnavailable):
        FileQuarantine(blocker).put("b1", H10, [])


# --- reading ----------------------------------------------------------------------------------


def test_read_yields_the_partitions_in_range_in_hour_then_name_order(tmp_path: Path) -> None:
    archive, reference = FileArchive(tmp_path), MemoryArchive()
    for raw, partition in [
        (batch("z", b"1"), H11),
        (batch("a", b"2"), H11 + 30 * 60_000),
        (batch("m", b"3"), H10),
        (batch("late", b"4"), H12 - 1),  # still hour 11
        (batch("day2", b"5"), NEXT_DAY),
    ]:
        archive.write(raw, partition)
        reference.write(raw, partition)
    # Leftovers of a crash and foreign files are not batches.
    (tmp_path / "raw/dt=2025-08-31/hour=10/.m.jsonl.gz.123.tmp").write_bytes(b"torn")
    (tmp_path / "raw/dt=2025-08-31/hour=10/notes.txt").write_text("hello")
    (tmp_path / "raw/dt=2025-08-31/hour=7").mkdir()
    (tmp_path / "raw/dt=2025-08-31/hour=7/x.jsonl.gz").write_bytes(b"not a partition")

    def ids(start: int, end: int) -> list[str]:
        got = [b.batch_id for b in archive.read(start, end)]
        assert got == [b.batch_id for b in reference.read(start, end)]
        return got

    assert ids(H10, NEXT_DAY + MS_PER_HOUR) == ["m", "a", "late", "z", "day2"]
    assert ids(H11, H12) == ["a", "late", "z"]
    assert ids(H10 + 1, H12) == ["a", "late", "z"]  # hour 10 starts before the range
    assert ids(H10, H11) == ["m"]  # half open
    assert ids(H12, NEXT_DAY) == []
    # A range of thousands of years costs what the archive holds.
    assert len(list(archive.read(0, 253_402_214_400_000))) == 5
    assert list(FileArchive(tmp_path / "nothing-here").read(0, NEXT_DAY)) == []


# --- quarantine -------------------------------------------------------------------------------


def test_quarantine_round_trip_and_retry(tmp_path: Path) -> None:
    quarantine, reference = FileQuarantine(tmp_path), MemoryQuarantine()
    first = [
        Rejection("r1", 0, Reason.MALFORMED_JSON, "not JSON", b"{oops"),
        Rejection("r1", 2, Reason.NO_METRICS, "no metrics", b'{"device_id":"d1"}'),
    ]
    second = [Rejection("r9", 0, Reason.TOO_LATE, "too late", b"{}")]
    for q in (quarantine, reference):
        q.put("b2", H11, second)
        q.put("b1", H10, [first[0]])
        q.put("b1", H10, first)  # the retried batch replaces its rejections
    assert files_under(tmp_path) == [
        "rejected/dt=2025-08-31/hour=10/b1.jsonl.gz",
        "rejected/dt=2025-08-31/hour=11/b2.jsonl.gz",
    ]
    assert quarantine.rejections() == first + second == reference.rejections()
    assert FileQuarantine(tmp_path / "empty").rejections() == []


# --- replay -----------------------------------------------------------------------------------

NOW = H12 + 2 * MS_PER_HOUR


def _readings() -> list[object]:
    items: list[object] = [
        {
            "device_id": f"d{i % 3}",
            "timestamp": f"2025-08-31T{10 + i % 3}:{i:02d}:00Z",
            "humidity": i,
        }
        for i in range(40)
    ]
    return items + items[:7] + [{"device_id": "d0", "timestamp": "2025-08-31T11:00:00Z"}]


def _stored(store: AggregateStore) -> list[dict[str, object]]:
    return [window_json(w) for w in QueryService(store).every_window()]


def _processor(store: AggregateStore) -> ProcessService:
    return ProcessService(store, ManualClock(NOW), lateness=LatenessPolicy.backfill())


def test_replaying_the_archive_rebuilds_the_store_and_twice_changes_nothing(
    tmp_path: Path,
) -> None:
    clock = ManualClock(H12 + MS_PER_HOUR)  # every reading is in the past
    pipeline = local_pipeline(tmp_path / "data", clock=clock)
    received = 0
    for chunk in (_readings()[:20], _readings()[20:]):
        assert not pipeline.ingest(chunk).unpublished
        for report in pipeline.drain(batch_size=9):
            assert not report.failed_records
            received += report.received
        clock.advance(MS_PER_HOUR)  # later batches land in later partitions
    original = _stored(pipeline.store)
    archive = FileArchive(tmp_path / "data" / "archive")
    archived = {p: p.read_bytes() for p in (tmp_path / "data" / "archive").rglob("*.gz")}
    assert len(archived) >= 2

    # Into the store that already counted everything: nothing new, nothing written.
    writes = pipeline.store.ops().writes
    again = replay(archive, _processor(pipeline.store), 0, NEXT_DAY)
    assert (again.accepted, again.windows_updated, again.ok) == (0, 0, True)
    assert again.duplicates == again.received == received == len(_readings()) - 1
    assert pipeline.store.ops().writes == writes
    assert _stored(pipeline.store) == original

    # Into a new store: the same windows, exactly; and a second replay changes nothing.
    with SqliteStore(tmp_path / "rebuilt.db") as rebuilt:
        first = replay(archive, _processor(rebuilt), 0, NEXT_DAY)
        assert first.batches == len(archived) and first.accepted == 40
        assert _stored(rebuilt) == original
        second = replay(archive, _processor(rebuilt), 0, NEXT_DAY)
        assert (second.accepted, second.windows_updated) == (0, 0)
        assert _stored(rebuilt) == original

    # Replay reads the archive and never rewrites it.
    assert {p: p.read_bytes() for p in archived} == archived
    assert sorted((tmp_path / "data" / "archive").rglob("*.gz")) == sorted(archived)
