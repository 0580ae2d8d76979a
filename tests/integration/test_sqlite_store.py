"""The SQLite store on real files: persistence, several OS processes, locks and bad files.

The store's general behaviour is the shared contract (``tests/contract``, the stateful machine
and the exactly-once property run over every store); this module covers what only a file
shared by processes can show.
"""

from __future__ import annotations

import multiprocessing
import queue
import random
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from iotpipe.adapters.local import SCHEMA_VERSION, SqliteStore, UnusableDatabase
from iotpipe.domain import Location, Reading, Stats, StoreUnavailable, WindowConflict
from iotpipe.domain.time import MS_PER_HOUR
from iotpipe.ports import ApplyResult, Contribution, RetryPolicy
from tests.strategies import BASE_MS

pytestmark = pytest.mark.integration

H0, H1 = BASE_MS, BASE_MS + MS_PER_HOUR


def reading(device: str, ts: int, temperature: float = 20.0) -> Reading:
    return Reading(device, ts, (round(temperature * 1000), 50_000), Location(1.0, 2.0))


def contribute(store: SqliteStore, readings: list[Reading]) -> ApplyResult:
    groups: dict[tuple[str, int], list[Reading]] = {}
    for r in readings:
        groups.setdefault((r.device_id, r.hour_ms), []).append(r)
    return store.apply([Contribution(d, h, tuple(rs)) for (d, h), rs in groups.items()])


def snapshot(store: SqliteStore) -> dict[str, object]:
    """Everything the queries show, for comparisons."""
    devices = store.devices(limit=100).items
    return {
        "devices": [(d.device_id, d.last_seen_ms) for d in devices],
        "windows": [
            w for d in devices for w in store.hourly(d.device_id, 0, 2**62, limit=1000).items
        ],
        "fleet": store.fleet_hour(H0, limit=100).items,
        "latest": [store.latest(d.device_id) for d in devices],
    }


# --- persistence ------------------------------------------------------------------------------


def test_windows_survive_closing_and_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "iotpipe.db"
    first = [reading("d1", H0 + 5), reading("d1", H1 + 9, 30.0), reading("d2", H0 + 1)]
    with SqliteStore(path) as store:
        assert not contribute(store, first).failed
        before = snapshot(store)

    with SqliteStore(path) as reopened:
        assert snapshot(reopened) == before
        # Counted readings are still known: resending them writes nothing.
        again = contribute(reopened, first)
        assert again.written == frozenset()
        assert reopened.ops().writes == 0
        # A known device gets a new window: one window write, no registry write.
        later = reading("d2", H1 + 3)
        assert contribute(reopened, [later]).written == {("d2", H1)}
        assert reopened.ops().writes == 1
        [window] = reopened.hourly("d2", H1, H1 + 1, limit=5).items
        assert window.stats == Stats.of([later])
        assert reopened.latest("d2") == later

    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    check.close()


def test_more_windows_than_one_load_query_holds_are_all_found(tmp_path: Path) -> None:
    # 300 windows in one apply: loading them takes two queries (250 keys each at most).
    readings = [reading(f"d{i:03d}", H0 + i) for i in range(150)]
    readings += [reading(f"d{i:03d}", H1 + i) for i in range(150)]
    with SqliteStore(tmp_path / "many.db") as store:
        assert len(contribute(store, readings).written) == 300
        reads = store.ops().reads
        again = contribute(store, list(reversed(readings)))
        assert again.written == frozenset() and not again.failed
        assert sum(len(a.duplicates) for a in again.absorbed.values()) == 300
        # One read per window: a window the load missed would cost a conflict and a re-read.
        assert store.ops().reads - reads == 300


