"""The CLI with the local runtime: ``process --store sqlite:PATH`` and ``replay``."""

from __future__ import annotations

import functools
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from iotpipe.adapters.clock import ManualClock
from iotpipe.adapters.local import SqliteStore
from iotpipe.application import use_schema
from iotpipe.application.views import window_json
from iotpipe.bootstrap import local_pipeline
from iotpipe.domain import DEFAULT_SCHEMA
from iotpipe.domain.time import MS_PER_HOUR, parse_instant
from iotpipe.entrypoints import cli
from iotpipe.entrypoints.cli import main
from iotpipe.ports import RetryPolicy

pytestmark = pytest.mark.unit

START_MS = parse_instant("2025-08-31T10:00:00Z")


def _reading(i: int) -> dict[str, Any]:
    return {
        "device_id": f"d{i % 3}",
        "timestamp": f"2025-08-31T{10 + i % 2}:{i % 60:02d}:{i % 7:02d}Z",
        "temperature": 20 + i % 11,
        "humidity": 40 + i % 13,
    }


def _jsonl(items: list[Any]) -> bytes:
    return b"".join(orjson.dumps(item) + b"\n" for item in items)


def _write(path: Path, items: list[Any]) -> Path:
    path.write_bytes(_jsonl(items))
    return path


def _run(capsysbinary: pytest.CaptureFixture[bytes], *argv: str) -> tuple[int, bytes, str]:
    code = main(list(argv))
    captured = capsysbinary.readouterr()
    return code, captured.out, captured.err.decode()


# --- process --store sqlite:PATH --------------------------------------------------------------


def test_processing_two_files_into_one_store_accumulates_exactly(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    first = [_reading(i) for i in range(0, 60)]
    second = [_reading(i) for i in range(40, 100)]  # 20 readings of the first file again
    a, b = _write(tmp_path / "a.jsonl", first), _write(tmp_path / "b.jsonl", second)
    both = _write(tmp_path / "both.jsonl", first + second)
    store = f"sqlite:{tmp_path / 'store.db'}"

    assert _run(capsysbinary, "process", str(a), "--store", store)[0] == 0
    code, out, err = _run(capsysbinary, "process", str(b), "--store", store)
    assert code == 0
    assert err == "iotpipe process: 60 readings, 40 counted, 20 duplicates, 0 rejected\n"
    # The second run lists every window the store holds: both files, each reading once.
    code, in_memory, _ = _run(capsysbinary, "process", str(both))
    assert code == 0 and len(in_memory.splitlines()) == 6
    assert out == in_memory


def test_processing_the_same_file_again_changes_nothing(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    source = _write(tmp_path / "in.jsonl", [_reading(i) for i in range(30)] + ["not a reading"])
    store = f"sqlite:{tmp_path / 'store.db'}"
    code, once, err = _run(capsysbinary, "process", str(source), "--store", store)
    assert code == 0 and "30 counted" in err
    code, twice, err = _run(capsysbinary, "process", str(source), "--store", store)
    assert code == 0 and twice == once
    assert err.startswith("iotpipe process: 31 readings, 0 counted, 30 duplicates, 1 rejected")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("postgres://db", "--store must be 'memory' or 'sqlite:PATH', not 'postgres://db'"),
        ("sqlite", "--store must be 'memory' or 'sqlite:PATH', not 'sqlite'"),
        ("sqlite:", "--store must be 'memory' or 'sqlite:PATH', not 'sqlite:'"),
        ("sqlite::memory:", "needs a file path, not an in-memory database"),
        ("sqlite:{tmp}/missing/store.db", "unable to open database file"),
        ("sqlite:{tmp}/text.db", "file is not a database"),
    ],
)
def test_bad_store_values_are_one_line_errors(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], spec: str, message: str
) -> None:
    (tmp_path / "text.db").write_text("some notes, not a database\n" * 50)
    source = _write(tmp_path / "in.jsonl", [_reading(1)])
    output = tmp_path / "out.jsonl"
    argv = ["process", str(source), "-o", str(output), "--store", spec.format(tmp=tmp_path)]
    code, out, err = _run(capsysbinary, *argv)
    assert code == 2 and out == b""
    assert err.startswith("iotpipe: error: ") and err.count("\n") == 1
    assert message in err
    assert not output.exists()  # a bad store must not truncate the output


