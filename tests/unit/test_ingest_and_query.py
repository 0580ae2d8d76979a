"""Ingest (validate, group by device, publish) and query (daily rollups, fleet hours)."""

from __future__ import annotations

import orjson
import pytest

from iotpipe import in_memory_pipeline
from iotpipe.adapters.clock import ManualClock
from iotpipe.adapters.memory import MemoryStream
from iotpipe.application import IngestService
from iotpipe.domain import LatenessPolicy, Reason, Stats, merge_all
from iotpipe.domain.time import MS_PER_DAY, MS_PER_HOUR, format_instant, parse_instant
from iotpipe.ports import PublishResult

pytestmark = pytest.mark.unit

T0 = parse_instant("2025-08-31T10:00:00Z")


def item(device: str, ms: int, temperature: float = 20.0) -> dict:
    return {"device_id": device, "timestamp": format_instant(ms), "temperature": temperature}


class HalfBrokenStream(MemoryStream):
    """Refuses every other message, as a throttled stream reports per-record failures."""

    def publish(self, messages):
        super().publish([m for i, m in enumerate(messages) if i % 2 == 0])
        return PublishResult(failed=tuple(range(1, len(messages), 2)), error="throttled")


def test_ingest_publishes_valid_items_one_message_per_device_and_reports_each_item() -> None:
    stream = MemoryStream(ManualClock(T0))
    result = IngestService(stream, ManualClock(T0)).ingest(
        [item("d1", T0), "junk", item("d2", T0), item("d1", T0 + 1), {"device_id": "d3"}]
    )
    assert result.accepted == 3 and result.unpublished == ()
    assert [(r.index, r.reason) for r in result.rejected] == [
        (1, Reason.NOT_AN_OBJECT),
        (4, Reason.MISSING_TIMESTAMP),
    ]
    batch = stream.poll(10)
    assert batch is not None
    bodies = [orjson.loads(rec.data) for rec in batch.records]
    assert bodies == [[item("d1", T0), item("d1", T0 + 1)], [item("d2", T0)]]
    assert all(rec.arrived_ms == T0 for rec in batch.records)


def test_ingest_reports_items_the_stream_refused() -> None:
    clock = ManualClock(T0)
    result = IngestService(HalfBrokenStream(clock), clock).ingest(
        [item("a", T0), item("b", T0), item("b", T0 + 1), item("c", T0)]
    )
    assert result.unpublished == (1, 2) and result.accepted == 2


def test_ingest_refuses_readings_from_the_future() -> None:
    clock = ManualClock(T0)
    result = IngestService(MemoryStream(clock), clock).ingest([item("a", T0 + 10 * 60_000)])
    assert [r.reason for r in result.rejected] == [Reason.FROM_FUTURE]


def test_daily_rollups_and_fleet_hours_are_merges_of_hourly_windows() -> None:
    pipeline = in_memory_pipeline(clock=ManualClock(T0), lateness=LatenessPolicy.unbounded())
    items = [item(d, T0 + k * 20 * 60_000, 10 + k) for d in ("a", "b") for k in range(-40, 50)]
    assert pipeline.ingest(items).accepted == len(items)
    assert sum(r.accepted for r in pipeline.drain(batch_size=7)) == len(items)

    days = pipeline.query.daily("a", T0 - MS_PER_DAY, T0 + MS_PER_DAY)
    assert [format_instant(d.day_ms) for d in days] == [
        "2025-08-30T00:00:00Z",
        "2025-08-31T00:00:00Z",
        "2025-09-01T00:00:00Z",
    ]
    windows = list(pipeline.query.every_window())
    assert sum(d.stats.count for d in days) == 90
    assert merge_all(d.stats for d in days) == merge_all(
        w.stats for w in windows if w.device_id == "a"
    )

    fleet = pipeline.query.fleet_hour(T0, limit=1)
    assert [w.device_id for w in fleet.page.items] == ["a"] and fleet.page.cursor == "a"
    assert fleet.fleet == merge_all(w.stats for w in windows if w.hour_ms == T0)
    assert fleet.fleet.count == 6
    assert pipeline.query.latest("b") is not None
    assert pipeline.query.latest("b").timestamp_ms == T0 + 49 * 20 * 60_000
    assert pipeline.query.latest("zzz") is None
    assert Stats.create().count == 0 and MS_PER_HOUR == 3_600_000