def test_versions_are_checked_across_connections(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    with SqliteStore(path) as mine, SqliteStore(path) as theirs:
        key = ("d1", H0)
        # Both find the window missing; the second to create it is told so.
        assert mine._load([key]) == {}
        contribute(theirs, [reading("d1", H0 + 1)])
        window = mine._load([key])[key].window
        with pytest.raises(WindowConflict):
            mine._save(window, None)
        # Both read version 1; the second to update it is told so.
        version = mine._load([key])[key].version
        contribute(theirs, [reading("d1", H0 + 2)])
        with pytest.raises(WindowConflict):
            mine._save(window, version)
        [stored] = mine.hourly("d1", H0, H1, limit=5).items
        assert stored.stats.count == 2


# --- several processes ------------------------------------------------------------------------

DEVICES = ("d0", "d1", "d2")
PROCESSES = 4


def _fleet_readings() -> list[Reading]:
    """400 distinct readings in 6 windows (3 devices, 2 hours), the same in every process."""
    rng = random.Random(7)
    return [
        reading(DEVICES[i % 3], H0 + i * 17_000, temperature=rng.uniform(-10, 40))
        for i in range(400)
    ]


def _apply_in_a_process(path: str, seed: int, start, results) -> None:
    """Child process: every reading plus resends, in its own order and batches, into the file.

    Windows that still fail after the store's retries are delivered again, as a stream would.
    """
    rng = random.Random(seed)
    mine = _fleet_readings()
    mine += rng.sample(mine, 100)  # device resends
    rng.shuffle(mine)
    start.wait()  # all processes open the fresh file and write at the same time
    store = SqliteStore(path, retry=RetryPolicy(attempts=20, base_delay_s=0.001))
    counted = redeliveries = 0
    size = rng.randint(20, 60)
    for first in range(0, len(mine), size):
        batch = mine[first : first + size]
        for _ in range(20):
            result = contribute(store, batch)
            counted += sum(len(a.new) for a in result.absorbed.values())
            batch = [r for r in batch if (r.device_id, r.hour_ms) in result.failed]
            if not batch:
                break
            redeliveries += 1
    store.close()
    results.put((seed, counted, len(batch), redeliveries))


def test_processes_writing_the_same_windows_end_exact(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(PROCESSES), ctx.Queue()
    workers = [
        ctx.Process(target=_apply_in_a_process, args=(str(path), seed, start, results))
        for seed in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    try:
        outcomes = _results(results, workers)
    finally:
        for worker in workers:
            worker.join(timeout=30)

    assert [left for _, _, left, _ in outcomes] == [0] * PROCESSES, outcomes
    readings = _fleet_readings()
    # Each distinct reading was counted by exactly one of the processes.
    assert sum(counted for _, counted, _, _ in outcomes) == len(readings)
    with SqliteStore(path) as store:
        for device in DEVICES:
            mine = [r for r in readings if r.device_id == device]
            windows = store.hourly(device, H0, H1 + MS_PER_HOUR, limit=5).items
            assert [w.hour_ms for w in windows] == [H0, H1]
            for window in windows:
                expected = [r for r in mine if r.hour_ms == window.hour_ms]
                assert window.stats == Stats.of(expected)
                assert window.stats.count == len(expected)
            assert store.latest(device) == max(mine, key=lambda r: r.timestamp_ms)


def _results(results, workers, timeout_s: float = 120.0) -> list[tuple[int, int, int, int]]:
    """Every worker's result; fails as soon as a worker died without one."""
    outcomes: list[tuple[int, int, int, int]] = []
    deadline = time.monotonic() + timeout_s
    while len(outcomes) < len(workers) and time.monotonic() < deadline:
        try:
            outcomes.append(results.get(timeout=0.2))
        except queue.Empty:
            crashed = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            if crashed:
                pytest.fail(f"a writer process died (exit codes {crashed}); see its stderr")
    assert len(outcomes) == len(workers), "writer processes did not finish in time"
    return outcomes


def _open_together(path: Path, threads: int) -> list[BaseException]:
    """Open ``threads`` stores on one file at the same instant; the errors they raised."""
    start = threading.Barrier(threads)
    opened: list[SqliteStore] = []
    errors: list[BaseException] = []

    def open_store() -> None:
        start.wait()
        try:
            opened.append(SqliteStore(path))
        except BaseException as exc:  # surfaced by the caller
            errors.append(exc)

    workers = [threading.Thread(target=open_store) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    for store in opened:
        store.close()
    return errors


def test_threads_opening_a_new_file_together_all_succeed(tmp_path: Path) -> None:
    # Openers of a new file race to switch it to WAL, and SQLite refuses some of them at once
    # rather than waiting: the store must wait for them.
    for attempt in range(30):
        assert _open_together(tmp_path / f"new-{attempt}.db", threads=8) == []


# --- locks and unusable files -----------------------------------------------------------------


def test_a_held_write_lock_is_reported_as_unavailable_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    store = SqliteStore(path, busy_timeout_s=0.02, retry=RetryPolicy(attempts=2))
    contribute(store, [reading("d1", H0)])
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO devices (device_id) VALUES ('someone-else')")
    try:
        result = contribute(store, [reading("d1", H0 + 1), reading("d2", H0)])
        assert set(result.failed) == {("d1", H0), ("d2", H0)}
        assert all(why.startswith("unavailable: ") for why in result.failed.values())
        assert "locked" in result.failed[("d1", H0)]
        # WAL: readers do not wait for the writer, and opening the store only reads.
        [window] = store.hourly("d1", H0, H1, limit=5).items
        assert window.stats.count == 1
        with SqliteStore(path, busy_timeout_s=0.02) as reader:
            assert reader.latest("d1") == reading("d1", H0)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # Delivered again once the lock is gone: counted once, exactly.
    assert not contribute(store, [reading("d1", H0 + 1), reading("d2", H0)]).failed
    [window] = store.hourly("d1", H0, H1, limit=5).items
    assert window.stats == Stats.of([reading("d1", H0), reading("d1", H0 + 1)])
    store.close()


def test_a_file_locked_by_another_connection_cannot_be_opened_until_released(
    tmp_path: Path,
) -> None:
    path = tmp_path / "exclusive.db"
    with SqliteStore(path) as store:
        contribute(store, [reading("d1", H0)])
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailable, match="locked") as caught:
            SqliteStore(path, busy_timeout_s=0.02)
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with SqliteStore(path) as store:
        assert store.latest("d1") == reading("d1", H0)


def test_errors_that_are_not_outages_are_not_disguised_as_them(tmp_path: Path) -> None:
    path = tmp_path / "broken.db"
    store = SqliteStore(path)
    dropper = sqlite3.connect(path, isolation_level=None)
    dropper.execute("DROP TABLE windows")
    dropper.close()
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        store.hourly("d1", H0, H1, limit=5)
    store.close()


def test_files_the_store_cannot_use_are_refused_clearly(tmp_path: Path) -> None:
    text = tmp_path / "notes.db"
    text.write_bytes(b"not a database, just some text " * 100)
    with pytest.raises(UnusableDatabase, match="not an SQLite database"):
        SqliteStore(text)

    newer = tmp_path / "newer.db"
    with SqliteStore(newer):
        pass
    bump = sqlite3.connect(newer)
    bump.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    bump.close()
    with pytest.raises(UnusableDatabase, match="schema version"):
        SqliteStore(newer)

    with pytest.raises(StoreUnavailable, match="unable to open"):
        SqliteStore(tmp_path / "missing-directory" / "x.db")
    with pytest.raises(ValueError, match="file path"):
        SqliteStore(":memory:")


def test_a_closed_store_refuses_work(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "closed.db")
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.latest("d1")
