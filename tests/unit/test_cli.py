"""The ``iotpipe`` command line, driven in process: process and simulate (demo: tests/e2e)."""

from __future__ import annotations

import io
import itertools
import math
import random
import sys
import types
from pathlib import Path
from typing import Any

import orjson
import pytest

from iotpipe.domain import InvalidReading, parse_reading
from iotpipe.domain.time import MS_PER_HOUR, parse_instant
from iotpipe.entrypoints.cli import main
from iotpipe.simulator import Faults, Fleet

pytestmark = pytest.mark.unit

START = "2025-08-31T10:00:00Z"
START_MS = parse_instant(START)


def _jsonl(items: list[Any]) -> bytes:
    return b"".join(orjson.dumps(item) + b"\n" for item in items)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _records(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in data.splitlines()]


# --- process: exact aggregates ----------------------------------------------------------------

TINY = [
    {"device_id": "d2", "timestamp": "2025-08-31T10:15:00Z", "temperature": 18.5},
    {
        "device_id": "d1",
        "timestamp": "2025-08-31T10:00:00Z",
        "temperature": 20,
        "humidity": 50,
        "location": {"lat": 1.0, "lon": 2.0},
    },
    {"device_id": "d1", "timestamp": "2025-08-31T12:05:00+01:00", "humidity": 70},
    {
        "device_id": "d1",
        "timestamp": "2025-08-31T10:20:00Z",
        "temperature": 22,
        "humidity": 60,
        "location": {"lat": 3.5, "lon": -4.25},
    },
    {"device_id": "d1", "timestamp": "2025-08-31T10:40:00.500Z", "temperature": 24.0},
]

NO_VALUES = {"count": 0, "mean": None, "min": None, "max": None, "stddev": None}


