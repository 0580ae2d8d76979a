"""The local runtime's promise, tested by breaking it: a 202 means the reading is safe.

``iotpipe serve`` runs as users run it (its own process, real sockets); it is killed with
SIGKILL at random instants under load and restarted on the same ``--data``. The assertion is
the promise itself: the stored hourly aggregates equal ``iotpipe process`` over exactly the
readings answered 202, and so does a replay of the raw archive into a fresh store.
"""

from __future__ import annotations

import random
import re
import socket
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from tests.e2e.local_runtime_support import (
    IOTPIPE,
    Sender,
    health,
    lines,
    readings,
    replayed,
    request,
    start,
    wait_drained,
    windows_of,
    windows_of_store,
)

pytestmark = pytest.mark.e2e

KILLS = 5


def test_kill_9_under_load_loses_no_accepted_reading_and_counts_none_twice(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    chance = random.Random(15)
    server = start(data)
    sender = Sender(server.url).start()
    try:
        for kill in range(KILLS):
            time.sleep(chance.uniform(0.5, 2.5))  # a random instant under load
            # Alternately the whole process group at one instant, and the server alone (its
            # processor then notices and finishes its batch on its own).
            server.kill9(whole_group=kill % 2 == 0)
            server = start(data)
            sender.url = server.url
        time.sleep(1.0)
    finally:
        sender.stop()
    wait_drained(server.url)
    assert server.stop() == 0
    assert len(sender.accepted) >= 1000, "too little load to mean anything"
    expected = windows_of(sender.accepted, tmp_path)
    assert windows_of_store(data, tmp_path) == expected
    # The raw archive, written under log positions, holds every accepted reading too.
    assert replayed(data, tmp_path) == expected


def test_archive_names_are_unique_across_restarts_and_replay_rebuilds_exactly(
    tmp_path: Path,
) -> None:
    data, sent = tmp_path / "data", []
    first = 0
    for count in (600, 180, 300):  # three sessions on one --data, as the issue tried
        server = start(data)
        for offset in range(0, count, 60):
            batch = readings(first + offset, 60)
            status, _, body = request(server.url, "POST", "/v1/readings", orjson.dumps(batch))
            assert status == 202, body
            sent += batch
        first += count
        wait_drained(server.url)
        assert server.stop() == 0
    expected = windows_of(sent, tmp_path)
    assert sum(w["count"] for w in lines(expected)) == 1080
    assert windows_of_store(data, tmp_path) == expected
    names = [p.name for p in (data / "archive" / "raw").rglob("*.jsonl.gz")]
    assert len(names) == len(set(names)) >= 3
    assert replayed(data, tmp_path) == expected


def test_a_full_backlog_answers_503_with_retry_after_and_drops_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # No processor: the log only fills, up to 5 records (requests).
    server = start(data, "--processor", "none", "--max-backlog-records", "5")
    accepted, refusals = [], []
    for n in range(8):
        batch = readings(n * 10, 10)
        status, headers, body = request(server.url, "POST", "/v1/readings", orjson.dumps(batch))
        if status == 202:
            accepted += batch
        else:
            refusals.append((status, headers, orjson.loads(body)))
    assert len(accepted) == 50 and len(refusals) == 3
    for status, headers, problem in refusals:
        assert status == 503 and headers["content-type"] == "application/problem+json"
        assert problem["code"] == "ingest_unavailable" and "backlog is full" in problem["detail"]
        assert int(headers["retry-after"]) >= 1
    assert health(server.url)["stream"]["backlog_records"] == 5
    assert server.stop() == 0
    # A restart with a processor applies everything that was accepted, and only that.
    server = start(data)
    wait_drained(server.url)
    assert server.stop() == 0
    assert windows_of_store(data, tmp_path) == windows_of(accepted, tmp_path)


def test_the_simulator_waits_out_a_full_backlog_and_delivers_everything(tmp_path: Path) -> None:
    data, port = tmp_path / "data", str(_free_port())
    # First no processor, so the backlog fills and stays full; then one that drains it.
    server = start(data, "--port", port, "--processor", "none", "--max-backlog-records", "3")
    simulate = subprocess.Popen(
        [
            *IOTPIPE,
            *("simulate", "--devices", "30", "--hours", "1", "--interval", "10", "--seed", "3"),
            *("--post-batch", "20", "--url", f"{server.url}/v1/readings"),
            *("--api-key", "e2e-key-0123456789"),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while health(server.url)["stream"]["backlog_records"] < 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.5)  # refused meanwhile, with Retry-After
    assert server.stop() == 0
    server = start(data, "--port", port)
    _, err = simulate.communicate(timeout=600)
    wait_drained(server.url)
    assert server.stop() == 0
    assert simulate.returncode == 0, err
    assert "10800 readings accepted" in err and "0 requests failed" in err
    assert "waited out a full backlog" in err, err
    stored = sum(w["count"] for w in lines(windows_of_store(data, tmp_path)))
    assert stored == 10800


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_logs_a_json_line_per_request_and_per_batch_without_the_key(tmp_path: Path) -> None:
    log = tmp_path / "serve.stderr"
    server = start(tmp_path / "data", log=log)
    status, _, _ = request(server.url, "POST", "/v1/readings", orjson.dumps(readings(0, 5)))
    assert status == 202
    wait_drained(server.url)
    request(server.url, "GET", "/v1/devices/dev-001/latest")
    assert server.stop() == 0
    logged = list(lines(log.read_bytes()))
    posts = [x for x in logged if x.get("method") == "POST"]
    assert posts and set(posts[0]) >= {"method", "route", "path", "status", "duration_ms"}
    assert (posts[0]["route"], posts[0]["status"]) == ("/v1/readings", 202)
    gets = [x for x in logged if x.get("method") == "GET" and x["path"].endswith("/latest")]
    assert gets and gets[0]["route"] == "/v1/devices/{device_id}/latest"
    batches = [x for x in logged if x.get("message") == "batch processed"]
    assert sum(b["accepted"] for b in batches) == 5
    assert "e2e-key-0123456789" not in log.read_text()


def _one_line_error(*argv: str) -> str:
    done = subprocess.run(
        [*IOTPIPE, *argv], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2, done
    assert done.stderr.startswith("iotpipe: error: ") and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
    return done.stderr


def test_start_up_problems_are_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    server = start(tmp_path / "data")
    try:
        busy = _one_line_error("serve", "--data", str(tmp_path / "b"), "--port", str(server.port))
        assert "is in use" in busy
        twice = _one_line_error("serve", "--data", str(tmp_path / "data"), "--port", "0")
        assert "is in use by another iotpipe serve" in twice
        demo = _one_line_error("demo", "--port", str(server.port), "--duration", "1")
        assert "is in use" in demo
    finally:
        assert server.stop() == 0
    assert "not a TCP port" in _one_line_error(
        "serve", "--data", str(tmp_path / "c"), "--port", "99999"
    )
    (tmp_path / "file").write_text("not a directory")
    assert "is a file, not a directory" in _one_line_error(
        "serve", "--data", str(tmp_path / "file"), "--port", "0"
    )
    assert "Not a directory" in _one_line_error(
        "serve", "--data", str(tmp_path / "file" / "x"), "--port", "0"
    )
    # sysfs refuses a new directory to everyone, root included.
    assert "not permitted" in _one_line_error("serve", "--data", "/sys/iotpipe", "--port", "0")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "log.db").write_text("not a database " * 100)
    assert "not a database" in _one_line_error(
        "serve", "--data", str(tmp_path / "junk"), "--port", "0"
    )


def _killed_at_random(argv: list[str], chance: random.Random, times: int = 3) -> None:
    """Start the command and ``kill -9`` it at a random instant, ``times`` times over."""
    for _ in range(times):
        process = subprocess.Popen(
            [*IOTPIPE, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(chance.uniform(0.7, 1.8))
        process.kill()
        process.wait()


def test_kill_9_during_process_into_a_store_then_running_again_is_exact(tmp_path: Path) -> None:
    source = tmp_path / "readings.jsonl"
    with source.open("wb") as out:
        subprocess.run(
            [
                *IOTPIPE,
                *("simulate", "--devices", "25", "--hours", "8", "--interval", "5", "--seed", "9"),
                *("--end", "2025-08-31T12:00:00Z", "--duplicates", "0.05"),
            ],
            stdout=out,
            check=True,
            timeout=300,
        )
    store = f"sqlite:{tmp_path / 'store.db'}"
    argv = ["process", str(source), "--store", store, "--batch-size", "2000"]
    _killed_at_random(argv, random.Random(5))
    done = subprocess.run([*IOTPIPE, *argv], capture_output=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr.decode()
    fresh = subprocess.run(  # the same file in memory, in one run
        [*IOTPIPE, "process", str(source)], capture_output=True, timeout=600, check=True
    )
    assert done.stdout == fresh.stdout
    # The killed runs had stored readings already: this run counted only the rest.
    assert _counted(done.stderr) < _counted(fresh.stderr), done.stderr.decode()


def _counted(summary: bytes) -> int:
    """The ``N counted`` of an ``iotpipe process`` summary line."""
    found = re.search(rb"(\d+) counted", summary)
    assert found, summary
    return int(found.group(1))


def test_kill_9_during_replay_then_replaying_again_is_exact(tmp_path: Path) -> None:
    from iotpipe.adapters.local import FileArchive
    from iotpipe.domain.time import parse_instant
    from iotpipe.ports import RawBatch, RawRecord

    start = parse_instant("2025-08-31T00:00:00Z")
    archive, sent = FileArchive(tmp_path / "archive"), []
    for b in range(240):
        batch = readings(b * 500, 500, devices=100, start_ms=start)
        sent += batch
        records = tuple(
            RawRecord(str(i), orjson.dumps(batch[i : i + 50]), start + b * 60_000)
            for i in range(0, 500, 50)
        )
        archive.write(RawBatch(f"batch-{b:04d}", records), start + b * 60_000)
    store = tmp_path / "rebuilt.db"
    argv = ["replay", "--archive", str(tmp_path / "archive"), "--store", f"sqlite:{store}"]
    argv += ["--from", "2025-08-31T00:00:00Z", "--to", "2025-09-02T00:00:00Z"]
    _killed_at_random(argv, random.Random(8))
    done = subprocess.run([*IOTPIPE, *argv], capture_output=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert b" 0 duplicates" not in done.stdout  # the killed runs had stored something already
    assert windows_of_store(tmp_path, tmp_path, store.name) == windows_of(sent, tmp_path)
