"""Driving ``iotpipe serve`` as users run it: a real process, real HTTP, and ``kill -9``."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from iotpipe.domain.time import MS_PER_HOUR, format_instant, hour_start

KEY = "e2e-key-0123456789"
IOTPIPE = [sys.executable, "-m", "iotpipe.entrypoints.cli"]


@dataclass
class Server:
    """A running ``iotpipe serve`` (in its own process group, with its processor child)."""

    process: subprocess.Popen[bytes]
    url: str
    stderr: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def kill9(self, whole_group: bool = True) -> None:
        """``kill -9`` the server (and, by default, its processor at the same instant)."""
        if whole_group:
            os.killpg(self.process.pid, signal.SIGKILL)
        else:
            self.process.kill()
        self.process.wait()

    def stop(self) -> int:
        """Ctrl-C, as a user stops it; its exit status."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(60)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)


def start(data: Path, *extra: str, log: Path | None = None, timeout_s: float = 60) -> Server:
    """``iotpipe serve --data DATA --port 0`` in a new process group; waits for its URL."""
    log = log or data.with_name(data.name + f".{time.monotonic_ns()}.stderr")
    out = data.with_name(data.name + f".{time.monotonic_ns()}.stdout")
    port = [] if "--port" in extra else ["--port", "0"]
    command = [*IOTPIPE, "serve", "--data", str(data), *port, "--api-key", KEY, *extra]
    with out.open("wb") as stdout, log.open("wb") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in out.read_text(errors="replace").splitlines():
            if line.startswith("iotpipe serve: http"):
                return Server(process, line.split()[2].rstrip("/"), log)
        if process.poll() is not None:
            raise AssertionError(f"iotpipe serve exited: {log.read_text(errors='replace')}")
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    raise AssertionError("iotpipe serve did not start")


def request(
    url: str, method: str, path: str, body: bytes | None = None, timeout_s: float = 30
) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection: status, lower-case headers, body."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout_s)
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def health(url: str) -> dict[str, Any]:
    status, _, body = request(url, "GET", "/v1/health")
    assert status == 200, body
    return dict(orjson.loads(body))


def wait_drained(url: str, timeout_s: float = 120) -> None:
    """Until the server's log has nothing left to apply."""
    deadline = time.monotonic() + timeout_s
    while health(url)["stream"]["backlog_records"]:
        assert time.monotonic() < deadline, "the backlog did not drain"
        time.sleep(0.05)


def readings(first: int, count: int, devices: int = 20, start_ms: int | None = None) -> list[Any]:
    """Readings ``first .. first+count-1`` of a fleet: reading i is device i % devices at
    second i // devices, counted from ``start_ms`` (default: two hours ago, in the policy)."""
    if start_ms is None:
        start_ms = hour_start(time.time_ns() // 1_000_000) - 2 * MS_PER_HOUR
    return [
        {
            "device_id": f"dev-{i % devices:03d}",
            "timestamp": format_instant(start_ms + (i // devices) * 1000),
            "temperature": (i * 37) % 500 / 10,
            "humidity": (i * 11) % 1000 / 10,
        }
        for i in range(first, first + count)
    ]


@dataclass
class Sender:
    """Client threads posting 100-reading batches to whichever server is current, each batch
    resent until it is answered 202 (a client that lost its answer in a crash must resend)."""

    url: str
    clients: int = 4
    batch: int = 100
    start_ms: int = field(default_factory=lambda: hour_start(time.time_ns() // 1_000_000))
    accepted: list[Any] = field(default_factory=list)
    refused: int = 0
    _next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Sender:
        self._threads = [threading.Thread(target=self._run) for _ in range(self.clients)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop taking new batches; every batch taken is delivered first."""
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _take(self) -> list[Any]:
        with self._lock:
            first = self._next
            self._next += self.batch
        # 200 devices, one reading a second each: hours of event time before any is too new.
        return readings(first, self.batch, devices=200, start_ms=self.start_ms - 6 * MS_PER_HOUR)

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._take()
            self._deliver(batch, orjson.dumps(batch))

    def _deliver(self, batch: list[Any], body: bytes) -> None:
        while True:
            try:
                status, headers, reply = request(self.url, "POST", "/v1/readings", body, 10)
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)  # the server is down (being restarted): try again
                continue
            if status == 202:
                assert orjson.loads(reply)["accepted"] == len(batch)
                with self._lock:
                    self.accepted.extend(batch)
                return
            assert status == 503, reply[:300]
            with self._lock:
                self.refused += 1
            time.sleep(float(headers.get("retry-after", "1")))


def windows_of_store(data: Path, tmp: Path, name: str = "iotpipe.db") -> bytes:
    """Every window of the data directory's store, as ``iotpipe process`` writes them."""
    empty = tmp / "empty.jsonl"
    empty.write_bytes(b"")
    return run_cli("process", str(empty), "--store", f"sqlite:{data / name}")


def windows_of(items: list[Any], tmp: Path) -> bytes:
    """``iotpipe process`` over exactly these readings, in memory."""
    source = tmp / f"expected-{time.monotonic_ns()}.jsonl"
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in items))
    return run_cli("process", str(source))


def run_cli(*argv: str) -> bytes:
    done = subprocess.run([*IOTPIPE, *argv], capture_output=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def replayed(data: Path, tmp: Path) -> bytes:
    """The data directory's archive replayed into a fresh store: its windows."""
    rebuilt = tmp / f"rebuilt-{time.monotonic_ns()}.db"
    run_cli(
        "replay",
        "--archive",
        str(data / "archive"),
        "--store",
        f"sqlite:{rebuilt}",
        "--from",
        "1970-01-01T00:00:00Z",
        "--to",
        "9999-01-01T00:00:00Z",
    )
    empty = tmp / "empty.jsonl"
    empty.write_bytes(b"")
    return run_cli("process", str(empty), "--store", f"sqlite:{rebuilt}")


def lines(text: bytes) -> Iterator[dict[str, Any]]:
    for line in text.splitlines():
        if line.startswith(b"{"):
            yield orjson.loads(line)