def test_process_writes_exact_hourly_aggregates(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    source = _write(tmp_path, "in.jsonl", _jsonl(TINY))

    assert main(["process", str(source)]) == 0

    captured = capsysbinary.readouterr()
    assert captured.out.endswith(b"\n")
    rows = _records(captured.out)
    assert [(r["device_id"], r["hour"]) for r in rows] == [
        ("d1", "2025-08-31T10:00:00Z"),
        ("d1", "2025-08-31T11:00:00Z"),
        ("d2", "2025-08-31T10:00:00Z"),
    ]
    d1_10, d1_11, d2_10 = rows

    stddev = d1_10["temperature"].pop("stddev")
    assert stddev == pytest.approx(math.sqrt(8 / 3), rel=1e-12)
    assert d1_10 == {
        "device_id": "d1",
        "hour": "2025-08-31T10:00:00Z",
        "count": 3,
        "first": "2025-08-31T10:00:00Z",
        "last": "2025-08-31T10:40:00.500Z",
        "location": {"lat": 3.5, "lon": -4.25},  # the latest located reading
        "temperature": {"count": 3, "mean": 22.0, "min": 20.0, "max": 24.0},
        "humidity": {"count": 2, "mean": 55.0, "min": 50.0, "max": 60.0, "stddev": 5.0},
    }
    assert d1_11 == {
        "device_id": "d1",
        "hour": "2025-08-31T11:00:00Z",  # 12:05+01:00 is 11:05Z
        "count": 1,
        "first": "2025-08-31T11:05:00Z",
        "last": "2025-08-31T11:05:00Z",
        "location": None,
        "temperature": NO_VALUES,
        "humidity": {"count": 1, "mean": 70.0, "min": 70.0, "max": 70.0, "stddev": 0.0},
    }
    assert d2_10["count"] == 1
    assert d2_10["temperature"] == {
        "count": 1,
        "mean": 18.5,
        "min": 18.5,
        "max": 18.5,
        "stddev": 0.0,
    }
    assert d2_10["humidity"] == NO_VALUES

    assert captured.err.decode() == (
        "iotpipe process: 5 readings, 5 counted, 0 duplicates, 0 rejected\n"
    )


def test_process_output_file_matches_stdout(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    source = _write(tmp_path, "in.jsonl", _jsonl(TINY))
    assert main(["process", str(source)]) == 0
    to_stdout = capsysbinary.readouterr().out

    target = tmp_path / "out.jsonl"
    assert main(["process", str(source), "-o", str(target)]) == 0
    captured = capsysbinary.readouterr()
    assert captured.out == b""
    assert target.read_bytes() == to_stdout
    assert len(to_stdout.splitlines()) == 3


def test_process_sorts_by_device_then_hour(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    devices = ["zeta", "Alpha", "b.2", "b-1", "alpha", "9x"]
    items = [
        {
            "device_id": device,
            "timestamp": f"2025-08-31T{hour:02d}:{minute:02d}:00Z",
            "temperature": hour,
        }
        for hour in (23, 3, 12)
        for minute in (59, 0)
        for device in devices
    ]
    source = _write(tmp_path, "in.jsonl", _jsonl(items))
    assert main(["process", str(source)]) == 0
    rows = _records(capsysbinary.readouterr().out)
    keys = [(r["device_id"], r["hour"]) for r in rows]
    assert len(keys) == len(devices) * 3
    assert keys == sorted(keys)
    assert all(r["count"] == 2 for r in rows)


# --- process: delivery independence -----------------------------------------------------------


def _simulated(devices: int = 4, hours: int = 2, seed: int = 3) -> list[bytes]:
    fleet = Fleet(devices, 60.0, seed)
    faults = Faults(duplicates=0.1, disorder=0.1, malformed=0.02)
    end = START_MS + hours * MS_PER_HOUR
    return [line.encode() for line in fleet.payloads(START_MS, end, faults)]


def test_process_output_is_independent_of_order_duplicates_and_batching(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    lines = _simulated()
    source = _write(tmp_path, "in.jsonl", b"\n".join(lines) + b"\n")
    assert main(["process", str(source)]) == 0
    expected = capsysbinary.readouterr().out
    rows = _records(expected)
    assert len(rows) == 4 * 2
    assert sum(r["count"] for r in rows) == 4 * 2 * 60

    for seed, copies, batch_size in [(1, 1, 1), (2, 2, 7), (3, 3, 64), (4, 5, 1000), (5, 2, 5000)]:
        shuffled = lines * copies
        random.Random(seed).shuffle(shuffled)
        variant = _write(tmp_path, f"in-{seed}.jsonl", b"\n".join(shuffled) + b"\n")
        argv = ["process", str(variant), "--batch-size", str(batch_size)]
        assert main(argv) == 0
        assert capsysbinary.readouterr().out == expected, (seed, copies, batch_size)


# --- process: rejects, blank lines and the summary --------------------------------------------

GOOD = {"device_id": "d1", "timestamp": START, "temperature": 20}


def test_rejects_file_names_input_lines_and_reasons(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    lines = [
        orjson.dumps(GOOD),  # 1
        b"",  # 2 blank
        b"{not json",  # 3
        b"   \t",  # 4 blank (whitespace only)
        orjson.dumps({**GOOD, "timestamp": "2025-08-31T10:00:00"}),  # 5 naive
        orjson.dumps(GOOD),  # 6 a resend of line 1
        orjson.dumps([{**GOOD, "timestamp": "2025-08-31T10:01:00Z"}, 7]),  # 7 an array, 2 items
        orjson.dumps({**GOOD, "temperature": 21}),  # 8 conflicts with line 1
        b"\r",  # 9 blank (a stray carriage return)
        orjson.dumps({**GOOD, "humidity": 140}),  # 10
    ]
    source = _write(tmp_path, "in.jsonl", b"\n".join(lines) + b"\n")
    rejects = tmp_path / "rejects.jsonl"
    output = tmp_path / "out.jsonl"

    status = main(["process", str(source), "--rejects", str(rejects), "-o", str(output)])

    assert status == 0
    found = _records(rejects.read_bytes())
    assert [(r["line"], r["reason"], r.get("index")) for r in found] == [
        (3, "malformed_json", None),
        (5, "naive_timestamp", None),
        (7, "not_an_object", 1),
        (10, "metric_out_of_range", None),
        (8, "conflicting_duplicate", None),
    ]
    for r in found:
        assert isinstance(r["message"], str)
        assert r["message"].strip()
        assert set(r) <= {"line", "reason", "message", "index"}

    rows = _records(output.read_bytes())
    assert len(rows) == 1
    assert rows[0]["count"] == 2
    assert rows[0]["temperature"]["mean"] == 20.0  # the first version counted stays

    err = capsysbinary.readouterr().err.decode()
    assert err.count("\n") == 1
    assert err.startswith("iotpipe process: 8 readings, 2 counted, 1 duplicates, 5 rejected")
    for reason in (
        "conflicting_duplicate 1",
        "malformed_json 1",
        "metric_out_of_range 1",
        "naive_timestamp 1",
        "not_an_object 1",
    ):
        assert reason in err


def test_rejects_file_is_empty_when_all_lines_are_good(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    source = _write(tmp_path, "in.jsonl", _jsonl(TINY))
    rejects = tmp_path / "rejects.jsonl"
    assert main(["process", str(source), "--rejects", str(rejects)]) == 0
    assert rejects.exists()
    assert rejects.read_bytes() == b""
    assert "0 rejected" in capsysbinary.readouterr().err.decode()


def test_only_rejects_still_exit_zero_with_no_output(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    source = _write(tmp_path, "in.jsonl", b"[1, 2]\nnull\n\n{}\n")
    rejects = tmp_path / "rejects.jsonl"
    assert main(["process", str(source), "--rejects", str(rejects)]) == 0
    captured = capsysbinary.readouterr()
    assert captured.out == b""
    found = _records(rejects.read_bytes())
    assert [(r["line"], r["reason"]) for r in found] == [
        (1, "not_an_object"),
        (1, "not_an_object"),
        (2, "not_an_object"),
        (4, "missing_device_id"),
    ]
    assert captured.err.decode().startswith("iotpipe process: 4 readings, 0 counted")


def test_dash_reads_stdin(
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = _jsonl(TINY)
    source = _write(tmp_path, "in.jsonl", data)
    assert main(["process", str(source)]) == 0
    from_file = capsysbinary.readouterr().out

    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(data)))
    assert main(["process", "-"]) == 0
    captured = capsysbinary.readouterr()
    assert captured.out == from_file
    assert len(captured.out.splitlines()) == 3
    assert "5 readings" in captured.err.decode()


# --- process: argument and input errors -------------------------------------------------------


def test_missing_input_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jsonl"
    assert main(["process", str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("iotpipe: error: ")
    assert str(missing) in captured.err
    assert captured.err.count("\n") == 1
    assert "Traceback" not in captured.err


def test_unwritable_output_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _write(tmp_path, "in.jsonl", _jsonl(TINY))
    assert main(["process", str(source), "-o", str(tmp_path)]) == 2  # a directory
    err = capsys.readouterr().err
    assert err.startswith("iotpipe: error: ")
    assert err.count("\n") == 1


@pytest.mark.parametrize("value", ["0", "-3", "ten", "1.5"])
def test_bad_batch_size_is_an_argparse_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    source = _write(tmp_path, "in.jsonl", _jsonl(TINY))
    with pytest.raises(SystemExit) as caught:
        main(["process", str(source), "--batch-size", value])
    assert caught.value.code == 2
    captured = capsys.readouterr()
    assert "--batch-size" in captured.err
    assert captured.out == ""


def test_no_command_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2
    assert "usage:" in capsys.readouterr().err


# --- simulate ---------------------------------------------------------------------------------


def _simulate(capsys: pytest.CaptureFixture[str], *extra: str) -> list[str]:
    argv = ["simulate", "--devices", "3", "--start", START, "--end", "2025-08-31T11:00:00Z"]
    assert main([*argv, *extra]) == 0
    out = capsys.readouterr().out
    assert out.endswith("\n")
    return out.splitlines()


def test_simulate_is_deterministic_per_seed(capsys: pytest.CaptureFixture[str]) -> None:
    first = _simulate(capsys, "--seed", "7")
    again = _simulate(capsys, "--seed", "7")
    other = _simulate(capsys, "--seed", "8")
    assert len(first) == 3 * 60
    assert first == again
    assert other != first
    assert len(other) == len(first)


def test_simulate_readings_are_valid_and_inside_the_range(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = _simulate(capsys, "--seed", "1")
    end_ms = START_MS + MS_PER_HOUR
    devices = set()
    for line in lines:
        reading = parse_reading(orjson.loads(line))
        assert START_MS <= reading.timestamp_ms < end_ms
        assert all(v is not None for v in reading.values)
        assert reading.location is not None
        devices.add(reading.device_id)
    assert devices == {"iot-sensor-001", "iot-sensor-002", "iot-sensor-003"}


def test_simulate_duplicates_are_exact_copies(capsys: pytest.CaptureFixture[str]) -> None:
    clean = _simulate(capsys, "--seed", "5")
    noisy = _simulate(capsys, "--seed", "5", "--duplicates", "0.5")
    repeats = [a for a, b in itertools.pairwise(noisy) if a == b]
    assert len(repeats) > len(clean) // 4
    assert set(noisy) == set(clean)  # nothing but exact copies was added
    assert len(noisy) == len(clean) + len(repeats)


def test_simulate_malformed_lines_are_the_only_invalid_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    clean = _simulate(capsys, "--seed", "9")
    faulty = _simulate(capsys, "--seed", "9", "--malformed", "0.2")
    valid: list[str] = []
    invalid = 0
    for line in faulty:
        try:
            parse_reading(orjson.loads(line))
        except (orjson.JSONDecodeError, InvalidReading):
            invalid += 1
        else:
            valid.append(line)
    assert valid == clean  # every non-malformed line is a real, valid reading, in order
    assert 0.1 * len(clean) < invalid < 0.3 * len(clean)


def test_simulate_hours_before_end(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "--devices", "2", "--hours", "0.5", "--end", "2025-08-31T11:00:00Z"]
    assert main(argv) == 0
    stamps = [
        parse_reading(orjson.loads(line)).timestamp_ms
        for line in capsys.readouterr().out.splitlines()
    ]
    assert len(stamps) == 2 * 30
    assert min(stamps) >= START_MS + MS_PER_HOUR // 2
    assert max(stamps) < START_MS + MS_PER_HOUR


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2025-08-31T12:00:00Z", "2025-08-31T11:00:00Z"),
        ("2025-08-31T11:00:00Z", "2025-08-31T11:00:00Z"),
        ("2025-08-31T11:00:00+01:00", "2025-08-31T09:00:00-01:00"),  # equal instants
        ("yesterday", "2025-08-31T11:00:00Z"),
        ("2025-08-31T10:00:00", "2025-08-31T11:00:00Z"),  # naive
    ],
)
def test_simulate_bad_range_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], start: str, end: str
) -> None:
    assert main(["simulate", "--start", start, "--end", end]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("iotpipe: error: ")
    assert captured.err.count("\n") == 1


@pytest.mark.parametrize("rate", ["1.5", "-0.1", "lots"])
def test_simulate_bad_rate_is_an_argparse_error(
    capsys: pytest.CaptureFixture[str], rate: str
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["simulate", "--duplicates", rate])
    assert caught.value.code == 2
    assert "--duplicates" in capsys.readouterr().err