def test_readings_a_busy_store_did_not_take_are_reported_and_fail_the_run(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    impatient = functools.partial(
        SqliteStore, busy_timeout_s=0.01, retry=RetryPolicy(attempts=1, base_delay_s=0.001)
    )
    monkeypatch.setattr(cli, "SqliteStore", impatient)
    path = tmp_path / "store.db"
    with SqliteStore(path) as store:
        use_schema(store, DEFAULT_SCHEMA)  # a store iotpipe made: it keeps its schema record
    source = _write(tmp_path / "in.jsonl", [_reading(i) for i in range(10)])
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        code, _, err = _run(capsysbinary, "process", str(source), "--store", f"sqlite:{path}")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 1
    assert err.count("\n") == 1
    assert "0 counted" in err and "10 NOT applied (unavailable: " in err and "locked" in err
    # Run again once the store is free: every reading counted once.
    code, _, err = _run(capsysbinary, "process", str(source), "--store", f"sqlite:{path}")
    assert code == 0 and "10 counted, 0 duplicates" in err


def test_a_store_too_busy_to_record_its_schema_fails_at_start_in_one_line(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A store without a schema record gets one before any window is written (so that another
    # schema cannot write the same metric at another resolution meanwhile): if the store is too
    # busy to take it, the run stops before it starts, and says so.
    impatient = functools.partial(SqliteStore, busy_timeout_s=0.01)
    monkeypatch.setattr(cli, "SqliteStore", impatient)
    path = tmp_path / "store.db"
    SqliteStore(path).close()
    source = _write(tmp_path / "in.jsonl", [_reading(i) for i in range(10)])
    output = tmp_path / "out.jsonl"
    output.write_bytes(b"kept")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        code, _, err = _run(
            capsysbinary, "process", str(source), "--store", f"sqlite:{path}", "-o", str(output)
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 2
    assert err.count("\n") == 1 and "locked" in err and err.startswith("iotpipe: error: --store")
    assert output.read_bytes() == b"kept"  # nothing was truncated
    code, _, err = _run(capsysbinary, "process", str(source), "--store", f"sqlite:{path}")
    assert code == 0 and "10 counted, 0 duplicates" in err


# --- replay -----------------------------------------------------------------------------------


def _archived_pipeline(data_dir: Path) -> list[bytes]:
    """Run readings through a local pipeline; the JSON lines of the windows it stored."""
    clock = ManualClock(START_MS + 3 * MS_PER_HOUR)
    pipeline = local_pipeline(data_dir, clock=clock)
    items = [_reading(i) for i in range(50)]
    for chunk in (items[:30], items[20:], [{"device_id": "d1"}]):
        pipeline.ingest(chunk)
        assert all(not report.failed_records for report in pipeline.drain(batch_size=7))
        clock.advance(MS_PER_HOUR)
    return [orjson.dumps(window_json(w)) for w in pipeline.query.every_window()]


def test_replay_rebuilds_a_store_from_the_archive_and_twice_changes_nothing(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    expected = _archived_pipeline(tmp_path / "data")
    archive = str(tmp_path / "data" / "archive")
    store = f"sqlite:{tmp_path / 'rebuilt.db'}"
    argv = ["replay", "--archive", archive, "--store", store]
    span = ["--from", "2025-08-31T00:00:00Z", "--to", "2025-09-01T00:00:00Z"]

    # Ingest publishes one message per device and the drain takes them as one batch: two
    # batches of 30 readings (10 in both), each writing all 6 windows.
    code, out, err = _run(capsysbinary, *argv, *span)
    assert (code, err) == (0, "")
    assert out.decode() == (
        "iotpipe replay: 2 batches, 60 readings, 50 counted, 10 duplicates, 0 rejected, "
        "12 windows updated\n"
    )
    empty = _write(tmp_path / "empty.jsonl", [])
    code, windows, _ = _run(capsysbinary, "process", str(empty), "--store", store)
    assert code == 0 and windows.splitlines() == expected

    code, out, _ = _run(capsysbinary, *argv, *span)
    assert code == 0
    assert out.decode() == (
        "iotpipe replay: 2 batches, 60 readings, 0 counted, 60 duplicates, 0 rejected, "
        "0 windows updated\n"
    )
    assert _run(capsysbinary, "process", str(empty), "--store", store)[1] == windows

    # Only the partitions in range: the first batch arrived at 13:00, the second at 14:00.
    code, out, _ = _run(
        capsysbinary,
        *argv,
        "--from",
        "2025-08-31T13:00:00Z",
        "--to",
        "2025-08-31T14:00:00Z",
    )
    assert code == 0 and out.decode().startswith(
        "iotpipe replay: 1 batches, 30 readings, 0 counted"
    )


DAY = ("2025-08-31T00:00:00Z", "2025-09-01T00:00:00Z")


@pytest.mark.parametrize(
    ("archive", "store", "span", "message"),
    [
        ("data/archive", "memory", DAY, "replay needs a persistent store: --store sqlite:PATH"),
        ("nowhere", "sqlite:s.db", DAY, "--archive {tmp}/nowhere: not a directory"),
        ("data", "sqlite:s.db", DAY, "no raw/ partitions; did you mean {tmp}/data/archive?"),
        ("data/archive", "sqlite:no/s.db", DAY, "unable to open database file"),
        ("data/archive", "sqlite:s.db", (DAY[0], "x"), "not an RFC 3339 instant"),
        ("data/archive", "sqlite:s.db", (DAY[1], DAY[0]), "the time range is empty"),
    ],
)
def test_replay_argument_errors_are_one_line(
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    archive: str,
    store: str,
    span: tuple[str, str],
    message: str,
) -> None:
    (tmp_path / "data" / "archive" / "raw").mkdir(parents=True)
    store = store.replace("sqlite:", f"sqlite:{tmp_path}/")
    argv = ["replay", "--archive", f"{tmp_path}/{archive}", "--store", store]
    code, out, err = _run(capsysbinary, *argv, "--from", span[0], "--to", span[1])
    assert code == 2 and out == b""
    assert err.startswith("iotpipe: error: ") and err.count("\n") == 1
    assert message.format(tmp=tmp_path) in err
