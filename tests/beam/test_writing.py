"""Writing combined windows through the store port (no Beam needed): a retried bundle changes
nothing, a store outage is retried and then left to the runner, refused readings are found in
their batch. Against the real SQLite store, its write lock really taken by another connection."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from iotpipe.adapters.local import SqliteStore
from iotpipe.application import QueryService
from iotpipe.domain import HourlyWindow, Reading, Reason, StoreUnavailable
from iotpipe.entrypoints.beam.combine import Copy, WindowReadings, pack
from iotpipe.entrypoints.beam.writing import rejections_for, write_windows
from iotpipe.ports import RawBatch, RawRecord, WindowKey

pytestmark = pytest.mark.integration

HOUR = 1_756_598_400_000  # 2025-08-31T00:00:00Z
STAMP = "2025-08-31T00:00:{:02d}Z"


def _reading(device: str, second: int, humidity: int) -> Reading:
    return Reading(device, HOUR + 1000 * second, (None, humidity * 1000), None)


def _windows() -> list[tuple[WindowKey, list[Copy]]]:
    """Two devices' windows from three batches; d1's second 3 comes in two versions."""
    found = []
    for device in ("d1", "d2"):
        accumulator = WindowReadings()
        accumulator.add(
            "raw/dt=2025-08-31/hour=00/a", pack([_reading(device, s, 40) for s in range(5)])
        )
        accumulator.add(
            "raw/dt=2025-08-31/hour=00/b", pack([_reading(device, s, 40) for s in range(3, 8)])
        )
        accumulator.add("raw/dt=2025-08-31/hour=01/c", pack([_reading(device, 3, 99)]))
        found.append(((device, HOUR), accumulator.offered()))
    return found


def _stored(store: SqliteStore) -> list[HourlyWindow]:
    return list(QueryService(store).every_window())


def test_a_retried_bundle_changes_nothing(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "s.db") as store:
        first = write_windows(store, _windows())
        assert (first.counted, first.duplicates, first.written) == (16, 4, 2)
        assert [(name, reason) for name, (reason, _, _) in first.refused] == [
            ("raw/dt=2025-08-31/hour=01/c", "conflicting_duplicate")
        ] * 2
        before = _stored(store)
        again = write_windows(store, _windows())
        assert (again.counted, again.duplicates, again.written, again.store_writes) == (0, 20, 0, 0)
        assert again.refused == first.refused  # the same readings refused, the same way
        assert _stored(store) == before


def test_a_store_outage_is_retried_and_then_applied_exactly(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SqliteStore(path) as reference:
        write_windows(reference, _windows())
        expected = _stored(reference)
    locked = tmp_path / "locked.db"
    with SqliteStore(locked, busy_timeout_s=0.01) as store:
        holder = sqlite3.connect(locked, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock: the store is busy
        slept: list[float] = []

        def release(seconds: float) -> None:
            slept.append(seconds)
            holder.execute("ROLLBACK")

        done = write_windows(store, _windows(), sleep=release)
        holder.close()
        assert done.attempts == 2 and len(slept) == 1
        assert (done.counted, done.duplicates) == (16, 4)
        assert _stored(store) == expected


def test_an_outage_that_lasts_raises_so_the_runner_retries_the_bundle(tmp_path: Path) -> None:
    locked = tmp_path / "locked.db"
    with SqliteStore(locked, busy_timeout_s=0.01) as store:
        holder = sqlite3.connect(locked, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable, match="2 windows not written"):
            write_windows(store, _windows(), attempts=3, sleep=lambda _: None)
        holder.execute("ROLLBACK")
        holder.close()
        assert _stored(store) == []
        # The runner's retry of the bundle then applies it whole.
        assert write_windows(store, _windows()).counted == 16


def test_refused_readings_are_found_in_their_batch_by_rank() -> None:
    said = '{{"device_id":"d1","timestamp":"{}","humidity":{}}}'
    records = (
        RawRecord("r0", b"not json", HOUR),
        RawRecord(
            "r1",
            f"[{said.format(STAMP.format(3), 99)}, {said.format(STAMP.format(4), 1)}]".encode(),
            HOUR,
        ),
        RawRecord("r2", said.format(STAMP.format(3), 99).encode(), HOUR),
    )
    batch = RawBatch("c", records)
    refused = _reading("d1", 3, 99)
    found = rejections_for(
        batch, [("conflicting_duplicate", refused, 1), ("conflicting_duplicate", refused, 0)]
    )
    assert [(r.record_id, r.index, r.reason) for r in found] == [
        ("r1", 0, Reason.CONFLICTING_DUPLICATE),
        ("r2", 0, Reason.CONFLICTING_DUPLICATE),
    ]
    assert (
        found[0].payload == b'{"device_id":"d1","timestamp":"2025-08-31T00:00:03Z","humidity":99.0}'
    )
