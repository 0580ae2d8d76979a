"""The stream worker: drains the stream, redelivers failed records, never drops a batch."""

from __future__ import annotations

import orjson
import pytest

from iotpipe.adapters.clock import ManualClock
from iotpipe.adapters.memory import MemoryStore, MemoryStream
from iotpipe.application import ProcessService
from iotpipe.application.worker import StreamWorker
from iotpipe.domain import LatenessPolicy, StoreUnavailable
from iotpipe.domain.time import MS_PER_HOUR, format_instant, parse_instant
from iotpipe.ports import StreamMessage

pytestmark = pytest.mark.unit

T0 = parse_instant("2025-08-31T10:00:00Z")


class SometimesDown(MemoryStore):
    """Refuses the first ``failures`` window writes, as a throttled store would."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def _save_all(self, windows):
        refused = min(self.failures, len(windows))
        self.failures -= refused
        return [StoreUnavailable("throttled")] * refused + super()._save_all(windows[refused:])


def publish(stream: MemoryStream, n: int) -> None:
    messages = [
        StreamMessage(
            f"d{i % 3}",
            orjson.dumps(
                [
                    {
                        "device_id": f"d{i % 3}",
                        "timestamp": format_instant(T0 + i * 1000),
                        "temperature": i % 40,
                    }
                ]
            ),
        )
        for i in range(n)
    ]
    stream.publish(messages)


def test_the_worker_redelivers_failures_until_everything_is_counted_once() -> None:
    clock = ManualClock(T0)
    stream, store = MemoryStream(clock), SometimesDown(failures=5)
    reports = []
    worker = StreamWorker(
        stream,
        ProcessService(store, clock, lateness=LatenessPolicy.unbounded()),
        batch_size=7,
        poll_s=0.01,
        max_backoff_s=0.01,
        on_report=reports.append,
    ).start()
    publish(stream, 60)
    assert worker.wait_idle(10)
    worker.stop()
    windows = store.hourly("d0", T0, T0 + MS_PER_HOUR, limit=5).items
    counted = sum(
        w.stats.count
        for d in ("d0", "d1", "d2")
        for w in store.hourly(d, T0, T0 + MS_PER_HOUR, limit=5).items
    )
    assert counted == 60 and windows
    assert any(r.failed_records for r in reports), "the store failures were seen"
    assert sum(r.accepted for r in reports) == 60  # each reading counted exactly once
