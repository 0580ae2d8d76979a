"""The SQLite store's format 2: small heads, sealed identity segments, fleet totals, and the
upgrade of a file written by the release before it (schema 1, the committed fixture)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from iotpipe.adapters.clock import ManualClock
from iotpipe.adapters.local import SqliteStore
from iotpipe.application import Pipeline
from iotpipe.application.payloads import encode_items
from iotpipe.domain import FleetTotal, LatenessPolicy, Location, Reading, merge_all
from iotpipe.domain.time import MS_PER_HOUR
from iotpipe.ports import Contribution, RawBatch, RawRecord
from tests.oracle import expected_windows

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "format1"
H0 = 1_756_634_400_000


def reading(ts: int, temperature: int = 20_000, device: str = "d1") -> Reading:
    return Reading(device, ts, (temperature, 50_000), Location(1.0, 2.0))


def apply(store: SqliteStore, readings: list[Reading]):
    return store.apply([Contribution(r.device_id, r.hour_ms, (r,)) for r in readings])


def heads_and_segments(path: Path) -> tuple[list[int], int]:
    with sqlite3.connect(path) as conn:
        sizes = [n for (n,) in conn.execute("SELECT length(head) FROM windows")]
        [(segments,)] = conn.execute("SELECT count(*) FROM segments")
    return sizes, segments


def test_an_hour_at_one_reading_a_second_keeps_its_head_small(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SqliteStore(path) as store:
        for minute in range(60):  # a device posting its last minute once a minute
            batch = [reading(H0 + (minute * 60 + s) * 1000 + 7) for s in range(60)]
            assert not store.apply([Contribution("d1", H0, tuple(batch))]).failed
        sizes, segments = heads_and_segments(path)
        assert max(sizes) <= 1024 and segments >= 10
        [window] = store.hourly("d1", H0, H0 + MS_PER_HOUR, limit=1).items
        assert window.stats.count == 3600
        # An early reading resent (below the horizon: only the segments know it) is a
        # duplicate; the same instant with other values a conflict; a new instant counts.
        early = reading(H0 + 5 * 1000 + 7)
        result = apply(store, [early])
        assert result.absorbed[("d1", H0)].duplicates == (0,) and not result.written
        result = apply(store, [early._replace(values=(99_000, 50_000))])
        assert result.absorbed[("d1", H0)].conflicts == (0,)
        result = apply(store, [reading(H0 + 5 * 1000 + 8)])
        assert result.absorbed[("d1", H0)].new == (0,)
        assert store.fleet_total(H0).stats.count == 3601


def test_an_orphan_segment_changes_nothing(tmp_path: Path) -> None:
    """A segment whose head write never happened holds identities of a committed tail: a copy
    of it under another base version (a writer that sealed, then lost the race or crashed)
    adds nothing when read back."""
    path = tmp_path / "o.db"
    with SqliteStore(path) as store:
        for minute in range(8):
            batch = [reading(H0 + (minute * 60 + s) * 1000) for s in range(60)]
            store.apply([Contribution("d1", H0, tuple(batch))])
        with sqlite3.connect(path) as conn:
            [(identities,)] = conn.execute("SELECT identities FROM segments LIMIT 1").fetchall()
            conn.execute("INSERT INTO segments VALUES ('d1', ?, 999, ?)", (H0, identities))
        resent = [reading(H0 + s * 1000) for s in range(0, 480, 7)]
        result = store.apply([Contribution("d1", H0, tuple(resent))])
        assert len(result.absorbed[("d1", H0)].duplicates) == len(resent)
        assert store.fleet_total(H0).stats.count == 480


def test_a_file_of_the_previous_release_is_upgraded_and_keeps_counting_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    shutil.copy(FIXTURE / "sqlite.db", path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (1,)
    lines = (FIXTURE / "readings.jsonl").read_bytes().splitlines()
    expected = expected_windows(lines)
    with SqliteStore(path) as store:
        pipeline = Pipeline(store=store, clock=ManualClock(H0), lateness=LatenessPolicy.unbounded())
        stored = {w.key: w.stats for w in pipeline.query.every_window()}
        assert stored == expected
        for hour in {h for _, h in expected}:
            mine = [s for (_, h), s in expected.items() if h == hour]
            assert store.fleet_total(hour) == FleetTotal(merge_all(mine), len(mine))
        # Everything the old release counted is known: resending it all writes nothing.
        batch = RawBatch("again", tuple(RawRecord(str(i), line) for i, line in enumerate(lines)))
        report = pipeline.process(batch)
        assert report.accepted == 0 and report.duplicates == len(lines)
        assert report.windows_updated == 0
        new = reading(H0 + 1, device="iot-sensor-001")
        raw = RawRecord("new", encode_items([new.to_json()]))
        assert pipeline.process(RawBatch("new", (raw,))).accepted == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)


def test_a_file_of_the_previous_release_opened_under_a_declared_schema_keeps_its_metrics(
    tmp_path: Path,
) -> None:
    # The upgrade reads schema 1 rows by the default payload's names (the only payload that
    # release knew), whatever schema the store is opened with; the start-up check then runs
    # the default metrics as retired, so their windows and fleet totals stay readable.
    from iotpipe.application import use_schema
    from iotpipe.domain import DEFAULT_SCHEMA, Metric, TelemetrySchema

    path = tmp_path / "old.db"
    shutil.copy(FIXTURE / "sqlite.db", path)
    declared = TelemetrySchema((Metric("pressure", "kPa", 0, 1000, exponent=-1),), location=None)
    expected = expected_windows((FIXTURE / "readings.jsonl").read_bytes().splitlines())
    with SqliteStore(path, schema=declared) as store:
        running = use_schema(store, declared)
        assert running.names[0] == "pressure"
        assert sorted(running.names[1:]) == ["humidity", "temperature"]
        assert [m.retired for m in running.metrics] == [False, True, True]
        by_name = {n: running.names.index(n) for n in DEFAULT_SCHEMA.names}
        pipeline = Pipeline(store=store, clock=ManualClock(H0), schema=running)
        for window in pipeline.query.every_window():
            old = expected[window.key]
            for name, moments in zip(DEFAULT_SCHEMA.names, old.metrics, strict=True):
                assert window.stats.metrics[by_name[name]] == moments
            assert window.stats.metrics[0].count == 0  # pressure: none yet
        for hour in {h for _, h in expected}:
            mine = [s for (_, h), s in expected.items() if h == hour]
            total = store.fleet_total(hour)
            assert total.devices == len(mine)
            for name, moments in zip(DEFAULT_SCHEMA.names, merge_all(mine).metrics, strict=True):
                assert total.stats.metric(name, running) == moments
