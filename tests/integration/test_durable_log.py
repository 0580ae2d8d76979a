"""The durable log (an SQLite file): appends, batches, the checkpoint, bounds, restarts."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson
import pytest

from iotpipe.adapters.clock import ManualClock
from iotpipe.adapters.local import SqliteLog
from iotpipe.adapters.memory import MemoryStore
from iotpipe.application import ProcessService, StreamWorker
from iotpipe.domain import LatenessPolicy, StreamFull
from iotpipe.domain.time import format_instant, parse_instant
from iotpipe.ports import CommittableSource, RawBatch, StreamMessage

pytestmark = pytest.mark.integration

T0 = parse_instant("2025-08-31T10:00:00Z")


def message(n: int, device: str = "d1") -> StreamMessage:
    return StreamMessage(
        device,
        orjson.dumps([{"device_id": device, "timestamp": format_instant(T0 + n), "humidity": 1}]),
    )


def items(batch: RawBatch) -> list[dict[str, object]]:
    return [item for record in batch.records for item in orjson.loads(record.data)]


def test_a_publish_is_one_record_stamped_with_its_arrival(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    with SqliteLog(tmp_path / "log.db", clock=clock) as log:
        log.publish([message(1, "a"), message(2, "b")])
        clock.advance(5_000)
        log.publish([message(3, "a")])
        batch = log.poll(100)
        assert batch is not None
        assert [(r.record_id, r.arrived_ms) for r in batch.records] == [("1", T0), ("2", T0 + 5000)]
        assert [i["device_id"] for i in items(batch)] == ["a", "b", "a"]
        assert batch.batch_id == f"log-{log.log_id}-000000000001-000000000002"


def test_a_batch_is_handed_out_again_until_committed_also_after_a_restart(tmp_path: Path) -> None:
    with SqliteLog(tmp_path / "log.db") as log:
        for n in range(5):
            log.publish([message(n)])
        first = log.poll(3)
        assert first is not None and log.poll(3) == first
    with SqliteLog(tmp_path / "log.db") as log:  # a restart: the same batch, the same id
        again = log.poll(100)  # even asked for more: the pending range is what comes back
        assert again == first
        log.commit(again)
        rest = log.poll(100)
        assert rest is not None and [r.record_id for r in rest.records] == ["4", "5"]
        log.commit(rest)
        assert log.poll(100) is None
        assert log.status().backlog_records == 0


def test_positions_are_never_reused_after_compaction_and_restart(tmp_path: Path) -> None:
    ids = []
    for _ in range(3):
        with SqliteLog(tmp_path / "log.db") as log:
            log.publish([message(1)])
            batch = log.poll(10)
            assert batch is not None
            log.commit(batch)  # everything consumed is deleted
            ids.append(batch.batch_id)
    assert len(set(ids)) == 3 and ids[-1].endswith("-000000000003-000000000003")
    # A new log file (a reset data directory) has another id: its names cannot collide.
    with SqliteLog(tmp_path / "other.db") as other:
        other.publish([message(1)])
        batch = other.poll(10)
        assert batch is not None and batch.batch_id not in ids


def test_a_full_backlog_refuses_the_whole_publish_and_keeps_what_it_has(tmp_path: Path) -> None:
    with SqliteLog(tmp_path / "log.db", max_backlog_records=2) as log:
        log.publish([message(1)])
        log.publish([message(2)])
        with pytest.raises(StreamFull) as refused:
            log.publish([message(3)])
        assert refused.value.retry_after_s >= 1
        assert log.status().backlog_records == 2
        batch = log.poll(10)
        assert batch is not None and len(batch.records) == 2
        log.commit(batch)
        log.publish([message(3)])  # room again
        assert log.status().backlog_records == 1
    with SqliteLog(tmp_path / "bytes.db", max_backlog_bytes=100) as log:
        log.publish([message(1)])
        with pytest.raises(StreamFull):
            log.publish([message(2)])


def test_concurrent_publishers_share_commits_and_lose_nothing(tmp_path: Path) -> None:
    with SqliteLog(tmp_path / "log.db") as log:

        def publisher(p: int) -> None:
            for n in range(50):
                log.publish([message(p * 1000 + n, f"p{p}")])

        threads = [threading.Thread(target=publisher, args=(p,)) for p in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        status = log.status()
        assert status.appended == 400 and status.backlog_records == 400
        seen = []
        while (batch := log.poll(64)) is not None:
            seen += [(i["device_id"], i["timestamp"]) for i in items(batch)]
            log.commit(batch)
        assert len(seen) == len(set(seen)) == 400


def test_the_status_tells_the_backlog_and_its_age(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    with SqliteLog(tmp_path / "log.db", clock=clock) as log:
        assert log.status().oldest_unprocessed_ms is None
        log.publish([message(1)])
        clock.advance(1000)
        log.publish([message(2)])
        status = log.status()
        assert (status.backlog_records, status.oldest_unprocessed_ms) == (2, T0)
        assert status.backlog_bytes == sum(len(message(n).data) for n in (1, 2))
        assert status.as_json(T0 + 4000)["oldest_unprocessed_age_ms"] == 4000
        assert status.file_bytes > 0


def test_the_worker_commits_only_what_the_store_applied(tmp_path: Path) -> None:
    class Flaky(MemoryStore):
        failures = 3

        def _save_all(self, windows):  # type: ignore[no-untyped-def]
            if self.failures:
                self.failures -= 1
                from iotpipe.domain import StoreUnavailable

                return [StoreUnavailable("down")] * len(windows)
            return super()._save_all(windows)

    clock = ManualClock(T0)
    store = Flaky()
    with SqliteLog(tmp_path / "log.db", clock=clock) as log:
        assert isinstance(log, CommittableSource)
        for n in range(20):
            log.publish([message(n * 1000, f"d{n % 3}")])
        processor = ProcessService(store, clock, lateness=LatenessPolicy.unbounded())
        worker = StreamWorker(log, processor, batch_size=7, poll_s=0.01, max_backoff_s=0.01)
        worker.start()
        assert worker.wait_idle(10)
        worker.stop()
        assert log.status().backlog_records == 0
    counted = sum(
        w.stats.count
        for d in ("d0", "d1", "d2")
        for w in store.hourly(d, T0, T0 + 3_600_000, limit=5).items
    )
    assert counted == 20 and store.failures == 0


def test_consumed_records_are_compacted_so_the_file_stays_bounded(tmp_path: Path) -> None:
    big = StreamMessage("d", b"[" + b'"' + b"x" * 4000 + b'"' + b"]")
    sizes = []
    with SqliteLog(tmp_path / "log.db", sync="normal") as log:
        for _ in range(4):  # fill and drain, four times over
            for _ in range(1500):
                log.publish([big])
            while (batch := log.poll(100)) is not None:
                log.commit(batch)
            sizes.append(log.status().file_bytes)
        assert log.status().backlog_bytes == 0
    # About one fill plus the WAL between checkpoints (1,000 pages, ~4 MB), not the four
    # fills that went through; and no growth from one cycle to the next.
    fill = 1500 * 4000
    assert max(sizes) < fill + 6_000_000 < 4 * fill
    assert sizes[-1] <= sizes[0] * 1.1


def test_the_health_route_shows_the_log_as_its_declaration_says(tmp_path: Path) -> None:
    from iotpipe.adapters.local import SqliteStore
    from iotpipe.application import Pipeline
    from iotpipe.entrypoints.http import AnalyticsApi, ApiKeys, HttpRequest

    clock = ManualClock(T0)
    with SqliteLog(tmp_path / "log.db", clock=clock) as log:
        pipeline = Pipeline(SqliteStore(tmp_path / "store.db"), clock, stream=log)
        api = AnalyticsApi.for_pipeline(
            pipeline,
            ApiKeys(["k"]),
            check_responses=True,  # a member the Health model lacks would answer 500
            stream_status=lambda: log.status().as_json(clock.now_ms()),
        )
        log.publish([message(1)])
        clock.advance(2500)
        response = api.handle(HttpRequest("GET", "/v1/health"))
        assert response.status == 200, response.body
        stream = response.json()["stream"]
        assert (stream["backlog_records"], stream["oldest_unprocessed_age_ms"]) == (1, 2500)
        plain = AnalyticsApi.for_pipeline(pipeline, ApiKeys(["k"]), check_responses=True)
        assert "stream" not in plain.handle(HttpRequest("GET", "/v1/health")).json()
