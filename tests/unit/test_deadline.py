"""A deadline on the store and the process use case: nothing starts after it, and what was not
started is reported failed (retried later), never lost and never counted twice."""

from __future__ import annotations

import time

import orjson
import pytest

from iotpipe.adapters.clock import ManualClock
from iotpipe.adapters.memory import MemoryStore
from iotpipe.application import ProcessService
from iotpipe.domain import Reading
from iotpipe.domain.time import MS_PER_HOUR, parse_instant
from iotpipe.ports import DEADLINE_PASSED, Contribution, Deadline, RawBatch, RawRecord

pytestmark = pytest.mark.unit

T0 = parse_instant("2025-08-31T10:00:00Z")


def _reading(device: str, hour: int) -> Reading:
    return Reading(device, T0 + hour * MS_PER_HOUR, (1000, None))


def test_a_passed_deadline_starts_no_write_and_fails_every_window() -> None:
    store = MemoryStore()
    contributions = [Contribution(d, T0, (_reading(d, 0),)) for d in ("a", "b")]
    result = store.apply(contributions, Deadline.after(0))
    assert set(result.failed.values()) == {DEADLINE_PASSED}
    assert not result.written and store.ops().writes == 0


class SlowStore(MemoryStore):
    """Each window write takes 50 ms."""

    def _save(self, window, expected):  # type: ignore[no-untyped-def]
        time.sleep(0.05)
        super()._save(window, expected)

    def _save_all(self, windows):  # type: ignore[no-untyped-def]
        time.sleep(0.05 * len(windows))
        return super()._save_all(windows)


def test_windows_are_written_until_the_deadline_then_reported_and_applied_on_retry() -> None:
    store = SlowStore()
    contributions = [Contribution(f"d{i}", T0, (_reading(f"d{i}", 0),)) for i in range(20)]
    result = store.apply(contributions, Deadline.after(0.2))
    assert 0 < len(result.written) < 20
    assert result.failed.keys() == {c.key for c in contributions} - result.written
    again = store.apply([c for c in contributions if c.key in result.failed])
    assert not again.failed and len(again.written) == 20 - len(result.written)


def test_the_use_case_reports_the_records_of_windows_not_started() -> None:
    store = SlowStore()
    records = tuple(
        RawRecord(
            str(i),
            orjson.dumps(
                {"device_id": f"d{i}", "timestamp": "2025-08-31T10:00:00Z", "temperature": 1}
            ),
            T0,
        )
        for i in range(20)
    )
    service = ProcessService(store, ManualClock(T0))
    report = service.process(RawBatch("b", records), Deadline.after(0.2))
    assert 0 < len(report.failed_records) < 20
    assert report.accepted + report.unapplied == 20
    assert service.process(RawBatch("b", records), Deadline.after(0)).failed_records == tuple(
        r.record_id for r in records
    )
    retried = [r for r in records if r.record_id in set(report.failed_records)]
    final = service.process(RawBatch("b2", tuple(retried)))
    assert not final.failed_records and final.accepted == len(retried)
