"""The process use case: accounting, archive and quarantine, and transient failures."""

from __future__ import annotations

import gzip

import orjson
import pytest

from iotpipe.adapters.clock import ManualClock
from iotpipe.adapters.memory import MemoryArchive, MemoryQuarantine, MemoryStore
from iotpipe.application import ProcessService
from iotpipe.application.codecs.archive import decode_batch
from iotpipe.domain import ArchiveUnavailable, LatenessPolicy, Reason, StoreUnavailable
from iotpipe.domain.time import MS_PER_HOUR, parse_instant
from iotpipe.ports import RawBatch, RawRecord

pytestmark = pytest.mark.unit

T0 = parse_instant("2025-08-31T10:00:00Z")


def payload(device: str, stamp: str, temperature: float = 20.0) -> dict:
    return {"device_id": device, "timestamp": stamp, "temperature": temperature, "extra": "kept"}


def record(rid: str, *items, arrived: int | None = T0) -> RawRecord:
    body = orjson.dumps(items[0] if len(items) == 1 else list(items))
    return RawRecord(rid, body, arrived)


class FlakyStore(MemoryStore):
    """A memory store whose writes to chosen devices fail as if the backend were down."""

    def __init__(self, failing: set[str]) -> None:
        super().__init__()
        self.failing = failing

    def _save_all(self, windows):
        up = [save for save in windows if save.window.device_id not in self.failing]
        written = iter(super()._save_all(up))
        return [
            StoreUnavailable("throttled")
            if save.window.device_id in self.failing
            else next(written)
            for save in windows
        ]


class BrokenArchive(MemoryArchive):
    def write(self, batch, partition_ms):
        raise ArchiveUnavailable("bucket unreachable")


class BrokenQuarantine(MemoryQuarantine):
    def put(self, batch_id, partition_ms, rejections):
        raise ArchiveUnavailable("bucket unreachable")


def service(store=None, archive=None, quarantine=None, lateness=None):
    return ProcessService(
        store or MemoryStore(),
        ManualClock(T0),
        archive if archive is not None else MemoryArchive(),
        quarantine if quarantine is not None else MemoryQuarantine(),
        lateness,
    )


def test_every_reading_is_accounted_for_once() -> None:
    batch = RawBatch(
        "b1",
        (
            record(
                "1", payload("d1", "2025-08-31T10:00:00Z"), payload("d1", "2025-08-31T10:00:01Z")
            ),
            record("2", payload("d1", "2025-08-31T10:00:00Z")),  # resend
            record("3", payload("d1", "2025-08-31T10:00:01Z", 30.0)),  # conflicting resend
            RawRecord("4", b"{not json", T0),
            record("5", {"device_id": "d2", "timestamp": "2025-08-31T10:00:00"}),
            record("6", payload("d2", "2025-08-20T10:00:00Z")),  # older than the 7-day horizon
        ),
    )
    report = service().process(batch)
    assert (report.received, report.accepted, report.duplicates) == (7, 2, 1)
    assert report.rejected == {
        "conflicting_duplicate": 1,
        "malformed_json": 1,
        "naive_timestamp": 1,
        "too_late": 1,
    }
    assert report.received == report.accepted + report.duplicates + sum(report.rejected.values())
    assert report.windows_updated == 1 and report.failed_records == ()


def test_raw_batches_are_archived_as_delivered_and_rejects_quarantined() -> None:
    archive, quarantine = MemoryArchive(), MemoryQuarantine()
    batch = RawBatch(
        "shard-1:5:9",
        (record("5", payload("d1", "2025-08-31T10:00:00Z")), RawRecord("9", b"\xff\xfe", T0)),
    )
    svc = service(archive=archive, quarantine=quarantine)
    svc.process(batch)
    svc.process(batch)  # a retry overwrites, it does not duplicate
    [name] = archive.objects.names()
    assert name == "raw/dt=2025-08-31/hour=10/shard-1_5_9.jsonl.gz"
    assert decode_batch("shard-1:5:9", archive.objects.get(name)).records == batch.records
    first = orjson.loads(gzip.decompress(archive.objects.get(name)).splitlines()[0])
    assert orjson.loads(first["data"])["extra"] == "kept"  # unknown fields stay in the archive
    [rejection] = quarantine.rejections()
    assert (rejection.record_id, rejection.reason) == ("9", Reason.MALFORMED_JSON)
    assert list(archive.read(T0, T0 + MS_PER_HOUR)) == [RawBatch("shard-1_5_9", batch.records)]


