"""``--schema`` end to end through the CLI: the shipped example schemas and the issue's payload
(simulate, then process: exact aggregates of every declared metric, byte-identical under
reordering and duplication), and schema evolution over a persistent store."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from iotpipe.adapters.schema_file import load_schema
from iotpipe.entrypoints.cli import main

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).parents[2] / "examples" / "schemas"
END = "2025-08-31T12:00:00Z"


def _run(capsysbinary: pytest.CaptureFixture[bytes], *argv: str) -> tuple[int, bytes, str]:
    code = main(list(argv))
    captured = capsysbinary.readouterr()
    return code, captured.out, captured.err.decode()


def _schema_file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("name", ["industrial", "agricultural", "co2"])
def test_an_example_schema_runs_end_to_end_and_its_aggregates_do_not_depend_on_delivery(
    name: str, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    schema_path = str(EXAMPLES / f"{name}.toml")
    schema = load_schema(schema_path)
    code, lines, _ = _run(
        capsysbinary,
        "simulate",
        "--schema",
        schema_path,
        "--devices",
        "3",
        "--hours",
        "2",
        "--end",
        END,
        "--malformed",
        "0.02",
    )
    assert code == 0
    first = orjson.loads(lines.splitlines()[0])
    # The payloads are shaped by the schema: its nested paths, its time format.
    device = first
    for step in schema.device_id.split("."):
        device = device[step]
    assert isinstance(device, str)
    source = tmp_path / "in.jsonl"
    source.write_bytes(lines)
    code, out, err = _run(capsysbinary, "process", str(source), "--schema", schema_path)
    assert code == 0
    windows = [orjson.loads(line) for line in out.splitlines()]
    assert len(windows) == 3 * 2  # three devices, two hours
    for window in windows:
        assert window["count"] == 60  # one reading a minute
        for metric in schema.metrics:
            assert window[metric.name]["count"] == 60
            assert metric.minimum <= window[metric.name]["min"] <= window[metric.name]["max"]
            assert window[metric.name]["max"] <= metric.maximum
        assert (window["location"] is None) == (schema.location is None)
    assert "360 counted, 0 duplicates" in err and "rejected" in err
    # Shuffled and partly sent twice, the same readings give the same bytes.
    rows = lines.splitlines(keepends=True)
    again = rows + random.Random(7).sample(rows, len(rows) // 3)
    random.Random(8).shuffle(again)
    shuffled = tmp_path / "again.jsonl"
    shuffled.write_bytes(b"".join(again))
    code, out_again, err = _run(capsysbinary, "process", str(shuffled), "--schema", schema_path)
    assert code == 0 and out_again == out


def test_the_issue_payload_gives_exact_aggregates(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    # Exact at the declared resolution: 0.1 ppm, summed without rounding error.
    readings: list[dict[str, Any]] = [
        {"meta": {"id": "room-1"}, "ts": 1_756_634_400_000 + i * 1000, "sensors": {"co2": c}}
        for i, c in enumerate([400.1, 400.2, 400.3, 1200.04])
    ]
    readings[0]["pos"] = {"lat": 52.5, "lon": 13.4}
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in readings))
    code, out, err = _run(
        capsysbinary, "process", str(source), "--schema", str(EXAMPLES / "co2.toml")
    )
    assert code == 0, err
    [window] = [orjson.loads(line) for line in out.splitlines()]
    assert window["device_id"] == "room-1" and window["hour"] == "2025-08-31T10:00:00Z"
    assert window["first"] == "2025-08-31T10:00:00Z" and window["last"] == "2025-08-31T10:00:03Z"
    assert window["location"] == {"lat": 52.5, "lon": 13.4}
    assert window["co2"]["count"] == 4
    assert window["co2"]["mean"] == (4001 + 4002 + 4003 + 12000) / 4 / 10  # 1200.04 -> 1200.0
    assert window["co2"]["min"] == 400.1 and window["co2"]["max"] == 1200.0
    assert "temperature" not in window


def test_a_bad_schema_file_is_one_clear_line(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"")
    cases = {
        "typo": (
            '[[metrics]]\nname = "a"\nunit = "u"\nminimum = 0\nmaximum = 1\nunits = "x"\n',
            "unknown key 'units'",
        ),
        "resolution": (
            '[[metrics]]\nname = "a"\nunit = "u"\nminimum = 0\nmaximum = 1\nresolution = 0.2\n',
            "not a power of ten",
        ),
        "collision": (
            '[device_id]\nfield = "a"\n[[metrics]]\nname = "a"\nunit = "u"\nminimum = 0\n'
            "maximum = 1\n",
            "both read field 'a'",
        ),
        "toml": ("[[metrics]\n", "not valid TOML"),
        "empty": ("", "declare at least one metric"),
    }
    for name, (text, expected) in cases.items():
        path = _schema_file(tmp_path, name, text)
        code, _, err = _run(capsysbinary, "process", str(source), "--schema", path)
        assert code == 2, name
        assert err.count("\n") == 1 and expected in err and path in err, (name, err)
    code, _, err = _run(capsysbinary, "process", str(source), "--schema", "/no/such.toml")
    assert code == 2 and "cannot read the schema file" in err


# --- evolution over a persistent store ---------------------------------------------------------

_BASE = """
[device_id]
field = "id"
[timestamp]
field = "t"
format = "epoch_s"
[[metrics]]
name = "pressure"
unit = "kPa"
minimum = 0
maximum = 1000
resolution = 0.1
"""
_MORE = '[[metrics]]\nname = "power"\nunit = "kW"\nminimum = 0\nmaximum = 100\n'


def _process(
    capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path, store: Path, schema: str, rows: list
) -> tuple[int, list[dict[str, Any]], str]:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    code, out, err = _run(
        capsysbinary, "process", str(source), "--schema", schema, "--store", f"sqlite:{store}"
    )
    return code, [orjson.loads(line) for line in out.splitlines()], err


def test_adding_and_removing_metrics_keeps_every_stored_window_readable(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    store = tmp_path / "store.db"
    base = _schema_file(tmp_path, "base", _BASE)
    code, windows, _ = _process(
        capsysbinary, tmp_path, store, base, [{"id": "p1", "t": 1_756_634_400, "pressure": 500.5}]
    )
    assert code == 0 and windows[0]["pressure"]["mean"] == 500.5
    # Adding a metric: the old window simply lacks it.
    more = _schema_file(tmp_path, "more", _BASE + _MORE)
    row = {"id": "p1", "t": 1_756_638_000, "pressure": 501, "power": 12.25}
    code, windows, _ = _process(capsysbinary, tmp_path, store, more, [row])
    assert code == 0
    old, new = windows
    assert old["pressure"]["mean"] == 500.5 and old["power"]["count"] == 0
    assert new["power"]["mean"] == 12.25
    # Removing one: its stored aggregates stay queryable, as a retired metric.
    only_power = _schema_file(tmp_path, "power", _BASE.split("[[metrics]]", maxsplit=1)[0] + _MORE)
    code, windows, _ = _process(
        capsysbinary, tmp_path, store, only_power, [{"id": "p1", "t": 1_756_641_600, "power": 1}]
    )
    assert code == 0
    assert [w["pressure"]["count"] for w in windows] == [1, 1, 0]
    assert [w["power"]["count"] for w in windows] == [0, 1, 1]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("resolution = 0.1", "resolution = 0.01"), "resolution 0.1 in the store, 0.01 in"),
        (('unit = "kPa"', 'unit = "bar"'), "unit 'kPa' in the store, 'bar' in the schema"),
    ],
)
def test_an_unsafe_change_is_refused_at_start_with_a_clear_message(
    change: tuple[str, str],
    expected: str,
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    store = tmp_path / "store.db"
    base = _schema_file(tmp_path, "base", _BASE)
    row = {"id": "p1", "t": 1_756_634_400, "pressure": 500.5}
    assert _process(capsysbinary, tmp_path, store, base, [row])[0] == 0
    changed = _schema_file(tmp_path, "changed", _BASE.replace(*change))
    code, windows, err = _process(capsysbinary, tmp_path, store, changed, [row])
    assert code == 2 and windows == []
    assert err.count("\n") == 1 and expected in err and "new name" in err
    # Under a new name, the changed metric is welcome; the old one stays readable.
    renamed = _schema_file(
        tmp_path, "renamed", _BASE.replace(*change).replace('name = "pressure"', 'name = "p2"')
    )
    row2 = {"id": "p1", "t": 1_756_634_401, "p2": 7}  # its field is its name
    code, windows, _ = _process(capsysbinary, tmp_path, store, renamed, [row2])
    assert code == 0
    [window] = windows
    assert window["pressure"]["count"] == 1 and window["p2"]["count"] == 1


def test_a_store_of_the_default_payload_refuses_a_schema_that_changes_its_metrics(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    store = tmp_path / "store.db"
    row = {"device_id": "d", "timestamp": "2025-08-31T10:00:00Z", "temperature": 20.5}
    source = tmp_path / "in.jsonl"
    source.write_bytes(orjson.dumps(row) + b"\n")
    assert _run(capsysbinary, "process", str(source), "--store", f"sqlite:{store}")[0] == 0
    coarse = _schema_file(
        tmp_path,
        "coarse",
        '[[metrics]]\nname = "temperature"\nunit = "degC"\nminimum = -50\nmaximum = 60\n'
        "resolution = 0.1\n",
    )
    code, _, err = _run(
        capsysbinary, "process", str(source), "--schema", coarse, "--store", f"sqlite:{store}"
    )
    assert code == 2 and "resolution 0.001 in the store, 0.1 in the schema" in err


def test_replay_rebuilds_a_declared_fleets_store_from_the_archive(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    from iotpipe.adapters.clock import ManualClock
    from iotpipe.application.views import window_json
    from iotpipe.bootstrap import local_pipeline
    from iotpipe.domain import LatenessPolicy
    from iotpipe.domain.time import MS_PER_HOUR, parse_instant
    from iotpipe.simulator import Fleet

    schema_path = str(EXAMPLES / "agricultural.toml")
    schema = load_schema(schema_path)
    start = parse_instant("2025-08-31T10:00:00Z")
    clock = ManualClock(start + 2 * MS_PER_HOUR)
    pipeline = local_pipeline(
        tmp_path / "data", clock=clock, lateness=LatenessPolicy.unbounded(), schema=schema
    )
    readings = list(Fleet(3, 300, seed=2, schema=schema).readings(start, start + 2 * MS_PER_HOUR))
    pipeline.ingest(readings)
    assert all(not r.failed_records for r in pipeline.drain(batch_size=20))
    expected = [orjson.dumps(window_json(w, schema)) for w in pipeline.query.every_window()]
    store = f"sqlite:{tmp_path / 'rebuilt.db'}"
    code, out, err = _run(
        capsysbinary,
        "replay",
        "--archive",
        str(tmp_path / "data" / "archive"),
        "--store",
        store,
        "--schema",
        schema_path,
        "--from",
        "2025-08-31T00:00:00Z",
        "--to",
        "2025-09-01T00:00:00Z",
    )
    assert code == 0, err
    assert f"{len(readings)} counted" in out.decode()
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    code, windows, _ = _run(
        capsysbinary, "process", str(empty), "--schema", schema_path, "--store", store
    )
    assert code == 0 and windows.splitlines() == expected
    # Without --schema the archive's payloads are not the default payload: all rejected.
    other = f"sqlite:{tmp_path / 'other.db'}"
    code, out, _ = _run(
        capsysbinary,
        "replay",
        "--archive",
        str(tmp_path / "data" / "archive"),
        "--store",
        other,
        "--from",
        "2025-08-31T00:00:00Z",
        "--to",
        "2025-09-01T00:00:00Z",
    )
    assert "0 counted" in out.decode() and f"{len(readings)} rejected" in out.decode()


def test_the_local_runtime_keeps_its_schema_for_the_next_start(tmp_path: Path) -> None:
    # serve --schema: the runtime reads payloads by it, keeps it in the data directory, and the
    # next start without --schema reads the same payload (its processor too).
    import urllib.request

    from iotpipe.domain import DEFAULT_SCHEMA, LatenessPolicy
    from iotpipe.entrypoints.local_runtime import SCHEMA_FILE, LocalRuntime

    schema = load_schema(EXAMPLES / "co2.toml")
    data = tmp_path / "data"
    options = {"port": 0, "keys": ["k" * 16], "processor": "thread"}
    lateness = LatenessPolicy.unbounded()
    runtime = LocalRuntime.start(data, schema=schema, lateness=lateness, **options)
    try:
        assert runtime.pipeline.schema == schema
    finally:
        runtime.close()
    assert load_schema(data / SCHEMA_FILE) == schema
    again = LocalRuntime.start(data, lateness=lateness, **options)
    try:
        assert again.pipeline.schema == schema != DEFAULT_SCHEMA
        body = orjson.dumps(
            {"meta": {"id": "room-1"}, "ts": 1_756_634_400_000, "sensors": {"co2": 415.5}}
        )
        request = urllib.request.Request(
            f"{again.url}/v1/readings",
            data=body,
            headers={"content-type": "application/json", "authorization": "Bearer " + "k" * 16},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
        assert again.wait_idle(30)
        [window] = list(again.pipeline.query.every_window())
        assert window.stats.moments(schema)[0].total == 4155  # 415.5 at 0.1, by its processor
    finally:
        again.close()