def test_lateness_is_judged_against_arrival_time_so_retries_judge_alike() -> None:
    late = RawBatch(
        "b",
        (record("1", payload("d1", "2025-08-31T10:00:00Z"), arrived=T0 + 8 * 24 * MS_PER_HOUR),),
    )
    on_time = RawBatch(
        "c", (record("1", payload("d1", "2025-08-31T10:00:00Z"), arrived=T0 + MS_PER_HOUR),)
    )
    assert service().process(late).rejected == {"too_late": 1}
    assert service().process(on_time).accepted == 1
    assert service(lateness=LatenessPolicy.backfill()).process(late).accepted == 1


def test_a_store_failure_reports_only_the_records_to_retry_and_a_retry_completes() -> None:
    store = FlakyStore({"d2"})
    svc = service(store=store)
    batch = RawBatch(
        "b",
        (
            record("1", payload("d1", "2025-08-31T10:00:00Z")),
            record("2", payload("d2", "2025-08-31T10:00:00Z")),
            record(
                "3", payload("d1", "2025-08-31T10:00:05Z"), payload("d2", "2025-08-31T10:00:05Z")
            ),
        ),
    )
    report = svc.process(batch)
    assert report.failed_records == ("2", "3")
    assert (report.accepted, report.unapplied) == (2, 2)
    assert report.received == report.accepted + report.unapplied
    assert any("unavailable" in e for e in report.errors)
    store.failing.clear()
    retry = svc.process(batch)
    assert (retry.accepted, retry.duplicates, retry.failed_records) == (2, 2, ())
    [d2] = store.hourly("d2", T0, T0 + MS_PER_HOUR, limit=5).items
    assert d2.stats.count == 2


def test_an_archive_failure_fails_the_whole_batch_before_anything_is_counted() -> None:
    store = MemoryStore()
    batch = RawBatch(
        "b",
        (
            record("1", payload("d1", "2025-08-31T10:00:00Z")),
            record("2", payload("d1", "2025-08-31T10:00:01Z")),
        ),
    )
    report = service(store=store, archive=BrokenArchive()).process(batch)
    assert report.failed_records == ("1", "2") and report.accepted == 0
    assert store.devices(limit=5).items == []


def test_a_quarantine_failure_retries_the_records_with_rejections() -> None:
    batch = RawBatch(
        "b", (record("1", payload("d1", "2025-08-31T10:00:00Z")), RawRecord("2", b"nope", T0))
    )
    report = service(quarantine=BrokenQuarantine()).process(batch)
    assert report.failed_records == ("2",) and report.accepted == 1


@pytest.mark.parametrize("extra", [False, True], ids=["plain record", "record with extra fields"])
def test_late_items_of_an_array_record_are_quarantined_as_sent(extra: bool) -> None:
    # Plain records take the msgspec decoder, others the general path: both quarantine each
    # refused item with its index and its own bytes, and count the rest.
    items = [
        {"device_id": "d1", "timestamp": "2025-08-20T10:00:00Z", "temperature": 1.5},
        {"device_id": "d1", "timestamp": "2025-08-31T09:59:00Z", "temperature": 2.5},
        {"device_id": "d1", "timestamp": "2025-08-31T11:00:00.5Z", "humidity": 40},
    ]
    if extra:
        items = [{**item, "firmware": "1.2"} for item in items]
    quarantine = MemoryQuarantine()
    report = service(quarantine=quarantine).process(RawBatch("b", (record("r", *items),)))
    assert (report.received, report.accepted) == (3, 1)
    assert report.rejected == {"too_late": 1, "from_future": 1}
    refused = sorted(quarantine.rejections(), key=lambda r: r.index)
    assert [(r.record_id, r.index, r.reason) for r in refused] == [
        ("r", 0, Reason.TOO_LATE),
        ("r", 2, Reason.FROM_FUTURE),
    ]
    assert [orjson.loads(r.payload) for r in refused] == [items[0], items[2]]


def test_a_conflict_is_reported_at_its_own_item_after_a_late_item_of_its_record() -> None:
    # Plain records (no extra field) take the decoder: the late first item is dropped before
    # the store sees the second, whose conflict must still point at item 1, not item 0.
    def plain(stamp: str, temperature: float) -> dict:
        return {"device_id": "d1", "timestamp": stamp, "temperature": temperature}

    quarantine = MemoryQuarantine()
    svc = service(quarantine=quarantine)
    svc.process(RawBatch("a", (record("1", plain("2025-08-31T10:00:00Z", 20.0)),)))
    late, conflicting = plain("2025-08-20T10:00:00Z", 20.0), plain("2025-08-31T10:00:00Z", 25.0)
    report = svc.process(RawBatch("b", (record("2", late, conflicting),)))
    assert report.rejected == {"too_late": 1, "conflicting_duplicate": 1}
    refused = sorted((r.record_id, r.index, r.reason) for r in quarantine.rejections())
    assert refused == [("2", 0, Reason.TOO_LATE), ("2", 1, Reason.CONFLICTING_DUPLICATE)]
    assert orjson.loads(quarantine.rejections()[-1].payload)["temperature"] == 25.0
